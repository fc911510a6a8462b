"""What the installation recorded: ``analytics`` (the dashboard's figures) and the
audit log (``audit verify``, ``audit export``)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from videoassist.actors import CLI
from videoassist.cli.common import Commands, Parser, UsageError, moment, on_store, settings_of
from videoassist.domain import analytics, auditlog
from videoassist.storage import Store
from videoassist.storage.audit import AuditFilter
from videoassist.storage.chain import CHAIN_SCHEMA_VERSION, canonical


def cmd_analytics(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def work(store: Store) -> int:
        since, until = analytics.period(args.first, args.last, time.time())
        figures = await store.analytics.summary(since, until)
        if args.csv:
            sys.stdout.write(analytics.to_csv(figures).replace("\r\n", "\n"))
        else:
            print(json.dumps(figures, indent=2))
        return 0

    return on_store(settings, work)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    settings = settings_of(args)
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
    return on_store(settings, work, migrate=False)


def cmd_audit_export(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    if args.since is not None and args.until is not None and args.until <= args.since:
        raise UsageError("--until must be later than --since")
    given = {k: getattr(args, k) for k in ("actor", "action", "target", "since", "until")
             if getattr(args, k) is not None}

    async def work(store: Store) -> int:
        out = sys.stdout.buffer
        async for entry in await auditlog.export(store, CLI, AuditFilter(**given), given):
            out.write(canonical(entry.public()) + b"\n")
        out.flush()
        return 0

    return on_store(settings, work)


def register(commands: Commands, common: Parser) -> None:
    figures = commands.add_parser("analytics", parents=[common],
                                  help="print the dashboard's figures (JSON, or CSV with --csv)")
    figures.add_argument("--from", dest="first", metavar="YYYY-MM-DD", default=None,
                         help="first UTC day (default: 30 days before --to)")
    figures.add_argument("--to", dest="last", metavar="YYYY-MM-DD", default=None,
                         help="last UTC day, included (default: today)")
    figures.add_argument("--csv", action="store_true", help="metric,dimension,value rows")
    figures.set_defaults(func=cmd_analytics)

    audit = commands.add_parser("audit", help="the audit log").add_subparsers(
        dest="audit_command", required=True, metavar="ACTION")
    audit.add_parser("verify", parents=[common],
                     help="check the hash chain: exit 0 if intact, 1 naming the first "
                          "broken row").set_defaults(func=cmd_audit_verify)
    export_audit = audit.add_parser("export", parents=[common],
                                    help="write the audit log as JSON lines to stdout, "
                                         "oldest first")
    export_audit.add_argument("--since", type=moment, default=None,
                              help="Unix seconds or ISO 8601 (UTC unless it says)")
    export_audit.add_argument("--until", type=moment, default=None, help="likewise; exclusive")
    export_audit.add_argument("--actor", default=None, help="e.g. user:3, cli")
    export_audit.add_argument("--action", default=None,
                              help="exact, or a prefix ending in '.': signin.")
    export_audit.add_argument("--target", default=None, help="e.g. job:12")
    export_audit.set_defaults(func=cmd_audit_export)
