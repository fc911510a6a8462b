"""Backing up a data directory while the server runs, and restoring it.

A backup is a directory (mode 0700) holding a consistent copy of the database (SQLite's
online backup API), the key files the data directory has (signing keys, TURN secret,
webhook secret, snapshot key-encryption key), each 0600, and ``manifest.json``: the
format, versions, time, the audit chain's head and the SHA-256 of every file.

With ``VIDEOASSIST_DATABASE_URL`` set, the database is PostgreSQL's to back up
(``pg_dump``, base backups): a backup holds the key files, and its manifest the
database it does not hold (``database``, its URL without the password), its schema
version and its audit chain's head, against which a restored dump can be checked.
Restore handles SQLite only.

A restore checks the backup against its manifest, refuses to replace a database
unless forced and refuses while any process has the target database open; it stages
everything in a temporary directory inside the data directory, migrates and checks it
there (the snapshot key must open the stored job keys), and only then moves the files
into place by renames, undone if one fails. It ends with the audit chain's verdict.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videoassist import __version__, keyfiles
from videoassist.actors import CLI
from videoassist.config import Settings
from videoassist.errors import ConfigError, VideoassistError
from videoassist.snapshots.vault import Vault
from videoassist.storage import Store
from videoassist.storage import backup as files
from videoassist.storage.chain import CHAIN_SCHEMA_VERSION, Verdict
from videoassist.storage.db import migrations

FORMAT = "videoassist.backup/1"
MANIFEST = "manifest.json"
DATABASE = "videoassist.sqlite3"
KEY_FILES = (keyfiles.JWT_KEYS_FILE, keyfiles.TURN_SECRET_FILE, keyfiles.WEBHOOK_SECRET_FILE,
             keyfiles.SNAPSHOT_KEY_FILE)
_CHUNK = 1 << 20


class BackupError(VideoassistError):
    """A backup that cannot be made or restored; the message says why, in one line."""

    code = "backup"


@dataclass(frozen=True)
class BackupReport:
    out: Path
    files: list[str]
    schema_version: int
    audit: Verdict | None  # None: the schema predates the audit chain
    database: str | None = None  # a PostgreSQL database the backup does not hold


@dataclass(frozen=True)
class RestoreReport:
    files: list[str]
    manifest: dict[str, Any]
    migrations: list[str]
    audit: Verdict


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_private(source: Path, target: Path) -> str:
    """Copy a file to a new 0600 file; return the SHA-256 of the bytes written."""
    digest = hashlib.sha256()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with source.open("rb") as src, os.fdopen(fd, "wb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- backup ----------------------------------------------------------------------


def _refuse_postgresql(settings: Settings, what: str) -> None:
    if settings.database_url is not None:
        raise BackupError(f"VIDEOASSIST_DATABASE_URL is set: {what} handles a SQLite database "
                          "only. Restore a PostgreSQL database with its own tools (pg_restore "
                          "or psql), and the key files by copying them from the backup")


def _check_out(settings: Settings, out: Path) -> None:
    if out.exists() or out.is_symlink():
        raise BackupError(f"{out} exists; give a new directory")
    if not out.parent.is_dir():
        raise BackupError(f"{out.parent} is not a directory")
    if out.resolve().is_relative_to(settings.data_dir.resolve()):
        raise BackupError("write the backup outside the data directory")


def _write(settings: Settings, out: Path,
           fill: Callable[[Path], tuple[list[str], dict[str, Any]]]) -> list[str]:
    """Make ``out`` from a staging directory that ``fill`` fills (its files, then what
    the manifest says besides them), with the manifest; all or nothing."""
    staging = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    staging.mkdir(mode=0o700)
    try:
        names, about = fill(staging)
        for name in KEY_FILES:
            if (settings.data_dir / name).is_file():
                _copy_private(settings.data_dir / name, staging / name)
                names.append(name)
        manifest = {
            "format": FORMAT,
            "videoassist": __version__,
            "created_at": time.time(),
            **about,
            "files": {name: {"sha256": _sha256(staging / name),
                             "bytes": (staging / name).stat().st_size} for name in names},
        }
        fd = os.open(staging / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(staging)
        os.rename(staging, out)
        _fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return names


def _audit_about(audit: Verdict | None) -> dict[str, Any] | None:
    return None if audit is None else {
        "intact": audit.intact, "rows": audit.rows, "head_id": audit.head_id,
        "head_hash": audit.head_hash}


def backup(settings: Settings, out: Path) -> BackupReport:
    """Write a backup of the data directory to the new directory ``out``: on SQLite,
    the database and the key files; on PostgreSQL, the key files only (the database is
    dumped with PostgreSQL's tools), with the schema version and the audit chain's head
    the database had, to check a restored dump against."""
    if settings.database_url is not None:
        return _backup_beside_postgresql(settings, out)
    database = settings.database_path
    if not database.exists():
        raise BackupError(f"there is no database at {database}")
    _check_out(settings, out)
    version = 0
    audit: Verdict | None = None

    def fill(staging: Path) -> tuple[list[str], dict[str, Any]]:
        nonlocal version, audit
        try:
            version = files.copy_database(database, staging / DATABASE)
        except sqlite3.Error as exc:
            raise BackupError(f"copying {database} failed: {exc}") from None
        audit = files.verify_audit(staging / DATABASE)
        return [DATABASE], {"schema_version": version, "audit": _audit_about(audit)}

    names = _write(settings, out, fill)
    if audit is not None:  # a database from before the chain is left as it is
        asyncio.run(_record(settings, "backup.created", None, out=str(out.resolve()),
                            head_id=audit.head_id))
    return BackupReport(out, names, version, audit)


def _backup_beside_postgresql(settings: Settings, out: Path) -> BackupReport:
    _check_out(settings, out)

    async def state() -> tuple[str, int, Verdict | None]:
        store = await Store.open(settings.database, migrate=False)
        try:
            version = await store.db.schema_version()
            audit = await store.audit.verify() if version >= CHAIN_SCHEMA_VERSION else None
            return store.db.describe(), version, audit
        finally:
            await store.close()

    where, version, audit = asyncio.run(state())
    names = _write(settings, out, lambda staging: ([], {
        "schema_version": version, "audit": _audit_about(audit),
        "database": {"backend": "postgresql", "url": where, "included": False}}))
    if audit is not None:
        asyncio.run(_record(settings, "backup.created", None, out=str(out.resolve()),
                            head_id=audit.head_id, database_included=False))
    return BackupReport(out, names, version, audit, database=where)


async def _record(settings: Settings, action: str, target: str | None, **detail: Any) -> None:
    store = await Store.open(settings.database, migrate=False)
    try:
        await store.audit.record(CLI, action, target, **detail)
    finally:
        await store.close()


# -- restore ---------------------------------------------------------------------


def read_manifest(source: Path) -> dict[str, Any]:
    """The backup's manifest, checked against its files; BackupError if they differ."""
    path = source / MANIFEST
    if not source.is_dir():
        raise BackupError(f"{source} is not a directory")
    if not path.is_file():
        raise BackupError(f"{source} is not a videoassist backup: it has no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        listed = manifest["files"]
        version = manifest["schema_version"]
        if (manifest["format"] != FORMAT or not isinstance(listed, dict)
                or not isinstance(version, int) or not isinstance(manifest["videoassist"], str)
                or not isinstance(manifest["created_at"], int | float)):
            raise ValueError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise BackupError(f"{path} is not a {FORMAT} manifest") from None
    if DATABASE not in listed:
        if isinstance(manifest.get("database"), dict):
            raise BackupError(f"{source} holds only the key files of a server on PostgreSQL "
                              "(its database was to be dumped with pg_dump): restore the dump "
                              "with pg_restore, and copy the key files into the data directory")
        raise BackupError(f"{path} lists no {DATABASE}")
    for name, entry in listed.items():
        if name != DATABASE and name not in KEY_FILES:  # never a path: no '../'
            raise BackupError(f"{path} lists {name!r}, which is not a file a backup holds")
        if not (source / name).is_file():
            raise BackupError(f"{source / name} is missing: the backup is incomplete")
        if not isinstance(entry, dict) or _sha256(source / name) != entry.get("sha256"):
            raise BackupError(f"{source / name} does not match its SHA-256 in the manifest: "
                              "the backup is damaged")
    if version > len(migrations()):
        raise BackupError(f"the backup is at schema version {version}, newer than this "
                          f"videoassist ({len(migrations())}): restore it with a newer one")
    return dict(manifest)


def restore(settings: Settings, source: Path, force: bool) -> RestoreReport:
    """Restore the backup in ``source`` into the data directory."""
    _refuse_postgresql(settings, "restore")
    manifest = read_manifest(source)
    data_dir, database = settings.data_dir, settings.database_path
    _refuse_if_in_use(database)
    present = [name for name in (DATABASE, *KEY_FILES) if (data_dir / name).exists()]
    if present and not force:
        raise BackupError(f"{data_dir} already holds {', '.join(present)}; pass --force to "
                          "replace them with the backup")
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = data_dir / f".restore-{secrets.token_hex(4)}"
    staging.mkdir(mode=0o700)
    names = list(manifest["files"])
    try:
        for name in names:
            if _copy_private(source / name, staging / name) != manifest["files"][name]["sha256"]:
                raise BackupError(f"{source / name} changed while it was read")
        try:
            applied, audit = asyncio.run(_prepare(settings, staging, manifest))
        except sqlite3.Error as exc:
            raise BackupError(f"the backup's database cannot be used: {exc}") from None
        _refuse_if_in_use(database)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        _swap(data_dir, staging, names)
    except BackupError:
        raise  # undoing failed as well: the replaced files stay where the message says
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # undone: the data dir is as it was
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return RestoreReport(names, manifest, applied, audit)


def _refuse_if_in_use(database: Path) -> None:
    if files.in_use(database):
        raise BackupError(f"{database} is open in another process (a running server?): "
                          "stop it first")


async def _prepare(settings: Settings, staging: Path, manifest: dict[str, Any]
                   ) -> tuple[list[str], Verdict]:
    """Migrate the staged database, check that its snapshot key goes with it, verify its
    audit chain, and record the restore in it."""
    staged = dataclasses.replace(settings, data_dir=staging)
    store = await Store.open(staged.database_path, migrate=False)
    try:
        applied = await store.db.migrate()
        if settings.snapshot_key is not None or (staging / keyfiles.SNAPSHOT_KEY_FILE).exists():
            try:
                await Vault(keyfiles.snapshot_key(staged), store.snapshots).check()
            except ConfigError:
                raise BackupError(
                    "the snapshot key (the backup's snapshot-key, or VIDEOASSIST_SNAPSHOT_KEY "
                    "when set) opens none of the backup's job keys: its snapshots could not "
                    "be read") from None
        elif await store.snapshots.kek_ids():
            raise BackupError(f"the backup has no {keyfiles.SNAPSHOT_KEY_FILE} and "
                              "VIDEOASSIST_SNAPSHOT_KEY is not set: its snapshots could "
                              "not be read")
        audit = await store.audit.verify()
        await store.audit.record(CLI, "backup.restored", None,
                                 backup_created_at=manifest.get("created_at"),
                                 files=sorted(manifest["files"]))
    finally:
        await store.close()
    files.to_rollback_journal(staged.database_path)
    return applied, audit


def _swap(data_dir: Path, staging: Path, names: list[str]) -> None:
    """Move the data dir's database (with its WAL) and key files aside into
    ``staging/replaced``, and the staged files into place; undo it all if a step fails."""
    aside = staging / "replaced"
    aside.mkdir(mode=0o700)
    moved: list[str] = []
    placed: list[str] = []
    try:
        for name in (f"{DATABASE}-wal", f"{DATABASE}-shm", DATABASE, *KEY_FILES):
            if (data_dir / name).exists():
                os.rename(data_dir / name, aside / name)
                moved.append(name)
        for name in names:
            os.rename(staging / name, data_dir / name)
            placed.append(name)
        _fsync_dir(data_dir)
    except BaseException as exc:
        try:
            for name in reversed(placed):
                os.rename(data_dir / name, staging / name)
            for name in reversed(moved):
                os.rename(aside / name, data_dir / name)
        except OSError:
            raise BackupError(f"restoring stopped half-way ({exc}); the files it replaced "
                              f"are in {aside}") from exc
        raise
