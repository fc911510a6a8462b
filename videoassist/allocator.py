"""The C allocator's arenas: two, not glibc's default of eight per core.

glibc gives each thread that allocates its own malloc arena, up to eight per core,
and an arena keeps the pages it grew to. The server's threads (database, snapshot
workers, decoders on demand) each hold on to their high-water mark, so with the
default the process's memory climbed in steps for minutes of calls coming and going
(docs/performance.md, "Memory over time"); with two it levelled off within two
minutes and stayed flat in the runs measured there (single five-minute runs, not
hours). The event loop thread does nearly all the allocating, so
fewer arenas cost no contention worth measuring.

``MALLOC_ARENA_MAX`` in the environment, read by glibc itself, wins: this does
nothing when it is set, nor on a C library other than glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

logger = logging.getLogger(__name__)

ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter, from glibc's <malloc.h>


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas, before the server starts its threads; whether it did."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no arenas to cap)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(_M_ARENA_MAX, arenas) != 1:
        logger.warning("could not cap the C allocator at %d arenas", arenas)
        return False
    return True
