"""What is measured of the processes and the machine: /proc, this process's loop, and
the server's profile when it ran under cProfile."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import pstats
import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parents[2]
_LIBRARY = re.compile(r"^.*/(site-packages|lib/python3\.\d+)/")  # up to aiortc/..., asyncio/...


def process_cpu_seconds(pid: int, reaped: bool = False) -> float:
    """utime + stime of a process, all its threads (/proc/PID/stat); with ``reaped``,
    plus cutime + cstime: its children that ended and that it waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = int(fields[11]) + int(fields[12])
    return (own + (int(fields[13]) + int(fields[14]) if reaped else 0)) / CLOCK_TICKS


def children_by_parent() -> dict[int, list[int]]:
    """Every process's children, from one pass over /proc."""
    parents: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(stat[1])].append(int(entry.name))
    return parents


def descendants(root: int, parents: dict[int, list[int]] | None = None) -> list[int]:
    """``root``'s children, their children, and so on (not ``root``)."""
    parents = children_by_parent() if parents is None else parents
    found: list[int] = []
    todo = list(parents.get(root, ()))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += parents.get(pid, ())
    return found


def server_cpu_seconds(root: int, parents: dict[int, list[int]] | None = None) -> float:
    """The CPU of a server and every process under it (worker processes): utime +
    stime of each, all threads, plus the CPU of those that ended meanwhile (cutime +
    cstime, once their parent waited for them)."""
    total = 0.0
    for pid in [root, *descendants(root, parents)]:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += process_cpu_seconds(pid, reaped=True)
    return total


def is_helper(pid: int) -> bool:
    """A process Python's multiprocessing starts beside its workers (its resource
    tracker), which serves nobody."""
    with contextlib.suppress(OSError):
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return False


def worker_cpu_seconds(*roots: int) -> dict[int, float]:
    """The CPU of each worker process of a server (or of each of a fleet's nodes, one
    root each), by pid: each child of a root with everything under it (not
    multiprocessing's resource tracker); a server without children is its own one
    worker."""
    parents = children_by_parent()
    workers: dict[int, float] = {}
    for root in roots:
        children = [pid for pid in parents.get(root, []) if not is_helper(pid)]
        if not children:
            with contextlib.suppress(OSError, IndexError, ValueError):
                workers[root] = process_cpu_seconds(root, reaped=True)
            continue
        workers.update((pid, server_cpu_seconds(pid, parents)) for pid in children)
    return workers


def process_rss_mb(pid: int) -> float:
    """Resident memory (/proc/PID/status VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def server_rss_mb(*roots: int) -> float:
    """The VmRSS of a server (or of several, one root each) and every process under it,
    added up (pages they share, such as those a forked worker has not written to, count
    once for each)."""
    total = 0.0
    parents = children_by_parent()
    for pid in [p for root in roots for p in (root, *descendants(root, parents))]:
        with contextlib.suppress(OSError, ValueError):
            total += process_rss_mb(pid)
    return total


def machine_busy_seconds() -> float:
    """CPU seconds spent by everything on the machine, all cores (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def udp_drops(*pids: int) -> dict[int, int]:
    """Datagrams dropped because the socket's buffer was full, for each UDP socket the
    processes have open (by inode): on loopback, the only way a packet gets lost, and a
    sign that a process did not read its sockets in time."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(int(target[8:-1]))
    return socket_drops(inodes)


def socket_drops(inodes: Collection[int]) -> dict[int, int]:
    """Datagrams dropped because the socket's buffer was full, for each of these UDP
    sockets that is open (by inode: ``os.fstat(sock.fileno()).st_ino``)."""
    drops = {}
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[9]) in inodes:
                    drops[int(fields[9])] = int(fields[12])
    return drops


def drops_since(earlier: dict[int, int], now: dict[int, int]) -> int:
    """Drops on the sockets open now since ``earlier`` (sockets opened meanwhile count
    from zero; those closed meanwhile are not counted)."""
    return sum(count - earlier.get(inode, 0) for inode, count in now.items())


def own_cpu_seconds() -> float:
    """This process's CPU time, all its threads."""
    times = os.times()
    return times.user + times.system


@dataclass(frozen=True)
class CpuMark:
    """CPU counters at one moment; two marks give cores used in between."""

    wall: float
    server: float
    client: float
    machine: float

    @classmethod
    def now(cls, *server_pids: int) -> CpuMark:
        """``server``: the server process (or a fleet's nodes) and every process under
        it (its workers)."""
        parents = children_by_parent()
        return cls(time.monotonic(), sum(server_cpu_seconds(pid, parents) for pid in server_pids),
                   own_cpu_seconds(), machine_busy_seconds())

    def cores_since(self, earlier: CpuMark) -> tuple[float, float, float]:
        """Mean cores used by the server, this process and the whole machine."""
        wall = max(self.wall - earlier.wall, 1e-9)
        return ((self.server - earlier.server) / wall, (self.client - earlier.client) / wall,
                (self.machine - earlier.machine) / wall)


class LoopLag:
    """How late this process's event loop runs a 10 ms timer: the generator's health."""

    def __init__(self) -> None:
        self.lags_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            self.lags_ms.append((time.monotonic() - before - 0.01) * 1000)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def tree_cpu_seconds(root: int, exclude: Collection[int] = ()) -> float:
    """utime + stime of ``root``'s descendants (not ``root`` itself), except the
    processes in ``exclude`` and their own descendants: the browsers Playwright started."""
    parents = children_by_parent()
    total = 0.0
    todo = [pid for pid in parents.get(root, ()) if pid not in exclude]
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += process_cpu_seconds(pid)
        todo += [child for child in parents.get(pid, ()) if child not in exclude]
    return total


def profile_top(path: Path, count: int = 25) -> list[dict[str, str | float]]:
    """The ``count`` functions with the most time of their own in a cProfile file:
    ``file:line(name)`` (paths from the package on), calls (``total/primitive`` when
    recursive), own and cumulative seconds. ``python -m pstats FILE`` shows the rest."""
    # pstats' own table, which typeshed does not declare:
    # (file, line, name) -> (primitive calls, calls, own s, cumulative s, callers)
    table: dict[tuple[str, int, str], tuple[int, int, float, float, object]] = (
        pstats.Stats(str(path)).stats)  # type: ignore[attr-defined]
    ranked = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[:count]
    return [{"function": _where(file, line, name),
             "calls": str(calls) if calls == primitive else f"{calls}/{primitive}",
             "own_s": round(own, 3), "cumulative_s": round(cumulative, 3)}
            for (file, line, name), (primitive, calls, own, cumulative, _) in ranked]


def _where(file: str, line: int, name: str) -> str:
    if file == "~":  # a built-in: its name says it all, "<method 'sendto' of ...>"
        return name
    short = _LIBRARY.sub("", file)  # aiortc/rtcrtpsender.py, asyncio/events.py
    if short == file:
        with contextlib.suppress(ValueError):  # videoassist/media/forward.py
            short = str(Path(file).relative_to(ROOT))
    return f"{short}:{line}({name})"

