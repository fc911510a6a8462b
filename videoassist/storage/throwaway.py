"""A throwaway PostgreSQL server, for the tests and for the benchmark's fleet; the
server itself never uses it.

``ThrowawayPostgres.start`` runs ``initdb`` in a new temporary directory as the ``postgres``
user (PostgreSQL refuses to run as root), then the server on 127.0.0.1 and a free
port, its socket in that directory, without fsync (nothing in it needs to survive a
crash); ``stop`` stops it and removes the directory. Debian's ``postgresql`` package.

PostgreSQL detaches from whoever starts it, so a test run or benchmark killed before
its ``stop`` would leave it running (one was found 45 minutes after such a run). A
watchdog process waits for the starter to end, however it ends: it holds the read end
of a pipe only the starter writes to, and when that closes (``stop``, or the starter's
exit, a SIGKILL included) it stops the server, if it still runs, and removes the
directory.

Shared by ``tests.support.databases`` (which adds its per-test databases) and the
relay benchmark's fleet mode (``scripts/loadgen/fleet.py``), which must not import the
tests; it imports nothing of the project.
"""

from __future__ import annotations

import contextlib
import glob
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Self

PROGRAM_TIMEOUT_S = 120.0  # initdb, pg_ctl, psql on a busy machine

# The watchdog's program (argv: the root, the PostgreSQL programs' directory): wait
# for stdin to close, then do what ``stop`` does.
_WATCHDOG = """
import sys
from pathlib import Path
from videoassist.storage.throwaway import ThrowawayPostgres
sys.stdin.buffer.read()
ThrowawayPostgres(Path(sys.argv[1]), 0, Path(sys.argv[2])).stop()
"""


def postgresql_bin() -> Path | None:
    """Debian's PostgreSQL programs (``postgresql`` package), the newest if several."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ThrowawayPostgres:
    """A PostgreSQL server of its own, in ``root``; its superuser is ``postgres``,
    trusted on loopback."""

    def __init__(self, root: Path, port: int, bin_dir: Path) -> None:
        self.root = root
        self.port = port
        self._bin = bin_dir
        self._watchdog: subprocess.Popen[bytes] | None = None

    def _watch(self) -> None:
        """Start the watchdog (in a session of its own: a Ctrl-C or a signal to the
        starter's process group leaves it to do its work)."""
        self._watchdog = subprocess.Popen(  # noqa: S603 (our own program and paths)
            [sys.executable, "-c", _WATCHDOG, str(self.root), str(self._bin)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)

    @classmethod
    def start(cls, max_connections: int = 300) -> Self:
        """initdb and start; on any failure, what was made is stopped and removed."""
        bin_dir = postgresql_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (Debian's postgresql package: "
                               "scripts/test installs it)")
        root = Path(tempfile.mkdtemp(prefix="videoassist-pg-"))
        server = cls(root, _free_port(), bin_dir)
        try:
            server._watch()
            shutil.chown(root, "postgres", "postgres")
            server.as_postgres("initdb", "-D", str(root / "data"), "-U", "postgres",
                               "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync")
            options = (f"-k {root} -h 127.0.0.1 -p {server.port} -c fsync=off"
                       " -c synchronous_commit=off -c full_page_writes=off"
                       f" -c max_connections={max_connections}")
            server.as_postgres("pg_ctl", "-D", str(root / "data"), "-l",
                               str(root / "server.log"), "-w", "-t", "60", "-o", options,
                               "start")
        except BaseException:
            server.stop()
            raise
        return server

    def as_postgres(self, program: str, *args: str) -> str:
        """Run one of PostgreSQL's programs as the ``postgres`` user; its output."""
        # Our own arguments to PostgreSQL's programs, never a user's input.
        result = subprocess.run(  # noqa: S603
            ["/usr/sbin/runuser", "-u", "postgres", "--", str(self._bin / program), *args],
            capture_output=True, text=True, timeout=PROGRAM_TIMEOUT_S, cwd=self.root,
            check=False)
        if result.returncode != 0:
            log = self.root / "server.log"
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr}"
                               + (log.read_text() if log.exists() else ""))
        return result.stdout

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str) -> str:
        """Run one statement in the ``postgres`` database; its output."""
        return self.as_postgres("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U",
                                "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                                "-Atqc", statement)

    @property
    def pid(self) -> int | None:
        """The postmaster's process id (its backends are its children), if it runs."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.root / "data" / "postmaster.pid").read_text().split()[0])
        return None

    def stop(self) -> None:
        """Stop the server (immediate: nothing needs to be kept) and remove it all."""
        try:
            if (self.root / "data" / "postmaster.pid").exists():
                self.as_postgres("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate",
                                 "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            if self._watchdog is not None:  # its pipe closed, it finds nothing left
                assert self._watchdog.stdin is not None
                self._watchdog.stdin.close()
                self._watchdog.wait(PROGRAM_TIMEOUT_S)
