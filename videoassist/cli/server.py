"""Running the server, and what its data directory holds: ``serve`` (and the
``worker`` it starts), ``migrate``, the key files (``keys rotate``, ``webhooks
secret``), ``backup`` and ``restore``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from videoassist import keyfiles
from videoassist.actors import CLI
from videoassist.cli.common import (
    Commands,
    Parser,
    UsageError,
    audit_if_database,
    on_store,
    positive_int,
    settings_of,
    when,
)
from videoassist.config import Settings
from videoassist.domain import accounts, invitations
from videoassist.errors import Conflict
from videoassist.storage import Store

FIRST_ADMIN = "admin"


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
    return f"{link.url}  (user '{admin.username}', valid until {when(link.invite.expires_at)})"


def cmd_serve(args: argparse.Namespace) -> int:
    from videoassist import loop
    from videoassist.allocator import limit_arenas
    from videoassist.cluster.supervisor import supervise
    from videoassist.logs import configure
    from videoassist.serving import serve

    limit_arenas()  # before any thread of ours allocates
    settings = settings_of(args)
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

    on_store(settings, prepare, migrate=False)
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
    settings = settings_of(args)
    configure(settings.log_format, worker=args.index)
    return loop.run(serve_worker(settings, args.index, args.control_fd))


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def work(store: Store) -> int:
        for name in await store.db.migrate():
            print(f"applied migration {name}")
        version = await store.db.schema_version()
        print(f"database {store.db.describe()} at schema version {version}")
        return 0

    return on_store(settings, work, migrate=False)


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    kid = keyfiles.rotate_signing_keys(settings)
    audit_if_database(settings, "keys.rotated", kid=kid)
    print(f"new signing key {kid}; the previous key still verifies. Restart the server.")
    return 0


def cmd_webhooks_secret(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    if settings.webhook_secret is not None:
        raise UsageError("VIDEOASSIST_WEBHOOK_SECRET is set: the secret is that value")
    secret = keyfiles.webhook_secret(settings)
    audit_if_database(settings, "webhook_secret.shown")
    print(secret)
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from videoassist.domain import backup
    settings = settings_of(args)
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
    from videoassist.domain import backup
    settings = settings_of(args)
    report = backup.restore(settings, args.source, args.force)
    made = report.manifest
    print(f"restored {', '.join(report.files)} into {settings.data_dir} from {args.source} "
          f"(made {when(made['created_at'])} by videoassist {made['videoassist']}, schema "
          f"version {made['schema_version']})")
    for name in report.migrations:
        print(f"applied migration {name}")
    print(report.audit.summary())
    return 0 if report.audit.intact else 1


def register(commands: Commands, common: Parser) -> None:
    serve = commands.add_parser("serve", parents=[common], help="run the server")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--workers", type=positive_int, default=None,
                       help="worker processes (default: one per core)")
    serve.set_defaults(func=cmd_serve)
    worker = commands.add_parser("worker", parents=[common])  # started by serve; not listed
    worker.add_argument("--host", default=None)
    worker.add_argument("--port", type=int, default=None)
    worker.add_argument("--index", type=int, required=True)
    worker.add_argument("--control-fd", type=int, required=True)
    worker.add_argument("--media-ports", default=None)  # its slice of MEDIA_PORTS
    worker.set_defaults(func=cmd_worker)

    commands.add_parser("migrate", parents=[common], help="apply database migrations"
                        ).set_defaults(func=cmd_migrate)

    keys = commands.add_parser("keys", help="token signing keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION")
    keys.add_parser("rotate", parents=[common], help="add a new signing key").set_defaults(
        func=cmd_keys_rotate)

    webhooks = commands.add_parser("webhooks", help="outgoing webhooks").add_subparsers(
        dest="webhooks_command", required=True, metavar="ACTION")
    webhooks.add_parser("secret", parents=[common],
                        help="print the webhook signing secret (generated if missing)"
                        ).set_defaults(func=cmd_webhooks_secret)

    backup = commands.add_parser("backup", parents=[common],
                                 help="copy the database (SQLite; PostgreSQL: pg_dump) and "
                                      "key files to a new directory, while the server runs")
    backup.add_argument("out", type=Path, metavar="OUT", help="the directory to create")
    backup.set_defaults(func=cmd_backup)
    restore = commands.add_parser("restore", parents=[common],
                                  help="restore a backup into the data directory (server "
                                       "stopped; SQLite only)")
    restore.add_argument("source", type=Path, metavar="IN", help="a directory 'backup' made")
    restore.add_argument("--force", action="store_true",
                         help="replace the data directory's database and key files")
    restore.set_defaults(func=cmd_restore)
