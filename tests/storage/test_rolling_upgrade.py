"""Expand, then contract: during a rolling upgrade (docs/deploy.md, Fleet) the new
release's migrations are applied first, and the nodes still on the previous release
run on the new schema until their turn. So the previous release must serve a whole
call on the newest schema, on SQLite and PostgreSQL, and the new release must read
what it wrote, its audit rows included; and no migration may take away what an older
release reads (drop, rename, retype, or a column it cannot fill) unless it says, in a
``-- contract:`` line, which release stopped reading it.

The previous release is this repository's code at the parent of the commit that added
the newest migration (HEAD, while that migration is not committed yet), taken with
``git archive`` and run from a directory of its own on this environment's packages.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import aiohttp
import pytest

from tests.support.process import ServeProcess, clean_env, ok
from tests.support.server import PASSWORD, Clock, Server, join_call, receive
from videoassist.config import Settings

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "videoassist" / "storage" / "migrations"
BOTH = pytest.mark.parametrize("server_backend", ["sqlite", "postgresql"])

# What takes away something an older release reads or writes.
CONTRACTING = re.compile(
    r"\bDROP\s+(?:TABLE|COLUMN|VIEW|INDEX|TRIGGER|FUNCTION)\b"
    r"|\bRENAME\b"
    r"|\bALTER\s+COLUMN\b"
    r"|\bADD\s+COLUMN\b[^;,]*\bNOT\s+NULL\b(?![^;,]*\bDEFAULT\b)",
    flags=re.IGNORECASE)


def newest_migration() -> Path:
    return max((MIGRATIONS / "sqlite").glob("[0-9][0-9][0-9][0-9]_*.sql"))


def git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, timeout=60,
                          check=False)


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The code (``videoassist/`` and ``web/``) of the release before the newest
    migration, in a directory of its own."""
    if git("rev-parse", "--git-dir").returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("the rolling-upgrade test needs the repository's history")
        pytest.skip("not a git checkout: no previous release to run")
    newest = newest_migration().relative_to(ROOT)
    # The main line's commit that brought it (a merge, when it came on a branch).
    added = git("log", "--first-parent", "--diff-merges=first-parent", "--diff-filter=A",
                "--format=%H", "--no-patch", "-1", "--", str(newest))
    assert added.returncode == 0, added.stderr
    commit = f"{added.stdout.decode().strip()}^" if added.stdout.strip() else "HEAD"
    archive = git("archive", "--format=tar", commit, "videoassist", "web")
    assert archive.returncode == 0, archive.stderr
    directory = tmp_path_factory.mktemp("previous-release")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(directory, filter="data")
    assert not (directory / newest).exists()
    found = subprocess.run(
        [sys.executable, "-c", "import videoassist; print(videoassist.__file__)"],
        capture_output=True, text=True, timeout=60, cwd=directory.parent, check=True,
        env=clean_env(PYTHONPATH=str(directory)))
    assert Path(found.stdout.strip()).is_relative_to(directory), found.stdout
    return directory


@BOTH
async def test_the_previous_release_serves_a_call_on_the_newest_schema(
        tmp_path: Path, server_backend: str, server_databases: object,
        previous_release: Path) -> None:
    data_dir = tmp_path / "data"
    # The rolling upgrade's first step: the new release migrates.
    ok(data_dir, "migrate")
    ok(data_dir, "user", "add", "bob", "--role", "expert", "--password-stdin",
       stdin=PASSWORD + "\n")

    # No media here: the tests' loopback ICE peers are a setting older releases lack.
    old = ServeProcess(data_dir, env={"PYTHONPATH": str(previous_release)},
                       unset=("VIDEOASSIST_ICE_ALLOWED_PEERS",))
    try:
        old.wait_for(r"serving on")
        old.wait_ready()
        async with aiohttp.ClientSession() as http:
            remote = Server(old.url, Settings(port=old.port), None, Clock(),  # type: ignore[arg-type]
                            http)
            staff = await remote.sign_in("bob")
            job = await remote.job(staff, "Boiler makes a noise")
            customer_token = await remote.participant(staff, job)
            expert = await join_call(remote, staff, job)
            customer = await join_call(remote, customer_token)
            await customer.send_json({"type": "chat.message", "text": "on the old release"})
            for ws in (expert, customer):
                while (message := await receive(ws, timeout=10))["type"] != "chat.message":
                    pass
                assert message["message"]["text"] == "on the old release", message
            await expert.close()
            await customer.close()
            status, body, _ = await remote.request("POST", f"/api/jobs/{job}/close",
                                                   token=staff)
            assert status == 200, body
    finally:
        assert old.stop() == 0, old.output
    assert "Traceback" not in old.output, old.output

    # The new release reads what the previous one wrote, and its audit rows chain.
    ok(data_dir, "export", str(job), "--out", str(tmp_path / "job.zip"))
    with zipfile.ZipFile(tmp_path / "job.zip") as record:
        text = "".join(record.read(name).decode(errors="replace")
                       for name in record.namelist() if name.endswith((".json", ".md")))
    assert "on the old release" in text and "Boiler makes a noise" in text
    ok(data_dir, "audit", "verify")


def contracting(code: str) -> str | None:
    """The first statement of a migration's SQL that takes something away, if any. A
    trigger or function dropped and created again by the same name in the same
    migration is replaced, not taken away (how the previous release's writes fare
    under the new one is for the test above to find)."""
    for found in CONTRACTING.finditer(code):
        replaced = re.match(r"DROP\s+(TRIGGER|FUNCTION)\s+(?:IF\s+EXISTS\s+)?(\w+)",
                            code[found.start():], flags=re.I)
        if replaced and re.search(rf"\bCREATE\s+(?:OR\s+REPLACE\s+)?{replaced.group(1)}"
                                  rf"\s+{replaced.group(2)}\b", code, flags=re.I):
            continue
        return found.group(0)
    return None


def test_no_migration_takes_away_what_an_older_release_reads() -> None:
    for path in sorted(MIGRATIONS.glob("*/*.sql")):
        text = path.read_text(encoding="utf-8")
        code = re.sub(r"--[^\n]*", "", text)
        if found := contracting(code):
            assert re.search(r"^-- contract: .*release", text, flags=re.M), (
                f"{path.relative_to(ROOT)}: {found!r} takes away what an older "
                "release may read; during a rolling upgrade it still runs on this schema. "
                "Expand first (add, copy, read both), and contract in a later migration "
                "whose '-- contract:' line names the release that stopped reading it")


def test_the_contracting_check_finds_what_it_must() -> None:
    for statement in ("DROP TABLE jobs;", "ALTER TABLE jobs DROP COLUMN title;",
                      "ALTER TABLE jobs RENAME COLUMN title TO name;",
                      "ALTER TABLE jobs RENAME TO work;",
                      "ALTER TABLE jobs ALTER COLUMN title TYPE bytea;",
                      "ALTER TABLE jobs ADD COLUMN owner integer NOT NULL;",
                      "DROP INDEX jobs_by_title;",
                      "DROP TRIGGER audit_no_update; CREATE TRIGGER audit_other BEFORE"):
        assert contracting(statement), statement
    for statement in ("ALTER TABLE jobs ADD COLUMN owner integer;",
                      "ALTER TABLE users ADD COLUMN v INTEGER NOT NULL DEFAULT 0;",
                      "CREATE INDEX calls_started ON calls (started_at);",
                      "DROP TRIGGER audit_no_update ON audit_log;\n"
                      "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_log"):
        assert not contracting(statement), statement
