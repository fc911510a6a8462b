"""The ``videoassist`` command run as a real process, the way an operator types it.

Every command gets ``--data-dir`` in the test's temporary directory and an
environment without ``VIDEOASSIST_*`` variables. Bad input must give exit code 2,
exactly one line on stderr and never a traceback (the contract in ``videoassist/cli/__init__.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import asyncpg
import pytest

from tests.support.audit import old_database
from tests.support.databases import Target, drop_trigger, raw_execute, raw_fetchall
from tests.support.process import LINK_TOKEN, ServeProcess, clean_env, ok, post_json, videoassist
from tests.support.server import PASSWORD, ServerFactory
from videoassist.auth.passwords import verify_password
from videoassist.storage.db import (
    POSTGRESQL,
    SQLITE,
    advisory_key,
    is_postgresql_url,
    migrations,
)

DEFAULT_URL = "http://127.0.0.1:8080"  # public URL when nothing is configured


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def query(data_dir: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Read the server's SQLite file directly (read-only)."""
    conn = sqlite3.connect(f"file:{data_dir / 'videoassist.sqlite3'}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql, params).fetchall())
    finally:
        conn.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(scope="module")
def populated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("template") / "data"
    ok(data_dir, "user", "add", "bob", "--role", "expert", "--password-stdin",
       stdin=PASSWORD + "\n")
    assert ok(data_dir, "job", "create", "Boiler makes a noise").strip() == "1"
    return data_dir


@pytest.fixture
def populated(populated_template: Path, data_dir: Path) -> Path:
    """A data dir of this test's own with an expert 'bob' (password set) and job 1."""
    shutil.copytree(populated_template, data_dir)
    return data_dir


# What the server needs and a command does not: importing them is most of a start-up.
SERVER_ONLY = ("aiohttp", "aiortc", "av", "cv2", "jwt", "cryptography")


def test_the_command_starts_without_what_only_the_server_needs() -> None:
    """Every ``videoassist`` command is a process of its own (an operator's script may
    run hundreds, the tests do): importing the CLI loads neither the HTTP client nor the
    media stack nor the token library, which only the server uses."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, videoassist.cli; print(*sys.modules)"],
        capture_output=True, text=True, check=True, timeout=30, env=clean_env()).stdout
    assert not [m for m in loaded.split() if m.split(".")[0] in SERVER_ONLY]


def test_migrate_creates_a_private_database(data_dir: Path) -> None:
    out = ok(data_dir, "migrate")
    db = data_dir / "videoassist.sqlite3"
    shipped = migrations()
    version = len(shipped)
    assert out.splitlines() == [*(f"applied migration {name}" for _, name, _ in shipped),
                                f"database {db} at schema version {version}"]
    assert mode(db) == 0o600
    assert mode(data_dir) == 0o700
    tables = {row[0] for row in query(data_dir, "SELECT name FROM sqlite_master")}
    assert {"users", "jobs", "invites", "calls", "participants"} <= tables
    # A second run applies nothing.
    assert ok(data_dir, "migrate").splitlines() == [
        f"database {db} at schema version {version}"]
    assert mode(db) == 0o600


def test_an_existing_data_dir_is_made_private_by_every_command(tmp_path: Path) -> None:
    """mkdir(mode=0o700) leaves an existing directory's mode alone: a data dir made by
    hand (0755), or loosened later, is made 0700 by the next command."""
    by_hand = tmp_path / "by-hand"
    by_hand.mkdir()
    by_hand.chmod(0o755)
    result = videoassist(by_hand, "migrate")
    assert result.code == 0, result
    assert mode(by_hand) == 0o700
    assert "was mode 755: made 700" in result.err
    by_hand.chmod(0o750)  # loosened after the first run: the next command mends it
    ok(by_hand, "audit", "verify")
    assert mode(by_hand) == 0o700


async def test_an_existing_data_dir_is_made_private_at_start(
        tmp_path: Path, server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
        ) -> None:
    ours = tmp_path / "ours"
    ours.mkdir()
    ours.chmod(0o755)
    await server_factory(data_dir=ours)
    assert mode(ours) == 0o700
    if os.geteuid() != 0:
        return  # only root can give a directory to another user
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    theirs.chmod(0o777)  # writable, so that this process can still start there
    os.chown(theirs, 65534, 65534)  # nobody's: their owner's to change, not ours
    await server_factory(data_dir=theirs)
    assert mode(theirs) == 0o777
    assert "belongs to another user (uid 65534): make it 700" in caplog.text


def test_user_add_with_password_on_stdin(data_dir: Path) -> None:
    out = ok(data_dir, "user", "add", "bob", "--role", "expert", "--password-stdin",
             stdin=PASSWORD + "\n")
    assert "'bob'" in out
    assert "/setup#" not in out
    [(role, password_hash, disabled_at)] = query(
        data_dir, "SELECT role, password_hash, disabled_at FROM users WHERE username = 'bob'")
    assert role == "expert"
    assert disabled_at is None
    assert isinstance(password_hash, str)
    assert verify_password(PASSWORD, password_hash)  # the newline is not part of it
    assert not verify_password(PASSWORD + "\n", password_hash)


def test_user_add_without_password_prints_a_setup_link(data_dir: Path) -> None:
    out = ok(data_dir, "user", "add", "carol", "--role", "technician",
             "--display-name", " Carol Nkemelu ")
    match = re.search(rf"{re.escape(DEFAULT_URL)}/setup#({LINK_TOKEN})(?![A-Za-z0-9_-])", out)
    assert match, out
    [(password_hash, display_name)] = query(
        data_dir, "SELECT password_hash, display_name FROM users WHERE username = 'carol'")
    assert (password_hash, display_name) == (None, "Carol Nkemelu")
    # The server keeps a hash of the link's token, never the token itself.
    assert match[1].encode() not in (data_dir / "videoassist.sqlite3").read_bytes()


async def test_a_user_added_by_the_cli_or_the_api_is_audited_alike(
        server_factory: ServerFactory) -> None:
    """``accounts.add_user`` audits ``user.created`` itself, whoever calls it: the same
    row through either door, but for who did it (before, each caller wrote its own)."""
    server = await server_factory()
    admin = await server.add_user("admin")
    token = await server.sign_in(admin.username)
    code, _, err = await server.cli("user", "add", "carol", "--role", "technician")
    assert code == 0, err
    status, body, _ = await server.request("POST", "/api/users", token=token,
                                           json={"username": "dave", "role": "technician"})
    assert status == 201, body
    rows = await raw_fetchall(server.settings.database,
                              "SELECT actor, target, detail FROM audit_log "
                              "WHERE action = 'user.created' ORDER BY id")
    carol = (await server.store.users.find("carol"))
    assert carol is not None
    assert [(actor, target) for actor, target, _ in rows] == [
        ("cli", f"user:{admin.id}"),  # the test's own helper: a third door, audited too
        ("cli", f"user:{carol.id}"), (f"user:{admin.id}", f"user:{body['user']['id']}")]
    assert json.loads(rows[1][2]) == json.loads(rows[2][2]) == {"role": "technician"}


def test_job_create_prints_the_id(data_dir: Path) -> None:
    first = ok(data_dir, "job", "create", "Boiler makes a noise", "--external-ref", "WO-1")
    second = ok(data_dir, "job", "create", "Leaking valve")
    assert re.fullmatch(r"\d+\n", first), first
    assert int(second) == int(first) + 1
    assert query(data_dir, "SELECT title, external_ref, status FROM jobs WHERE id = ?",
                 (int(first),)) == [("Boiler makes a noise", "WO-1", "open")]


def test_invite_prints_only_the_join_link_on_stdout(populated: Path) -> None:
    result = videoassist(populated, "invite", "1", "--role", "customer")
    assert result.code == 0, result
    [line] = result.out.splitlines()  # scripts take stdout as the link
    assert re.fullmatch(rf"{re.escape(DEFAULT_URL)}/join#{LINK_TOKEN}", line), line
    assert "valid until" in result.err
    another = ok(populated, "invite", "1", "--role", "technician", "--ttl", "600").strip()
    assert another.split("#")[1] != line.split("#")[1]
    assert query(populated, "SELECT role, purpose FROM invites ORDER BY id") == [
        ("customer", "join"), ("technician", "join")]


def test_user_disable(populated: Path) -> None:
    ok(populated, "invite", "1", "--role", "customer")
    out = ok(populated, "user", "disable", "bob")
    assert "disabled 'bob'" in out
    [(disabled_at,)] = query(populated, "SELECT disabled_at FROM users WHERE username = 'bob'")
    assert disabled_at is not None


def test_keys_rotate_puts_a_new_key_first_and_keeps_the_old(data_dir: Path) -> None:
    keys_file = data_dir / "jwt-keys.json"
    out = ok(data_dir, "keys", "rotate")
    first = json.loads(keys_file.read_text())["keys"]
    assert mode(keys_file) == 0o600
    assert len(first) == 2
    assert first[0]["kid"] in out
    ok(data_dir, "keys", "rotate")
    second = json.loads(keys_file.read_text())["keys"]
    assert second[1] == first[0]
    assert second[0]["kid"] not in (first[0]["kid"], first[1]["kid"])
    assert mode(keys_file) == 0o600
    assert sorted(p.name for p in data_dir.iterdir()) == ["jwt-keys.json"]  # no temp files


def test_apikey_add_list_revoke(data_dir: Path) -> None:
    result = videoassist(data_dir, "apikey", "add", "Salesforce", "--scope", "jobs:create",
                         "--scope", "jobs:read")
    assert result.code == 0, result
    key = result.out.strip()
    assert re.fullmatch(rf"vak_{LINK_TOKEN}", key), result.out
    assert "shown once" in result.err and key not in result.err
    [(stored, scopes)] = query(data_dir, "SELECT token_hash, scopes FROM api_keys")
    assert stored == hashlib.sha256(key.encode()).digest()
    assert json.loads(str(scopes)) == ["jobs:create", "jobs:read"]

    [line] = ok(data_dir, "apikey", "list").splitlines()
    assert line.split("\t") == ["1", "Salesforce", f"...{key[-4:]}", "jobs:create jobs:read",
                                "active", "never used"]
    assert "revoked" in ok(data_dir, "apikey", "revoke", "1")
    [line] = ok(data_dir, "apikey", "list").splitlines()
    assert "\trevoked " in line and key not in line
    assert [row[0] for row in query(data_dir, "SELECT action FROM audit_log ORDER BY id")] == [
        "apikey.created", "apikey.revoked"]


def test_webhooks_secret_is_generated_once_and_private(data_dir: Path) -> None:
    secret = ok(data_dir, "webhooks", "secret").strip()
    assert re.fullmatch(LINK_TOKEN, secret)
    assert ok(data_dir, "webhooks", "secret").strip() == secret
    assert mode(data_dir / "webhook-secret") == 0o600
    assert (data_dir / "webhook-secret").read_text().strip() == secret


BAD_INPUT = {
    "unknown role": (["user", "add", "dave", "--role", "boss"], "", {}),
    "invite for a job that does not exist": (["invite", "99", "--role", "customer"], "", {}),
    "non-numeric job id": (["invite", "abc", "--role", "customer"], "", {}),
    "job id zero": (["invite", "0", "--role", "customer"], "", {}),
    "role that cannot be invited": (["invite", "1", "--role", "admin"], "", {}),
    "ttl too short": (["invite", "1", "--role", "customer", "--ttl", "5"], "", {}),
    "duplicate username": (
        ["user", "add", "bob", "--role", "expert", "--password-stdin"], PASSWORD + "\n", {}),
    "duplicate username, other case": (
        ["user", "add", "BOB", "--role", "expert", "--password-stdin"], PASSWORD + "\n", {}),
    "too-short password on stdin": (
        ["user", "add", "dave", "--role", "expert", "--password-stdin"], "short\n", {}),
    "empty stdin": (["user", "add", "dave", "--role", "expert", "--password-stdin"], "", {}),
    "malformed username": (["user", "add", "has space", "--role", "expert"], "", {}),
    "display name with a direction override": (
        ["user", "add", "dave", "--role", "expert", "--display-name", "Dave\u202e"], "", {}),
    "disable a user that does not exist": (["user", "disable", "nobody"], "", {}),
    "blank job title": (["job", "create", "   "], "", {}),
    "malformed VIDEOASSIST_PORT": (["migrate"], "", {"VIDEOASSIST_PORT": "eighty"}),
    "VIDEOASSIST_PORT out of range": (["migrate"], "", {"VIDEOASSIST_PORT": "70000"}),
    "unknown VIDEOASSIST_ setting": (["migrate"], "", {"VIDEOASSIST_PROT": "8080"}),
    "serve with a malformed VIDEOASSIST_PORT": (["serve"], "", {"VIDEOASSIST_PORT": "80x"}),
    "API key with an unknown scope": (["apikey", "add", "crm", "--scope", "admin"], "", {}),
    "API key without a scope": (["apikey", "add", "crm"], "", {}),
    "API key with a blank name": (["apikey", "add", " ", "--scope", "jobs:read"], "", {}),
    "revoke an API key that does not exist": (["apikey", "revoke", "7"], "", {}),
    "webhook secret that is configured": (
        ["webhooks", "secret"], "", {"VIDEOASSIST_WEBHOOK_SECRET": "x" * 32}),
    "malformed VIDEOASSIST_WEBHOOK_URL": (
        ["migrate"], "", {"VIDEOASSIST_WEBHOOK_URL": "ftp://hooks.example"}),
    "audit export since a time that is none": (["audit", "export", "--since", "soon"], "", {}),
    "audit export until before since": (
        ["audit", "export", "--since", "2026-02-01", "--until", "2026-01-01"], "", {}),
    "backup into a directory that exists": (["backup", "."], "", {}),
    "restore from a directory that is not a backup": (["restore", "."], "", {}),
    "restore from nowhere": (["restore", "no-such-backup"], "", {}),
}


@pytest.mark.parametrize(("args", "stdin", "env"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_one_line_and_exit_2(
    populated: Path, args: list[str], stdin: str, env: dict[str, str]
) -> None:
    before = query(populated, "SELECT username, role, disabled_at FROM users ORDER BY id")
    result = videoassist(populated, *args, stdin=stdin, env=clean_env(**env))
    assert "Traceback" not in result.out + result.err, result
    assert result.code == 2, result
    assert len(result.err.splitlines()) == 1, f"stderr is not one line:\n{result.err}"
    assert result.err.startswith("videoassist"), result.err  # names the program
    assert result.out == "", result.out
    assert query(populated, "SELECT username, role, disabled_at FROM users ORDER BY id") == before
    assert query(populated, "SELECT count(*) FROM invites") == [(0,)]


def test_serve_without_its_label_fonts_stops_saying_so(populated: Path) -> None:
    # A start-up check that fails once the database is open: the process still ends
    # (videoassist() waits 30 s at most), with the reason as its last word.
    result = videoassist(populated, "serve", "--port", "0", env=clean_env(
        VIDEOASSIST_LABEL_FONTS="/nonexistent/NotoSans-Bold.ttf"))
    assert result.code == 2, result
    assert "Traceback" not in result.out + result.err, result
    assert result.err.splitlines()[-1].startswith(
        "videoassist: label font /nonexistent/NotoSans-Bold.ttf cannot be used"), result.err


def test_serve_first_run_prints_a_setup_link_and_writes_private_files(data_dir: Path) -> None:
    server = ServeProcess(data_dir)
    try:
        link = server.wait_for(rf"{re.escape(server.url)}/setup#{LINK_TOKEN}")
        server.wait_for(r"serving on")
        server.wait_ready()
        for name in ("videoassist.sqlite3", "jwt-keys.json", "turn-secret"):
            assert mode(data_dir / name) == 0o600, name
        for path in data_dir.glob("videoassist.sqlite3-*"):  # WAL and shared memory
            assert mode(path) == 0o600, path.name
        assert mode(data_dir) == 0o700
    finally:
        code = server.stop()
    assert code == 0, server.output
    assert "Traceback" not in server.output
    assert server.output.count(link[0].split("#")[1]) == 1, server.output


def test_user_role_changes_the_role_and_keeps_an_admin(data_dir: Path) -> None:
    ok(data_dir, "user", "add", "boss", "--role", "admin", "--password-stdin",
       stdin="correct horse battery\n")
    ok(data_dir, "user", "add", "sam", "--role", "technician")
    assert "now expert" in ok(data_dir, "user", "role", "sam", "expert")
    assert "already expert" in ok(data_dir, "user", "role", "sam", "expert")
    assert query(data_dir, "SELECT role, session_version FROM users WHERE username = 'sam'") == [
        ("expert", 1)]
    result = videoassist(data_dir, "user", "role", "boss", "expert")
    assert result.code == 2 and "last admin" in result.err, result
    result = videoassist(data_dir, "user", "role", "sam", "customer")
    assert result.code == 2 and "invalid choice" in result.err, result


def test_analytics_prints_the_figures(data_dir: Path) -> None:
    ok(data_dir, "migrate")
    figures = json.loads(ok(data_dir, "analytics", "--from", "2026-11-01", "--to", "2026-11-02"))
    assert [d["day"] for d in figures["calls_per_day"]] == ["2026-11-01", "2026-11-02"]
    assert figures["calls"] == {"total": 0, "ended": 0}
    lines = ok(data_dir, "analytics", "--from", "2026-11-01", "--to", "2026-11-01",
               "--csv").splitlines()
    assert lines[:3] == ["metric,dimension,value", "period_from,,2026-11-01",
                         "period_to,,2026-11-01"]
    result = videoassist(data_dir, "analytics", "--from", "2026-11-02", "--to", "2026-11-01")
    assert result.code == 2 and "from must not be after to" in result.err, result


# -- audit -----------------------------------------------------------------------------


def test_the_audit_chain_holds_while_the_server_and_the_cli_append(populated: Path) -> None:
    """Sign-ins through a running server and CLI commands, at the same time, append to
    one chain; then verify and export see every row."""
    server = ServeProcess(populated)
    try:
        server.wait_ready()
        results: list[int] = []

        def sign_ins() -> None:
            for n in range(20):
                password = PASSWORD if n % 2 else "not the password"
                results.append(post_json(f"{server.url}/api/session",
                                          {"username": "bob", "password": password}))

        thread = threading.Thread(target=sign_ins)
        thread.start()
        for _ in range(3):
            ok(populated, "job", "create", "Leaking valve")
            ok(populated, "invite", "1", "--role", "customer")
        thread.join(60)
        assert sorted(set(results)) == [200, 401], results
    finally:
        assert server.stop() == 0, server.output
    [(count,)] = query(populated, "SELECT count(*) FROM audit_log")
    rows = int(str(count))
    out = ok(populated, "audit", "verify")
    assert re.fullmatch(rf"audit log intact: {rows} rows checked, head row {rows} hash "
                        r"[0-9a-f]{64}\n", out), out
    lines = [json.loads(line) for line in ok(populated, "audit", "export").splitlines()]
    assert [line["id"] for line in lines] == list(range(1, rows + 2))  # + the export's own
    actions = [line["action"] for line in lines]
    assert actions.count("signin.ok") == 10 and actions.count("signin.failed") == 10
    assert actions.count("job.created") == 4 and actions.count("invite.created") == 3
    signins = ok(populated, "audit", "export", "--action", "signin.", "--since", "2000-01-01")
    assert len(signins.splitlines()) == 20


def test_audit_verify_names_a_row_changed_or_deleted_by_hand(populated: Path) -> None:
    ok(populated, "invite", "1", "--role", "customer")
    ok(populated, "user", "disable", "bob")
    assert ok(populated, "audit", "verify").startswith("audit log intact: 4 rows checked")
    db = populated / "videoassist.sqlite3"
    conn = sqlite3.connect(db)  # as anyone with the file can: drop the trigger, edit
    try:
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("UPDATE audit_log SET detail = '{}' WHERE id = 4")
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("UPDATE audit_log SET target = 'job:2' WHERE id = 4")
        conn.commit()
    finally:
        conn.close()
    result = videoassist(populated, "audit", "verify")
    assert result.code == 1, result
    assert result.out == ("audit log broken: first broken row 4: hash mismatch: its content "
                          "is not what was chained (4 rows checked)\n")
    conn = sqlite3.connect(db)
    try:
        conn.execute("DROP TRIGGER audit_log_no_delete")
        conn.execute("DELETE FROM audit_log WHERE id = 2")
        conn.commit()
    finally:
        conn.close()
    result = videoassist(populated, "audit", "verify")
    assert result.code == 1, result
    assert result.out == ("audit log broken: first broken row 2: missing (row 1 is followed "
                          "by row 3) (2 rows checked)\n")


def test_audit_verify_changes_nothing_and_needs_a_chained_database(tmp_path: Path) -> None:
    missing = videoassist(tmp_path / "none", "audit", "verify")
    assert (missing.code, missing.out) == (2, "")
    assert missing.err == f"videoassist: there is no database at {tmp_path}/none/videoassist" \
                          ".sqlite3\n"
    assert not (tmp_path / "none").exists()
    old = tmp_path / "old"
    old.mkdir(mode=0o700)
    old_database(old / "videoassist.sqlite3", [(1767250000.5, "cli", "user.created", None, {})])
    result = videoassist(old, "audit", "verify")
    assert (result.code, result.out) == (2, ""), result
    assert result.err == ("videoassist: the database is at schema version 4, before the audit "
                          "chain: run 'videoassist migrate' first\n")
    ok(old, "migrate")
    assert ok(old, "audit", "verify").startswith("audit log intact: 2 rows checked")
    garbage = tmp_path / "garbage"
    garbage.mkdir(mode=0o700)
    (garbage / "videoassist.sqlite3").write_bytes(b"SQLite format 3\x00" + bytes(100))
    result = videoassist(garbage, "audit", "verify")  # once hung: the worker thread lived on
    assert (result.code, result.out) == (1, ""), result
    assert result.err == "videoassist: the database cannot be read: file is not a database\n"


def test_key_changes_are_audited_without_the_keys(populated: Path) -> None:
    kid = re.search(r"new signing key (\w+)", ok(populated, "keys", "rotate"))
    assert kid, "no kid printed"
    secret = ok(populated, "webhooks", "secret").strip()
    rows = query(populated, "SELECT actor, action, detail FROM audit_log ORDER BY id")
    assert rows[-2:] == [("cli", "keys.rotated", f'{{"kid":"{kid[1]}"}}'),
                         ("cli", "webhook_secret.shown", "{}")]
    dump = repr(query(populated, "SELECT * FROM audit_log"))
    keys = json.loads((populated / "jwt-keys.json").read_text())["keys"]
    assert all(k["key"] not in dump for k in keys) and secret not in dump


# -- either database ---------------------------------------------------------------------


def _on(database: Target, tmp_path: Path) -> tuple[Path, Target, dict[str, str]]:
    """The data dir, the database and the environment of commands on ``database``."""
    data_dir = tmp_path / "data"
    if is_postgresql_url(database):
        return data_dir, database, clean_env(VIDEOASSIST_DATABASE_URL=str(database))
    return data_dir, data_dir / "videoassist.sqlite3", clean_env()


def _run(data_dir: Path, env: dict[str, str], *args: str, stdin: str = "") -> str:
    result = videoassist(data_dir, *args, env=env, stdin=stdin)
    assert result.code == 0 and "Traceback" not in result.err, result
    return result.out


async def test_migrate_and_audit_verify_on_either_database(empty_database: Target,
                                                           tmp_path: Path) -> None:
    data_dir, target, env = _on(empty_database, tmp_path)
    shown = str(target)  # the tests' URL has no password to leave out
    shipped = migrations(POSTGRESQL if is_postgresql_url(target) else SQLITE)
    assert _run(data_dir, env, "migrate").splitlines() == [
        *(f"applied migration {name}" for _, name, _ in shipped),
        f"database {shown} at schema version {len(shipped)}"]
    assert _run(data_dir, env, "migrate").splitlines() == [
        f"database {shown} at schema version {len(shipped)}"]
    _run(data_dir, env, "user", "add", "bob", "--role", "expert", "--password-stdin",
         stdin=PASSWORD + "\n")
    _run(data_dir, env, "job", "create", "Boiler")
    _run(data_dir, env, "invite", "1", "--role", "customer")
    assert _run(data_dir, env, "audit", "verify").startswith("audit log intact: 3 rows checked")
    await raw_execute(target, drop_trigger(target, "audit_log_no_update"),
                      "UPDATE audit_log SET target = 'job:2' WHERE id = 3")
    result = videoassist(data_dir, "audit", "verify", env=env)
    assert (result.code, result.out) == (1, "audit log broken: first broken row 3: hash "
                                            "mismatch: its content is not what was chained "
                                            "(3 rows checked)\n"), result


async def test_migrate_commands_started_at_once_apply_each_migration_once(
        postgresql_database: str, tmp_path: Path) -> None:
    """Four ``videoassist migrate`` (four nodes starting) on one empty PostgreSQL
    database, held at the migration lock until all four wait for it, then let go."""
    env = clean_env(VIDEOASSIST_DATABASE_URL=postgresql_database)
    holder = await asyncpg.connect(postgresql_database)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", advisory_key("migrate"))
        processes = [await asyncio.create_subprocess_exec(
            sys.executable, "-m", "videoassist", "migrate", "--data-dir",
            str(tmp_path / f"data{n}"), env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE) for n in range(4)]
        async with asyncio.timeout(30):
            while await holder.fetchval("SELECT count(*) FROM pg_locks WHERE locktype ="
                                        " 'advisory' AND NOT granted") < 4:
                await asyncio.sleep(0.05)
        await holder.execute("SELECT pg_advisory_unlock($1)", advisory_key("migrate"))
        outputs = [await asyncio.wait_for(p.communicate(), 60) for p in processes]
    finally:
        await holder.close()
    assert [p.returncode for p in processes] == [0, 0, 0, 0], outputs
    shipped = migrations(POSTGRESQL)
    applied = [line for out, _ in outputs for line in out.decode().splitlines()
               if line.startswith("applied migration ")]
    assert sorted(applied) == [f"applied migration {name}" for _, name, _ in shipped]
    for out, _ in outputs:
        assert out.decode().endswith(f"at schema version {len(shipped)}\n")
    rows = await raw_fetchall(postgresql_database,
                              "SELECT version FROM schema_migrations ORDER BY version")
    assert rows == [(n,) for n, _, _ in shipped]


async def test_backup_on_postgresql_holds_the_key_files_and_says_the_database_is_not_in_it(
        postgresql_database: str, tmp_path: Path) -> None:
    data_dir, env = tmp_path / "data", clean_env(VIDEOASSIST_DATABASE_URL=postgresql_database)
    _run(data_dir, env, "user", "add", "bob", "--role", "expert", "--password-stdin",
         stdin=PASSWORD + "\n")
    _run(data_dir, env, "keys", "rotate")
    _run(data_dir, env, "webhooks", "secret")
    out = tmp_path / "out"
    result = videoassist(data_dir, "backup", str(out), env=env)
    version = len(migrations(POSTGRESQL))
    assert (result.code, result.err) == (0, ""), result
    (head,) = await raw_fetchall(postgresql_database, "SELECT hash FROM audit_log WHERE id = 3")
    assert result.out.splitlines() == [
        f"backed up the key files jwt-keys.json, webhook-secret to {out}; not the PostgreSQL "
        f"database {postgresql_database} (schema version {version}): dump it with pg_dump "
        "(docs/deploy.md#on-postgresql)",
        f"audit log intact: 3 rows checked, head row 3 hash {head[0]}"]
    assert sorted(p.name for p in out.iterdir()) == ["jwt-keys.json", "manifest.json",
                                                     "webhook-secret"]
    for name in ("jwt-keys.json", "webhook-secret"):
        assert (out / name).read_bytes() == (data_dir / name).read_bytes()
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["database"] == {"backend": "postgresql", "url": postgresql_database,
                                    "included": False}
    assert manifest["schema_version"] == version and set(manifest["files"]) == {
        "jwt-keys.json", "webhook-secret"}
    assert manifest["audit"] == {"intact": True, "rows": 3, "head_id": 3,
                                 "head_hash": head[0]}
    # The backup is in the audit log, saying the database is not in it.
    ((action, detail),) = await raw_fetchall(
        postgresql_database, "SELECT action, detail FROM audit_log WHERE id = 4")
    assert action == "backup.created" and json.loads(detail) == {
        "out": str(out.resolve()), "head_id": 3, "database_included": False}
    # Restore is SQLite's: it says what to do instead, and changes nothing.
    for args in (["restore", str(out)], ["restore", str(out), "--force"]):
        result = videoassist(tmp_path / "elsewhere", *args, env=env)
        assert (result.code, result.out) == (2, ""), result
        assert "VIDEOASSIST_DATABASE_URL is set" in result.err and "pg_restore" in result.err
    result = videoassist(tmp_path / "elsewhere", "restore", str(out))  # on SQLite
    assert (result.code, result.out) == (2, ""), result
    assert "only the key files of a server on PostgreSQL" in result.err, result
    assert not (tmp_path / "elsewhere" / "videoassist.sqlite3").exists()


def test_an_unreachable_postgresql_is_one_line_without_its_password(tmp_path: Path) -> None:
    env = clean_env(VIDEOASSIST_DATABASE_URL="postgresql://va:hunter2@127.0.0.1:1/videoassist")
    result = videoassist(tmp_path / "data", "migrate", env=env)
    assert (result.code, result.out) == (1, ""), result
    assert result.err.startswith("videoassist: the database cannot be read: cannot connect to "
                                 "postgresql://va@127.0.0.1:1/videoassist"), result
    assert len(result.err.splitlines()) == 1 and "hunter2" not in result.err
