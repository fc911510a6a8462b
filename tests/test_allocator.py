"""The server caps glibc's malloc arenas (videoassist.allocator), seen in a process
of its own: threads allocating at once share two arenas instead of one each."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = r"""
import ctypes, sys, threading
from videoassist.allocator import limit_arenas

capped = limit_arenas() if sys.argv[1] == "cap" else False
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
THREADS = 8
barrier = threading.Barrier(THREADS)
pointers = []
lock = threading.Lock()

def allocate():
    barrier.wait()  # all threads allocate at the same time
    mine = [libc.malloc(512) for _ in range(200)]
    with lock:
        pointers.append(mine)
    barrier.wait()  # and hold on to it until all have

threads = [threading.Thread(target=allocate) for _ in range(THREADS)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
# Each thread's blocks come from one arena: a thread arena lives in heaps aligned to
# 64 MiB, the main arena in the brk heap. Count the distinct places.
places = {mine[0] >> 26 for mine in pointers}
print(capped, len(places))
"""


def probe(mode: str, **env: str) -> tuple[str, int]:
    environment = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    environment.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True,
                         text=True, check=True, env=environment, timeout=60).stdout.split()
    return out[0], int(out[1])


def test_threads_share_two_arenas_once_capped() -> None:
    capped, places = probe("cap")
    assert capped == "True"
    assert places <= 2
    _, uncapped = probe("none")
    assert uncapped > 2  # the control: without the cap, threads spread out


def test_an_operators_malloc_arena_max_wins() -> None:
    capped, places = probe("cap", MALLOC_ARENA_MAX="4")
    assert capped == "False"
    assert 2 < places <= 4
