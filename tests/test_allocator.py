"""The server caps glibc's malloc arenas (videoassist.allocator), seen in a process
of its own: threads allocating at once share two arenas instead of one each (counted by
glibc's own malloc_info)."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = r"""
import ctypes, re, sys, tempfile, threading
from videoassist.allocator import limit_arenas

capped = limit_arenas() if sys.argv[1] == "cap" else False
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.fclose.argtypes = [ctypes.c_void_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
THREADS = 8
barrier = threading.Barrier(THREADS)

def allocate():
    barrier.wait()  # all threads allocate at the same time
    mine = [libc.malloc(512) for _ in range(200)]
    barrier.wait()  # and hold on to it until all have

threads = [threading.Thread(target=allocate) for _ in range(THREADS)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
# glibc's own account of its arenas: malloc_info writes one <heap nr="N"> per arena.
# (Guessing an arena from a block's address, by the 64 MiB alignment of thread heaps,
# miscounted whenever the main arena's brk heap straddled a 64 MiB boundary.)
with tempfile.NamedTemporaryFile() as report:
    stream = libc.fopen(report.name.encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    arenas = len(re.findall(rb'<heap nr="[0-9]+">', report.read()))
print(capped, arenas)
"""


def probe(mode: str, **env: str) -> tuple[str, int]:
    environment = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    environment.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True,
                         text=True, check=True, env=environment, timeout=60).stdout.split()
    return out[0], int(out[1])


def test_threads_share_two_arenas_once_capped() -> None:
    capped, arenas = probe("cap")
    assert capped == "True"
    assert arenas <= 2
    _, uncapped = probe("none")
    assert uncapped > 2  # the control: without the cap, threads spread out


def test_an_operators_malloc_arena_max_wins() -> None:
    capped, arenas = probe("cap", MALLOC_ARENA_MAX="4")
    assert capped == "False"
    assert 2 < arenas <= 4
