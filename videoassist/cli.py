"""The ``videoassist`` command (also ``python -m videoassist``).

Bad input gives one clear line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from videoassist import __version__, accounts, analytics, apikeys, invitations, jobs, keyfiles
from videoassist.actors import CLI
from videoassist.auth.apikeys import SCOPES
from videoassist.config import Settings, load_settings
from videoassist.errors import ConfigError, Conflict, VideoassistError
from videoassist.storage import Store
from videoassist.storage.audit import AuditFilter
from videoassist.storage.chain import CHAIN_SCHEMA_VERSION, canonical
from videoassist.storage.errors import DatabaseError
from videoassist.storage.records import INVITE_ROLES, STAFF_ROLES
from videoassist.webhooks import Outbox

logger = logging.getLogger(__name__)

FIRST_ADMIN = "admin"


class UsageError(Exception):
    """Bad input on the command line: one line to stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit 2), like ours."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"videoassist: {message} (see '{self.prog} --help')\n")


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _settings(args: argparse.Namespace) -> Settings:
    """The settings of a command; every command opens the data directory, which is
    made private (0700) again if it has been loosened."""
    settings = load_settings(
        os.environ,
        args.config,
        data_dir=args.data_dir,
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        workers=getattr(args, "workers", None),
        media_ports=getattr(args, "media_ports", None),
    )
    keyfiles.private_data_dir(settings)
    return settings


async def _with_store(
    settings: Settings, work: Callable[[Store], Awaitable[int]], migrate: bool = True
) -> int:
    store = await Store.open(settings.database, migrate=migrate)
    try:
        return await work(store)
    finally:
        await store.close()


# -- commands ------------------------------------------------------------------


async def ensure_first_admin(store: Store, settings: Settings) -> str | None:
    """With no usable admin, make one (if missing) and return a set-password link."""
    if await store.users.has_usable_admin():
        return None
    admin = await store.users.find(FIRST_ADMIN)
    if admin is None:
        try:
            admin = await accounts.add_user(store, FIRST_ADMIN, "admin", None, actor=CLI)
        except Conflict:  # another node starting on the same database made it just now
            admin = await store.users.find(FIRST_ADMIN)
            assert admin is not None
    if admin.role != "admin" or not admin.active:
        raise UsageError(
            f"no active admin can sign in, and user {FIRST_ADMIN!r} is not an active admin: "
            "use 'videoassist user add NAME --role admin'"
        )
    link = await invitations.create_password_link(store, settings, admin, CLI)
    return f"{link.url}  (user '{admin.username}', valid until {_when(link.invite.expires_at)})"


def cmd_serve(args: argparse.Namespace) -> int:
    from videoassist import loop
    from videoassist.allocator import limit_arenas
    from videoassist.cluster.supervisor import supervise
    from videoassist.logs import configure
    from videoassist.serving import serve

    limit_arenas()  # before any thread of ours allocates
    settings = _settings(args)
    configure(settings.log_format)

    async def prepare(store: Store) -> int:
        applied = await store.db.migrate()
        for name in applied:
            print(f"applied migration {name}")
        link = await ensure_first_admin(store, settings)
        if link:
            print(f"\nNo admin can sign in yet. Open this one-time link to set the admin "
                  f"password:\n\n  {link}\n", flush=True)
        return 0

    asyncio.run(_with_store(settings, prepare, migrate=False))
    if settings.worker_count == 1:
        return loop.run(serve(settings))  # uvloop's loop: the media plane's packets
    return asyncio.run(supervise(settings, args.config))


def cmd_worker(args: argparse.Namespace) -> int:
    """One worker under ``serve``'s supervisor (not for people: see cluster/)."""
    from videoassist import loop
    from videoassist.allocator import limit_arenas
    from videoassist.logs import configure
    from videoassist.serving import serve_worker

    limit_arenas()
    settings = _settings(args)
    configure(settings.log_format, worker=args.index)
    return loop.run(serve_worker(settings, args.index, args.control_fd))


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(store: Store) -> int:
        for name in await store.db.migrate():
            print(f"applied migration {name}")
        version = await store.db.schema_version()
        print(f"database {store.db.describe()} at schema version {version}")
        return 0

    return asyncio.run(_with_store(settings, work, migrate=False))


def cmd_user_add(args: argparse.Namespace) -> int:
    settings = _settings(args)
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")

    async def work(store: Store) -> int:
        user = await accounts.add_user(store, args.name, args.role, password,
                                       args.display_name, actor=CLI)
        print(f"added {user.role} {user.username!r} (id {user.id})")
        if password is None:
            link = await invitations.create_password_link(store, settings, user, CLI)
            print(f"set-password link: {link.url}  (valid until "
                  f"{_when(link.invite.expires_at)})")
        return 0

    return asyncio.run(_with_store(settings, work))


def cmd_user_disable(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(store: Store) -> int:
        user = await accounts.find_user(store, args.name)
        done = await accounts.disable_user(store, user, CLI, None)
        print(f"disabled {user.username!r}; {done.invites_revoked} open and "
              f"{done.used_invites_revoked} used links revoked; a running server closes "
              f"their connections, and those of people who came by their links, within "
              f"{settings.revocation_poll_s:g} s")
        return 0

    return asyncio.run(_with_store(settings, work))


def cmd_user_enable(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(store: Store) -> int:
        user = await accounts.find_user(store, args.name)
        await accounts.enable_user(store, user, CLI)
        print(f"enabled {user.username!r}")
        return 0

    return asyncio.run(_with_store(settings, work))


def cmd_user_password_link(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(store: Store) -> int:
        user = await accounts.find_user(store, args.name)
        link = await invitations.create_password_link(store, settings, user, CLI)
        print(f"{link.url}  (valid until {_when(link.invite.expires_at)})")
        return 0

    return asyncio.run(_with_store(settings, work))


def cmd_user_role(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(store: Store) -> int:
        user = await accounts.find_user(store, args.name)
        changed = await accounts.change_role(store, user, args.role, CLI)
        if changed.role == user.role:
            print(f"{user.username!r} is already {user.role}")
        else:
            print(f"{user.username!r} is now {changed.role}; signed out everywhere "
                  "(a running server closes their connections within a second)")
        return 0

    return asyncio.run(_with_store(settings, work))


def cmd_analytics(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(store: Store) -> int:
        since, until = analytics.period(args.first, args.last, time.time())
        figures = await store.analytics.summary(since, until)
        if args.csv:
            sys.stdout.write(analytics.to_csv(figures).replace("\r\n", "\n"))
        else:
            print(json.dumps(figures, indent=2))
        return 0

    return asyncio.run(_with_store(settings, work))


def _outbox(store: Store, settings: Settings) -> Outbox:
    """Webhooks queued for the server's worker to send (this process sends nothing)."""
    return Outbox(store, bool(settings.webhook_url), time.time)


def cmd_job_create(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(store: Store) -> int:
        job = await jobs.create(store, _outbox(store, settings).emit, args.title,
                                args.external_ref, CLI)
        print(job.id)
        return 0

    return asyncio.run(_with_store(settings, work))


def cmd_invite(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.ttl is not None and not 60 <= args.ttl <= settings.invite_max_ttl_s:
        raise UsageError(f"--ttl must be between 60 and {settings.invite_max_ttl_s} seconds")

    async def work(store: Store) -> int:
        job = await store.jobs.get(args.job_id)
        link = await invitations.create_join_link(
            store, settings, job, args.role, args.ttl, CLI
        )
        print(link.url)
        print(f"valid until {_when(link.invite.expires_at)}", file=sys.stderr)
        return 0

    return asyncio.run(_with_store(settings, work))


def cmd_job_close(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(store: Store) -> int:
        job = await jobs.close(store, _outbox(store, settings).emit, None, args.job_id, CLI)
        print(f"closed job {job.id}; a call in progress ends within "
              f"{settings.revocation_poll_s:g} s")
        return 0

    return asyncio.run(_with_store(settings, work))


def cmd_export(args: argparse.Namespace) -> int:
    from videoassist import jobrecord
    from videoassist.snapshots.service import SnapshotService
    from videoassist.snapshots.vault import Vault

    settings = _settings(args)
    out: Path = args.out
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; pass --force to replace it")
    if out.resolve().is_relative_to(settings.data_dir.resolve()):
        raise UsageError("write the export outside the data directory: it holds the "
                         "pictures decrypted")

    async def work(store: Store) -> int:
        vault = Vault(keyfiles.snapshot_key(settings), store.snapshots)
        await vault.check()
        snapshots = SnapshotService(store, vault, None, settings.snapshot_jpeg_quality)
        data = await jobrecord.export_zip(store, snapshots, args.job_id, time.time, CLI)
        # The archive holds customers' pictures in the clear: readable by its owner only.
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        print(f"wrote job {args.job_id} to {out} ({len(data)} bytes)")
        return 0

    return asyncio.run(_with_store(settings, work))


def cmd_purge(args: argparse.Namespace) -> int:
    from videoassist import retention

    settings = _settings(args)

    async def work(store: Store) -> int:
        counts = await retention.purge(store, settings, time.time())
        print(f"purged {counts['snapshots']} snapshots, {counts['messages']} chat messages "
              f"and {counts['events']} events; cleared {counts['names']} names")
        return 0

    return asyncio.run(_with_store(settings, work))


def _audit_if_database(settings: Settings, action: str, **detail: Any) -> None:
    """Record what a command did to the data dir's key files, in its database if it has
    one (a command on a data dir without one does not make one for this)."""
    if settings.database_url is not None or settings.database_path.exists():
        async def work(store: Store) -> int:
            await store.audit.record(CLI, action, None, **detail)
            return 0

        asyncio.run(_with_store(settings, work))


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    kid = keyfiles.rotate_signing_keys(settings)
    _audit_if_database(settings, "keys.rotated", kid=kid)
    print(f"new signing key {kid}; the previous key still verifies. Restart the server.")
    return 0


def cmd_apikey_add(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(store: Store) -> int:
        record, key = await apikeys.create(store, args.name, args.scope, CLI)
        print(key)
        print(f"API key {record.id} ({record.name!r}, scopes {' '.join(record.scopes)}): "
              "shown once, it cannot be read back", file=sys.stderr)
        return 0

    return asyncio.run(_with_store(settings, work))


def cmd_apikey_list(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(store: Store) -> int:
        for key in await store.api_keys.list():
            used = _when(key.last_used_at) if key.last_used_at else "never used"
            state = f"revoked {_when(key.revoked_at)}" if key.revoked_at else "active"
            print(f"{key.id}\t{key.name}\t...{key.hint}\t{' '.join(key.scopes)}\t{state}\t"
                  f"{used}")
        return 0

    return asyncio.run(_with_store(settings, work))


def cmd_apikey_revoke(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(store: Store) -> int:
        record = await apikeys.revoke(store, args.key_id, CLI)
        print(f"API key {record.id} ({record.name!r}) is revoked; a running server refuses "
              "it at once")
        return 0

    return asyncio.run(_with_store(settings, work))


def cmd_webhooks_secret(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings.webhook_secret is not None:
        raise UsageError("VIDEOASSIST_WEBHOOK_SECRET is set: the secret is that value")
    secret = keyfiles.webhook_secret(settings)
    _audit_if_database(settings, "webhook_secret.shown")
    print(secret)
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings.database_url is None and not settings.database_path.exists():
        raise UsageError(f"there is no database at {settings.database_path}")

    async def work(store: Store) -> int:
        version = await store.db.schema_version()
        if version < CHAIN_SCHEMA_VERSION:
            raise UsageError(f"the database is at schema version {version}, before the audit "
                             "chain: run 'videoassist migrate' first")
        verdict = await store.audit.verify()
        print(verdict.summary())
        return 0 if verdict.intact else 1

    # A check does not change what it checks: no migration.
    return asyncio.run(_with_store(settings, work, migrate=False))


def cmd_audit_export(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.since is not None and args.until is not None and args.until <= args.since:
        raise UsageError("--until must be later than --since")
    given = {k: getattr(args, k) for k in ("actor", "action", "target", "since", "until")
             if getattr(args, k) is not None}

    async def work(store: Store) -> int:
        await store.audit.record(CLI, "audit.exported", None, filters=given)
        out = sys.stdout.buffer
        async for entry in store.audit.stream(AuditFilter(**given)):
            out.write(canonical(entry.public()) + b"\n")
        out.flush()
        return 0

    return asyncio.run(_with_store(settings, work))


def cmd_backup(args: argparse.Namespace) -> int:
    from videoassist import backup

    settings = _settings(args)
    report = backup.backup(settings, args.out)
    if report.database is None:
        print(f"backed up {', '.join(report.files)} to {report.out} "
              f"(schema version {report.schema_version})")
    else:
        print(f"backed up the key files {', '.join(report.files) or '(none yet)'} to "
              f"{report.out}; not the PostgreSQL database {report.database} (schema version "
              f"{report.schema_version}): dump it with pg_dump (docs/deploy.md#on-postgresql)")
    print(report.audit.summary() if report.audit is not None
          else "audit log: no hash chain at this schema version")
    configured = [f"VIDEOASSIST_{name.upper()}" for name in
                  ("jwt_keys", "turn_secret", "webhook_secret", "snapshot_key")
                  if getattr(settings, name) is not None]
    if configured:
        print(f"videoassist: {', '.join(configured)} set: not in the backup, keep "
              f"{'it' if len(configured) == 1 else 'them'} too", file=sys.stderr)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from videoassist import backup

    settings = _settings(args)
    report = backup.restore(settings, args.source, args.force)
    made = report.manifest
    print(f"restored {', '.join(report.files)} into {settings.data_dir} from {args.source} "
          f"(made {_when(made['created_at'])} by videoassist {made['videoassist']}, schema "
          f"version {made['schema_version']})")
    for name in report.migrations:
        print(f"applied migration {name}")
    print(report.audit.summary())
    return 0 if report.audit.intact else 1


# -- parser --------------------------------------------------------------------


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _time(text: str) -> float:
    """Unix seconds, or an ISO 8601 date or date and time (UTC unless it says)."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is neither Unix seconds nor an ISO 8601 date/time") from None
        seconds = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    if not 0 <= seconds < 1e11:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=None,
                        help="data directory (default ./data, or VIDEOASSIST_DATA_DIR)")
    common.add_argument("--config", type=Path, default=None, help="TOML settings file")

    parser = _Parser(prog="videoassist", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[common], help="run the server")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--workers", type=_positive_int, default=None,
                       help="worker processes (default: one per core)")
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", parents=[common])  # started by serve; not listed
    worker.add_argument("--host", default=None)
    worker.add_argument("--port", type=int, default=None)
    worker.add_argument("--index", type=int, required=True)
    worker.add_argument("--control-fd", type=int, required=True)
    worker.add_argument("--media-ports", default=None)  # its slice of MEDIA_PORTS
    worker.set_defaults(func=cmd_worker)

    sub.add_parser("migrate", parents=[common], help="apply database migrations").set_defaults(
        func=cmd_migrate)

    user = sub.add_parser("user", help="staff accounts").add_subparsers(
        dest="user_command", required=True, metavar="ACTION")
    add = user.add_parser("add", parents=[common], help="add a staff account")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=STAFF_ROLES)
    add.add_argument("--display-name", metavar="NAME",
                     help="the name others see in calls (default: the username)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of stdin "
                          "(otherwise print a set-password link)")
    add.set_defaults(func=cmd_user_add)
    disable = user.add_parser("disable", parents=[common], help="disable an account at once")
    disable.add_argument("name")
    disable.set_defaults(func=cmd_user_disable)
    enable = user.add_parser("enable", parents=[common], help="re-enable an account")
    enable.add_argument("name")
    enable.set_defaults(func=cmd_user_enable)
    reset = user.add_parser("password-link", parents=[common],
                            help="print a one-time set-password link")
    reset.add_argument("name")
    reset.set_defaults(func=cmd_user_password_link)
    role = user.add_parser("role", parents=[common],
                           help="change an account's role (signs it out everywhere)")
    role.add_argument("name")
    role.add_argument("role", choices=STAFF_ROLES)
    role.set_defaults(func=cmd_user_role)

    job = sub.add_parser("job", help="jobs").add_subparsers(
        dest="job_command", required=True, metavar="ACTION")
    create = job.add_parser("create", parents=[common], help="create a job; prints its id")
    create.add_argument("title")
    create.add_argument("--external-ref", default=None)
    create.set_defaults(func=cmd_job_create)
    close = job.add_parser("close", parents=[common],
                           help="close a job: its links stop working, its call ends")
    close.add_argument("job_id", type=_positive_int)
    close.set_defaults(func=cmd_job_close)

    export = sub.add_parser("export", parents=[common],
                            help="write a job's record and snapshots to a ZIP file")
    export.add_argument("job_id", type=_positive_int)
    export.add_argument("--out", type=Path, required=True, help="the ZIP file to write")
    export.add_argument("--force", action="store_true", help="replace --out if it exists")
    export.set_defaults(func=cmd_export)

    sub.add_parser("purge", parents=[common],
                   help="delete what the retention settings have expired, now").set_defaults(
        func=cmd_purge)

    invite = sub.add_parser("invite", parents=[common], help="print a one-time join link")
    invite.add_argument("job_id", type=_positive_int)
    invite.add_argument("--role", required=True, choices=INVITE_ROLES)
    invite.add_argument("--ttl", type=_positive_int, default=None, help="lifetime in seconds")
    invite.set_defaults(func=cmd_invite)

    keys = sub.add_parser("keys", help="token signing keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION")
    keys.add_parser("rotate", parents=[common], help="add a new signing key").set_defaults(
        func=cmd_keys_rotate)

    apikey = sub.add_parser("apikey", help="API keys for integrations").add_subparsers(
        dest="apikey_command", required=True, metavar="ACTION")
    add_key = apikey.add_parser("add", parents=[common],
                                help="create an API key; prints it, once")
    add_key.add_argument("name")
    add_key.add_argument("--scope", required=True, action="append", choices=SCOPES,
                         help="repeat for several scopes")
    add_key.set_defaults(func=cmd_apikey_add)
    apikey.add_parser("list", parents=[common], help="list API keys (never the keys)"
                      ).set_defaults(func=cmd_apikey_list)
    revoke_key = apikey.add_parser("revoke", parents=[common], help="revoke an API key")
    revoke_key.add_argument("key_id", type=_positive_int)
    revoke_key.set_defaults(func=cmd_apikey_revoke)

    figures = sub.add_parser("analytics", parents=[common],
                             help="print the dashboard's figures (JSON, or CSV with --csv)")
    figures.add_argument("--from", dest="first", metavar="YYYY-MM-DD", default=None,
                         help="first UTC day (default: 30 days before --to)")
    figures.add_argument("--to", dest="last", metavar="YYYY-MM-DD", default=None,
                         help="last UTC day, included (default: today)")
    figures.add_argument("--csv", action="store_true", help="metric,dimension,value rows")
    figures.set_defaults(func=cmd_analytics)

    audit = sub.add_parser("audit", help="the audit log").add_subparsers(
        dest="audit_command", required=True, metavar="ACTION")
    audit.add_parser("verify", parents=[common],
                     help="check the hash chain: exit 0 if intact, 1 naming the first "
                          "broken row").set_defaults(func=cmd_audit_verify)
    export_audit = audit.add_parser("export", parents=[common],
                                    help="write the audit log as JSON lines to stdout, "
                                         "oldest first")
    export_audit.add_argument("--since", type=_time, default=None,
                              help="Unix seconds or ISO 8601 (UTC unless it says)")
    export_audit.add_argument("--until", type=_time, default=None, help="likewise; exclusive")
    export_audit.add_argument("--actor", default=None, help="e.g. user:3, cli")
    export_audit.add_argument("--action", default=None,
                              help="exact, or a prefix ending in '.': signin.")
    export_audit.add_argument("--target", default=None, help="e.g. job:12")
    export_audit.set_defaults(func=cmd_audit_export)

    backup = sub.add_parser("backup", parents=[common],
                            help="copy the database (SQLite; PostgreSQL: pg_dump) and key "
                                 "files to a new directory, while the server runs")
    backup.add_argument("out", type=Path, metavar="OUT", help="the directory to create")
    backup.set_defaults(func=cmd_backup)
    restore = sub.add_parser("restore", parents=[common],
                             help="restore a backup into the data directory (server "
                                  "stopped; SQLite only)")
    restore.add_argument("source", type=Path, metavar="IN", help="a directory 'backup' made")
    restore.add_argument("--force", action="store_true",
                         help="replace the data directory's database and key files")
    restore.set_defaults(func=cmd_restore)

    webhooks = sub.add_parser("webhooks", help="outgoing webhooks").add_subparsers(
        dest="webhooks_command", required=True, metavar="ACTION")
    webhooks.add_parser("secret", parents=[common],
                        help="print the webhook signing secret (generated if missing)"
                        ).set_defaults(func=cmd_webhooks_secret)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in ("serve", "worker"):  # these configure logging from settings
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    func: Callable[[argparse.Namespace], Any] = args.func
    try:
        return int(func(args))
    except (UsageError, ConfigError) as exc:
        print(f"videoassist: {exc}", file=sys.stderr)
        return 2
    except VideoassistError as exc:
        print(f"videoassist: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"videoassist: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 1
    except (sqlite3.DatabaseError, DatabaseError) as exc:  # a damaged file, or not one at
        # all; a PostgreSQL server that cannot be reached (the message names no password)
        print(f"videoassist: the database cannot be read: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
