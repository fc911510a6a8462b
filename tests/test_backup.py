"""``videoassist backup`` and ``videoassist restore`` run as an operator runs them: a
backup of a server that keeps writing, restored into a fresh data dir and served again
(same records, snapshots still decrypt, sessions still valid); restores refused while a
server runs, over an existing database, from damaged backups, each leaving the data dir
as it was."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import secrets
import shutil
import sqlite3
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.audit import old_database
from tests.support.databases import Cluster
from tests.support.process import ServeProcess, clean_env, ok, post_json, videoassist
from tests.support.server import PASSWORD, ServerFactory
from tests.support.snapshots import still_snapshot
from videoassist import keyfiles
from videoassist.config import Secret, Settings
from videoassist.snapshots.vault import Vault
from videoassist.storage import Store
from videoassist.storage.db import POSTGRESQL, migrations

DB = "videoassist.sqlite3"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def contents(directory: Path) -> dict[str, bytes]:
    """Every file and directory name under ``directory``, with the files' bytes."""
    return {str(p.relative_to(directory)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(directory.rglob("*"))}


def one_error_line(result: Any, pattern: str) -> None:
    assert result.code == 2, result
    assert "Traceback" not in result.out + result.err, result
    assert result.out == "" and len(result.err.splitlines()) == 1, result
    assert re.fullmatch(f"videoassist: {pattern}\n", result.err), result.err


# SQLite's backup, whatever --server-backend says: PostgreSQL's is the last test here.
@pytest.mark.parametrize("server_backend", ["sqlite"])
async def test_a_backup_of_a_busy_server_restores_and_serves_elsewhere(
        server_factory: ServerFactory, tmp_path: Path) -> None:
    # One public URL for both servers: tokens name it as their issuer and audience.
    public_url = "https://assist.example.com"
    server = await server_factory(public_url=public_url)
    expert, token = await server.staff("expert")
    job_id = await server.job(token)
    for text in ("Customer says it knocks at night.", "Order a pump: Grundfos UPS 25-60."):
        status, _, _ = await server.request("POST", f"/api/jobs/{job_id}/notes", token=token,
                                            json={"text": text})
        assert status == 201
    await server.participant(token, job_id)
    snapshot_id, _ = await still_snapshot(server, job_id, expert)
    await server.request("PATCH", f"/api/snapshots/{snapshot_id}", token=token,
                         json={"caption": "The pump's plate"})
    _, record, _ = await server.request("GET", f"/api/jobs/{job_id}", token=token)
    _, jpeg, _ = await server.request("GET", f"/api/snapshots/{snapshot_id}/image", token=token)
    assert jpeg[:3] == b"\xff\xd8\xff" and record["snapshots"]
    busy = await server.job(token, "Busy job")

    # The server goes on writing (notes, and the audit rows of each request) while the
    # backup, another process, copies the database.
    written: list[str] = []
    done = asyncio.Event()

    async def write() -> None:
        while not done.is_set():
            text = f"note {len(written)}"
            status, _, _ = await server.request("POST", f"/api/jobs/{busy}/notes", token=token,
                                                json={"text": text})
            assert status == 201
            written.append(text)

    writer = asyncio.create_task(write())
    data_dir = server.settings.data_dir
    out = tmp_path / "backup"
    try:
        result = await asyncio.to_thread(videoassist, data_dir, "backup", str(out))
    finally:
        done.set()
        await writer
    assert result.code == 0, result
    assert len(written) > 5, "the server was not writing during the backup"
    assert result.out.startswith(f"backed up {DB}, jwt-keys.json, turn-secret, snapshot-key "
                                 f"to {out} (schema version {len(migrations())})\n"), result.out
    assert re.search(r"\naudit log intact: \d+ rows checked, head row \d+ hash [0-9a-f]{64}\n$",
                     result.out), result.out

    assert mode(out) == 0o700
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([DB, "jwt-keys.json", "turn-secret", "snapshot-key",
                            "manifest.json"])
    assert all(mode(out / name) == 0o600 for name in names)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "videoassist.backup/1"
    assert manifest["schema_version"] == len(migrations())
    assert manifest["audit"]["intact"] is True
    assert {name: entry["sha256"] for name, entry in manifest["files"].items()} == {
        name: sha256(out / name) for name in names if name != "manifest.json"}
    for name in ("jwt-keys.json", "turn-secret", "snapshot-key"):
        assert (out / name).read_bytes() == (data_dir / name).read_bytes()

    restored_dir = tmp_path / "restored"
    result = await asyncio.to_thread(videoassist, restored_dir, "restore", str(out))
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0].startswith(f"restored {DB}, jwt-keys.json, turn-secret, snapshot-key into "
                               f"{restored_dir} from {out} (made ")
    assert lines[-1].startswith("audit log intact: "), result.out
    assert mode(restored_dir) == 0o700
    assert sorted(p.name for p in restored_dir.iterdir()) == sorted(
        [DB, "jwt-keys.json", "turn-secret", "snapshot-key"])  # nothing staged is left
    assert all(mode(p) == 0o600 for p in restored_dir.iterdir())

    again = await server_factory(data_dir=restored_dir, public_url=public_url)
    # The same signing keys: the session from before the backup works on the copy.
    status, restored_record, _ = await again.request("GET", f"/api/jobs/{job_id}", token=token)
    assert status == 200, restored_record
    assert restored_record == record
    # The same key-encryption key: the snapshot decrypts to the same bytes.
    status, restored_jpeg, _ = await again.request(
        "GET", f"/api/snapshots/{snapshot_id}/image", token=token)
    assert (status, restored_jpeg) == (200, jpeg)
    # One moment's copy: the busy job's notes are those written before some point.
    _, busy_record, _ = await again.request("GET", f"/api/jobs/{busy}", token=token)
    notes = [n["text"] for n in busy_record["notes"]]
    assert notes == written[:len(notes)]
    verdict = await again.store.audit.verify()
    assert verdict.intact, verdict
    # The live log says a backup was made, up to which row; the copy, that it was restored.
    [made] = [e for e in await server.store.audit.recent(1000)
              if e["action"] == "backup.created"]
    assert made["detail"] == {"out": str(out), "head_id": manifest["audit"]["head_id"]}
    assert made["id"] > manifest["audit"]["head_id"]
    [back] = [e for e in await again.store.audit.recent(1000)
              if e["action"] == "backup.restored"]
    assert back["id"] == manifest["audit"]["head_id"] + 1
    await again.sign_in(expert.username)


def _settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir)


@pytest.fixture(scope="module")
def pristine_backup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A backup made by the CLI of a data dir holding user bob, job 1 with a data key
    wrapped by the snapshot key, and the key files a server generates; made once for
    the module (five commands), never changed: tests take copies (``backup_of``)."""
    root = tmp_path_factory.mktemp("backup")
    source = root / "source"
    ok(source, "user", "add", "bob", "--role", "expert", "--password-stdin",
       stdin=PASSWORD + "\n")
    ok(source, "job", "create", "Boiler makes a noise")
    settings = _settings(source)
    keyfiles.signing_keys(settings)
    keyfiles.turn_secret(settings)

    async def wrap_a_job_key() -> None:
        store = await Store.open(settings.database_path)
        try:
            await Vault(keyfiles.snapshot_key(settings), store.snapshots).key_for_new(1)
        finally:
            await store.close()

    asyncio.run(wrap_a_job_key())
    out = root / "backup"
    ok(source, "backup", str(out))
    return out


@pytest.fixture
def backup_of(tmp_path: Path, pristine_backup: Path) -> Callable[..., Path]:
    """A copy of the module's backup, in ``tmp_path``, for the test to damage or
    restore (modes kept: the directory 0700, its files 0600)."""

    def make(name: str = "backup") -> Path:
        out = tmp_path / name
        shutil.copytree(pristine_backup, out)
        return out

    return make


def test_restore_refuses_a_running_server_and_an_existing_database(
        tmp_path: Path, backup_of: Callable[..., Path]) -> None:
    backup = backup_of()
    target = tmp_path / "target"
    ok(target, "user", "add", "alice", "--role", "admin", "--password-stdin",
       stdin=PASSWORD + "\n")
    ok(target, "job", "create", "Someone else's job")
    server = ServeProcess(target)
    try:
        server.wait_ready()
        one_error_line(videoassist(target, "restore", str(backup), "--force"),
                       re.escape(f"{target / DB} is open in another process (a running "
                                 "server?): stop it first"))
    finally:
        assert server.stop() == 0, server.output
    before = contents(target)
    one_error_line(videoassist(target, "restore", str(backup)),
                   re.escape(f"{target} already holds {DB}, jwt-keys.json, turn-secret, "
                             "snapshot-key; pass --force to replace them with the backup"))
    assert contents(target) == before

    result = videoassist(target, "restore", str(backup), "--force")
    assert result.code == 0, result
    for name in ("jwt-keys.json", "turn-secret", "snapshot-key"):
        assert sha256(target / name) == sha256(backup / name)
    assert all(mode(p) == 0o600 for p in target.iterdir())
    # node-secret: the server made it, for its workers; not the backup's to replace.
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [DB, "jwt-keys.json", "turn-secret", "snapshot-key", "node-secret"])
    conn = sqlite3.connect(target / DB)
    try:
        assert conn.execute("SELECT username FROM users").fetchall() == [("bob",)]
        assert conn.execute("SELECT title FROM jobs").fetchall() == [("Boiler makes a noise",)]
    finally:
        conn.close()
    # The restored data dir serves: its snapshot key opens its job key, bob signs in.
    server = ServeProcess(target)
    try:
        server.wait_ready()
        assert post_json(f"{server.url}/api/session",
                          {"username": "bob", "password": PASSWORD}) == 200
    finally:
        assert server.stop() == 0, server.output


def _rewrite_manifest(backup: Path, change: Callable[[dict[str, Any]], None]) -> None:
    manifest = json.loads((backup / "manifest.json").read_text())
    change(manifest)
    (backup / "manifest.json").write_text(json.dumps(manifest))


def _rehash(backup: Path, name: str) -> None:
    _rewrite_manifest(backup, lambda m: m["files"][name].update(sha256=sha256(backup / name)))


def _flip_a_byte(backup: Path) -> None:
    data = bytearray((backup / DB).read_bytes())
    data[len(data) // 2] ^= 0x01
    (backup / DB).write_bytes(bytes(data))


def _other_snapshot_key(backup: Path) -> None:
    (backup / "snapshot-key").write_text(base64.b64encode(secrets.token_bytes(32)).decode())
    _rehash(backup, "snapshot-key")


def _not_a_database(backup: Path) -> None:
    (backup / DB).write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    _rehash(backup, DB)


def _no_snapshot_key(backup: Path) -> None:
    (backup / "snapshot-key").unlink()
    _rewrite_manifest(backup, lambda m: m["files"].pop("snapshot-key"))


DAMAGED: dict[str, tuple[Callable[[Path], None], str]] = {
    "no manifest": (lambda b: (b / "manifest.json").unlink(),
                    "{b} is not a videoassist backup: it has no manifest.json"),
    "a manifest that is not JSON": (lambda b: (b / "manifest.json").write_text("{"),
                                    "{b}/manifest.json is not a videoassist.backup/1 manifest"),
    "a byte of the database changed": (
        _flip_a_byte, "{b}/videoassist.sqlite3 does not match its SHA-256 in the manifest: "
                      "the backup is damaged"),
    "a key file missing": (lambda b: (b / "jwt-keys.json").unlink(),
                           "{b}/jwt-keys.json is missing: the backup is incomplete"),
    "a manifest naming a path": (
        lambda b: _rewrite_manifest(b, lambda m: m["files"].update(
            {"../jwt-keys.json": m["files"]["jwt-keys.json"]})),
        "{b}/manifest.json lists '../jwt-keys.json', which is not a file a backup holds"),
    "a newer schema": (
        lambda b: _rewrite_manifest(b, lambda m: m.update(schema_version=99)),
        f"the backup is at schema version 99, newer than this videoassist "
        f"\\({len(migrations())}\\): restore it with a newer one"),
    "another snapshot key": (
        _other_snapshot_key,
        "the snapshot key \\(the backup's snapshot-key, or VIDEOASSIST_SNAPSHOT_KEY when set\\) "
        "opens none of the backup's job keys: its snapshots could not be read"),
    "no snapshot key": (
        _no_snapshot_key, "the backup has no snapshot-key and VIDEOASSIST_SNAPSHOT_KEY is not "
                          "set: its snapshots could not be read"),
    "a database that is not one": (_not_a_database,
                                   "the backup's database cannot be used: .+"),
}


@pytest.mark.parametrize(("damage", "message"), DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_backup_is_refused_and_changes_nothing(
        tmp_path: Path, backup_of: Callable[..., Path], damage: Callable[[Path], None],
        message: str) -> None:
    backup = backup_of()
    target = tmp_path / "target"
    ok(target, "user", "add", "alice", "--role", "admin", "--password-stdin",
       stdin=PASSWORD + "\n")
    keyfiles.signing_keys(_settings(target))
    damage(backup)
    before = contents(target)
    result = videoassist(target, "restore", str(backup), "--force")
    pattern = message.replace("{b}", re.escape(str(backup)))
    one_error_line(result, pattern)
    assert contents(target) == before  # nothing staged is left, nothing replaced


def test_a_backup_with_a_broken_chain_is_restored_and_says_so(
        tmp_path: Path, backup_of: Callable[..., Path]) -> None:
    backup = backup_of()
    conn = sqlite3.connect(backup / DB)
    try:
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("UPDATE audit_log SET target = 'job:7' WHERE id = 2")
        conn.commit()
    finally:
        conn.close()
    _rehash(backup, DB)
    target = tmp_path / "target"
    result = videoassist(target, "restore", str(backup))
    assert result.code == 1, result
    assert result.out.splitlines()[-1] == (
        "audit log broken: first broken row 2: hash mismatch: its content is not what was "
        "chained (2 rows checked)")
    assert (target / DB).exists()  # restored all the same: it is the company's data


def test_a_backup_from_an_older_schema_is_migrated_when_restored(tmp_path: Path) -> None:
    backup = tmp_path / "old-backup"
    backup.mkdir(mode=0o700)
    old_database(backup / DB, [(1767250000.5, "cli", "user.created", "user:1",
                                {"role": "admin"})])
    (backup / "manifest.json").write_text(json.dumps({
        "format": "videoassist.backup/1", "videoassist": "0.0.9", "created_at": 1767250001.0,
        "schema_version": 4, "audit": None,
        "files": {DB: {"sha256": sha256(backup / DB), "bytes": (backup / DB).stat().st_size}},
    }))
    target = tmp_path / "target"
    result = videoassist(target, "restore", str(backup))
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[1:-1] == [f"applied migration {name}" for number, name, _ in migrations()
                           if number > 4]
    # The old row, and the migration's audit.chained; then backup.restored after them.
    assert re.fullmatch(r"audit log intact: 2 rows checked, head row 2 hash [0-9a-f]{64}",
                        lines[-1]), lines[-1]
    assert ok(target, "audit", "verify").startswith("audit log intact: 3 rows checked")


def test_a_backup_before_an_upgrade_leaves_the_database_as_it_is(tmp_path: Path) -> None:
    """Backing up is what one does before migrating: it never migrates the live file."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    old_database(data_dir / DB, [(1767250000.5, "cli", "user.created", "user:1", {})])
    result = videoassist(data_dir, "backup", str(tmp_path / "backup"))
    assert result.code == 0, result
    assert result.out.splitlines()[-1] == "audit log: no hash chain at this schema version"
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert (manifest["schema_version"], manifest["audit"]) == (4, None)
    for db in (data_dir / DB, tmp_path / "backup" / DB):
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA user_version").fetchone() == (4,)
            assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (1,)
        finally:
            conn.close()


def test_a_restore_that_fails_while_moving_files_in_is_undone(
        tmp_path: Path, backup_of: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from videoassist.domain import backup as backups
    backup = backup_of()
    target = tmp_path / "target"
    ok(target, "user", "add", "alice", "--role", "admin", "--password-stdin",
       stdin=PASSWORD + "\n")
    keyfiles.signing_keys(_settings(target))
    keyfiles.snapshot_key(_settings(target))
    before = contents(target)
    placed: list[str] = []
    real_rename = backups.os.rename

    def failing_rename(source: Any, destination: Any) -> None:
        # The fourth file moved into the data dir fails (a full disk, say), after the
        # backup's turn-secret, which the data dir did not have.
        if Path(destination).parent == target and Path(source).parent.name.startswith(
                ".restore-"):
            if len(placed) == 3:
                raise OSError(28, "No space left on device")
            placed.append(Path(destination).name)
        real_rename(source, destination)

    monkeypatch.setattr(backups.os, "rename", failing_rename)
    with pytest.raises(OSError, match="No space left"):
        backups.restore(_settings(target), backup, force=True)
    assert placed == [DB, "jwt-keys.json", "turn-secret"]  # in place when it failed
    assert contents(target) == before  # and are out again; the replaced files came back


# -- on PostgreSQL: pg_dump and pg_restore, as docs/deploy.md#on-postgresql says ---------


def _run(*command: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True,
                            timeout=120, cwd=cwd, check=False)
    assert (result.returncode, result.stderr) == (0, ""), (command, result)
    return result.stdout


async def test_a_postgresql_deployment_dumped_while_it_writes_restores_and_serves_elsewhere(
        server_factory: ServerFactory, postgresql_cluster: Cluster, tmp_path: Path) -> None:
    """The documented commands, run by a role that owns its databases and is no
    superuser: videoassist backup (the key files) and pg_dump while the server writes;
    createdb, pg_restore, the key files put back, migrate, audit verify and the head
    compared; then a server on the restored copy serves the same record and image."""
    cluster = postgresql_cluster
    cluster.create_role("videoassist")
    source = cluster.create_database(owner="videoassist")  # empty: the server migrates it
    restored_name = f"restored_{secrets.token_hex(4)}"
    restored = source.rsplit("/", 1)[0] + "/" + restored_name
    try:
        public_url = "https://assist.example.com"
        server = await server_factory(public_url=public_url, database_url=Secret(source))
        expert, token = await server.staff("expert")
        job_id = await server.job(token)
        status, _, _ = await server.request("POST", f"/api/jobs/{job_id}/notes", token=token,
                                            json={"text": "Order a pump."})
        assert status == 201
        snapshot_id, _ = await still_snapshot(server, job_id, expert)
        _, record, _ = await server.request("GET", f"/api/jobs/{job_id}", token=token)
        _, jpeg, _ = await server.request("GET", f"/api/snapshots/{snapshot_id}/image",
                                          token=token)
        assert jpeg[:3] == b"\xff\xd8\xff" and record["snapshots"]
        busy = await server.job(token, "Busy job")

        written: list[str] = []
        done = asyncio.Event()

        async def write() -> None:
            while not done.is_set():
                text = f"note {len(written)}"
                status, _, _ = await server.request("POST", f"/api/jobs/{busy}/notes",
                                                    token=token, json={"text": text})
                assert status == 201
                written.append(text)

        env = clean_env(VIDEOASSIST_DATABASE_URL=source)
        data_dir, out = server.settings.data_dir, tmp_path / "backup"
        writer = asyncio.create_task(write())
        try:
            result = await asyncio.to_thread(videoassist, data_dir, "backup", str(out),
                                             env=env)
            assert result.code == 0, result
            await asyncio.to_thread(
                _run, cluster.program("pg_dump"), "--format=custom",
                f"--file={out / 'videoassist.pgdump'}", f"--dbname={source}")
        finally:
            done.set()
            await writer
        assert len(written) > 5, "the server was not writing meanwhile"
        assert result.out.startswith(
            "backed up the key files jwt-keys.json, turn-secret, snapshot-key to "
            f"{out}; not the PostgreSQL database {source} (schema version "
            f"{len(migrations(POSTGRESQL))}): dump it with pg_dump"), result.out
        manifest = json.loads((out / "manifest.json").read_text())
        head_id, head_hash = manifest["audit"]["head_id"], manifest["audit"]["head_hash"]

        # Restoring, elsewhere: a new database of the same owner, a new data directory.
        _run(cluster.program("createdb"), "-h", "127.0.0.1", "-p", str(cluster.port),
             "-U", "postgres", "-O", "videoassist", restored_name)
        _run(cluster.program("pg_restore"), "--exit-on-error", "--no-owner",
             f"--dbname={restored}", out / "videoassist.pgdump")
        restored_dir = tmp_path / "restored"
        restored_dir.mkdir(mode=0o700)
        _run("sh", "-c", 'for f in jwt-keys.json turn-secret webhook-secret snapshot-key; do'
             f' [ ! -e "$f" ] || install -m 0600 "$f" {restored_dir}/; done', cwd=out)
        assert sorted(p.name for p in restored_dir.iterdir()) == [
            "jwt-keys.json", "snapshot-key", "turn-secret"]
        env = clean_env(VIDEOASSIST_DATABASE_URL=restored)
        result = videoassist(restored_dir, "migrate", env=env)
        assert (result.code, result.out) == (0, f"database {restored} at schema version "
                                                f"{len(migrations(POSTGRESQL))}\n"), result
        result = videoassist(restored_dir, "audit", "verify", env=env)
        assert result.code == 0 and result.out.startswith("audit log intact: "), result
        assert _run(cluster.program("psql"), restored, "-Atc",
                    f"SELECT hash FROM audit_log WHERE id = {head_id}") == f"{head_hash}\n"

        again = await server_factory(data_dir=restored_dir, public_url=public_url,
                                     database_url=Secret(restored))
        status, restored_record, _ = await again.request("GET", f"/api/jobs/{job_id}",
                                                         token=token)
        assert (status, restored_record) == (200, record)
        status, restored_jpeg, _ = await again.request(
            "GET", f"/api/snapshots/{snapshot_id}/image", token=token)
        assert (status, restored_jpeg) == (200, jpeg)
        # One moment's copy: the busy job's notes are those written before some point.
        _, busy_record, _ = await again.request("GET", f"/api/jobs/{busy}", token=token)
        notes = [n["text"] for n in busy_record["notes"]]
        assert notes == written[:len(notes)]
        assert (await again.store.audit.verify()).intact
        await again.sign_in(expert.username)
    finally:
        cluster.drop_database(source)
        cluster.drop_database(restored)
