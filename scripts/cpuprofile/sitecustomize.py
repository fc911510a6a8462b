"""Profile a Python process by the CPU time of its main thread, for
docs/performance.md, "Where a forwarded packet's CPU goes".

``scripts/bench.py relay --profile`` runs the server under cProfile, which times
functions by the wall clock: on a shared machine that also counts the time the
process waited for a core, and the time the event loop's thread waited for the GIL
(a database call hands it to aiosqlite's thread). This counts only the CPU time of
the thread that imported it: the server's event loop, where all forwarding runs.

    VA_CPU_PROFILE=/tmp/server.prof PYTHONPATH=scripts/cpuprofile \\
        .venv/bin/python scripts/bench.py relay --mode forward --streams 8 --json

Python imports ``sitecustomize`` at start-up from ``PYTHONPATH``: the benchmark's
server inherits both variables (the benchmark passes on every variable but
``VIDEOASSIST_*``, and puts its own tree before ``PYTHONPATH``), and so does the
benchmark's own process, which is why only a process whose command line contains
``serve`` is profiled. The statistics are written when the process exits
(``python -m pstats FILE``).
"""

from __future__ import annotations

import atexit
import cProfile
import os
import sys
import time


def _start(path: str) -> None:
    profile = cProfile.Profile(time.thread_time)

    def stop() -> None:
        profile.disable()
        profile.dump_stats(path)

    atexit.register(stop)
    profile.enable()


if os.environ.get("VA_CPU_PROFILE") and "serve" in sys.argv:
    _start(os.environ["VA_CPU_PROFILE"])
