"""systemd/videoassist@.service, the template unit docs/deploy.md installs.

Debian's ``systemd-analyze`` (on these machines although they do not run systemd as
their init) verifies the unit and rates its sandbox, offline. Its ``ExecStart`` is read
as systemd reads it (``%i`` and ``%S`` expanded) and parsed by the CLI's own parser,
then run as the unit would run it: the virtualenv's ``videoassist`` in place of
``/opt/videoassist/bin/videoassist`` (where docs/deploy.md installs it), the settings
file docs/deploy.md shows in a temporary ``/etc/videoassist``, the state directory in a
temporary directory, and two workers on a free port (``VIDEOASSIST_WORKERS`` and
``VIDEOASSIST_PORT``, which a settings file never needs to name). Without systemd as
init, the sandbox itself (``ProtectSystem``, the system call filter...) is not
exercised: the run shows the command line, the settings and the stop signal work.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.docs import fenced_blocks
from tests.support.process import LINK_TOKEN, clean_env
from tests.support.server import free_port
from videoassist.cli import build_parser
from videoassist.cli.server import cmd_serve
from videoassist.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "videoassist@.service"
INSTALLED = "/opt/videoassist/bin/videoassist"  # docs/deploy.md's virtualenv
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="no systemd-analyze (Debian's package systemd) on this machine")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


def settings_of(unit: Path = UNIT) -> dict[str, list[str]]:
    """Each ``[Service]`` (and ``[Unit]``, ``[Install]``) key's values, in order; a
    line ending in a backslash goes on."""
    found: dict[str, list[str]] = {}
    lines = iter(unit.read_text().splitlines())
    for line in lines:
        while line.endswith("\\"):
            line = line[:-1] + " " + next(lines).strip()
        if not line.strip() or line.lstrip().startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key.strip(), []).append(value.strip())
    return found


def only(key: str) -> str:
    [value] = settings_of()[key]
    return value


def expand(value: str, instance: str, state: Path) -> str:
    """The specifiers this unit uses, as systemd expands them for a system unit."""
    for specifier, meaning in (("%i", instance), ("%S", str(state))):
        value = value.replace(specifier, meaning)
    assert "%" not in value.replace("%%", ""), f"a specifier the test does not know: {value}"
    return value.replace("%%", "%")


def the_environments_videoassist() -> str:
    """The ``videoassist`` command of the environment running the tests (``pip install``
    puts it beside the interpreter, as in /opt/videoassist/bin)."""
    command = Path(sys.executable).parent / "videoassist"
    assert command.is_file(), f"no {command}: install the project (scripts/test does)"
    return str(command)


def unit_for_this_machine(directory: Path) -> Path:
    """The unit with ``ExecStart`` naming a command that exists on this machine."""
    text = UNIT.read_text()
    assert text.count(INSTALLED) == 1, f"{UNIT.name} starts no {INSTALLED}"
    unit = directory / UNIT.name
    unit.write_text(text.replace(INSTALLED, the_environments_videoassist()))
    return unit


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=60,
                          cwd="/")


@needs_analyze
def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path: Path) -> None:
    unit_for_this_machine(tmp_path)
    for name in ("videoassist@.service", "videoassist@main.service"):
        result = analyze("verify", str(tmp_path / name))
        said = result.stdout + result.stderr
        # Only what concerns this unit: other units of the machine may have their say.
        about_ours = [line for line in said.splitlines()
                      if "videoassist" in line or str(tmp_path) in line]
        assert result.returncode == 0 and about_ours == [], said


@needs_analyze
def test_the_sandbox_rates_an_exposure_of_at_most_2(tmp_path: Path) -> None:
    unit_for_this_machine(tmp_path)
    # --threshold is 10 times the level shown ("1.5 OK"): above it, the exit status is 1.
    result = analyze("security", "--offline=true", "--threshold=20",
                     str(tmp_path / "videoassist@main.service"))
    assert result.returncode == 0, result.stdout + result.stderr
    level = re.search(r"Overall exposure level for videoassist@main\.service: ([\d.]+)",
                      result.stdout)
    assert level and float(level.group(1)) <= 2.0, result.stdout


def test_the_unit_runs_serve_with_options_the_cli_has_on_its_state_directory() -> None:
    argv = expand(only("ExecStart"), "main", Path("/var/lib")).split()
    assert argv[0] == INSTALLED
    args = build_parser().parse_args(argv[1:])  # an unknown option exits here
    assert args.func is cmd_serve
    assert args.config == Path("/etc/videoassist/main.toml")
    state = Path("/var/lib") / expand(only("StateDirectory"), "main", Path("/var/lib"))
    assert args.data_dir == state == Path("/var/lib/videoassist/main")
    assert only("StateDirectoryMode") == "0700" and only("UMask") == "0077"


def test_the_unit_stops_as_the_drain_needs_and_is_hardened() -> None:
    unit = settings_of()
    assert only("KillSignal") == "SIGTERM"  # what starts the drain
    assert only("KillMode") == "mixed"  # the supervisor only; workers take its orders
    drain = Settings().drain_timeout_s
    assert only("TimeoutStopSec").isdigit() and int(only("TimeoutStopSec")) > drain
    assert only("User") == "videoassist" and only("LimitNOFILE").isdigit()
    assert int(only("LimitNOFILE")) >= 65536
    for key, value in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                       ("CapabilityBoundingSet", "")]:
        assert unit.get(key) == [value], key


def test_the_documented_settings_file_is_one_videoassist_reads(tmp_path: Path) -> None:
    [block] = [b for b in fenced_blocks("deploy.md") if b.info == "toml"]
    path = tmp_path / "main.toml"
    path.write_text(block.body)
    settings = load_settings({}, path)
    assert settings.public_url == "https://assist.example.com"
    assert settings.trust_forwarded_for
    assert settings.drain_timeout_s < int(only("TimeoutStopSec"))


def test_the_unit_s_command_serves_and_drains_on_its_stop_signal(tmp_path: Path) -> None:
    state, etc = tmp_path / "state", tmp_path / "etc"
    etc.mkdir()
    [block] = [b for b in fenced_blocks("deploy.md") if b.info == "toml"]
    (etc / "test.toml").write_text(block.body)
    data_dir = state / "videoassist" / "test"
    data_dir.mkdir(parents=True, mode=0o700)  # what StateDirectory= makes
    argv = [part.replace("/etc/videoassist/", f"{etc}/")
            for part in expand(only("ExecStart"), "test", state).split()]
    argv[0] = the_environments_videoassist()
    port = free_port()
    output = tmp_path / "journal.log"
    with output.open("wb") as journal:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=journal, stderr=subprocess.STDOUT,
            cwd="/", umask=int(only("UMask"), 8),
            env=clean_env(VIDEOASSIST_PORT=str(port), VIDEOASSIST_WORKERS="2"))
    try:
        # The settings file reached the supervisor: its banner says so once every worker
        # is ready.
        banner = "(public URL https://assist.example.com) with 2 workers"
        deadline = time.monotonic() + START_TIMEOUT_S
        while banner not in (journal_text := output.read_text()):
            assert proc.poll() is None, journal_text
            assert time.monotonic() < deadline, journal_text
            time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            assert response.status == 200
        # The first start's set-password link, for the journal.
        assert re.search(rf"https://assist\.example\.com/\S*#{LINK_TOKEN}", journal_text)
        assert (data_dir / "videoassist.sqlite3").is_file()
        # Private files (the server makes them so itself; UMask= covers anything else).
        assert all(p.stat().st_mode & 0o077 == 0 for p in data_dir.iterdir()), \
            sorted(oct(p.stat().st_mode) for p in data_dir.iterdir())
        workers = [int(pid) for pid in
                   re.findall(r"worker \d+ started \(pid (\d+)[,)]", journal_text)]
        assert len(workers) == 2, journal_text

        proc.send_signal(signal.Signals[only("KillSignal")])  # KillMode=mixed: to it only
        assert proc.wait(STOP_TIMEOUT_S) == 0, output.read_text()
        for pid in workers:  # nothing left for systemd's final SIGKILL
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)
