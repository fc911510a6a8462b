"""A loopback coturn for the relay path: Debian's ``turnserver`` with the test flags of
docs (no configuration file, loopback peers allowed; the shipped configuration's
hardening is tests/media/test_turn.py's), ready once it answers a STUN binding."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.server import free_port

START_TIMEOUT_S = 10.0


def _answers_stun(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Send STUN binding requests to 127.0.0.1:port until a success comes back."""
    txid = os.urandom(12)
    request = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + txid
    deadline = time.monotonic() + START_TIMEOUT_S
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.05)
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"turnserver exited with {proc.returncode}"
            s.sendto(request, ("127.0.0.1", port))
            try:
                data = s.recv(2048)
            except (TimeoutError, ConnectionRefusedError):
                continue
            if len(data) >= 20 and data[:2] == b"\x01\x01" and data[8:20] == txid:
                return
    raise AssertionError(f"turnserver did not answer on 127.0.0.1:{port}")


@contextlib.contextmanager
def coturn(tmp_path: Path, secret: str) -> Iterator[int]:
    """A coturn on 127.0.0.1 sharing ``secret`` (TURN REST credentials); its port."""
    port = free_port()
    proc = subprocess.Popen(
        [shutil.which("turnserver") or "/usr/bin/turnserver", "-n",
         "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={port}",
         "--use-auth-secret", f"--static-auth-secret={secret}", "--realm=test",
         f"--userdb={tmp_path / 'turndb'}", "--no-cli", "--no-tls", "--no-dtls",
         "--allow-loopback-peers", f"--pidfile={tmp_path / 'turn.pid'}",
         "--log-file=stdout", "--simple-log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _answers_stun(port, proc)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
