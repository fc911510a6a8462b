"""Jobs and what they hold: ``job create``, ``job close``, ``invite`` (a join link),
``export`` (the record as a ZIP), ``purge`` (retention, now). The rules are the
domain's (``videoassist.domain.jobs``, ``invitations``, ``jobrecord``, ``retention``): the
same audit rows and webhooks as the API's."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from videoassist import keyfiles
from videoassist.actors import CLI
from videoassist.cli.common import (
    Commands,
    Parser,
    UsageError,
    on_store,
    outbox,
    positive_int,
    settings_of,
    when,
)
from videoassist.domain import invitations, jobs
from videoassist.storage import Store
from videoassist.storage.records import INVITE_ROLES


def cmd_job_create(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def work(store: Store) -> int:
        job = await jobs.create(store, outbox(store, settings).emit, args.title,
                                args.external_ref, CLI)
        print(job.id)
        return 0

    return on_store(settings, work)


def cmd_job_close(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def work(store: Store) -> int:
        job = await jobs.close(store, outbox(store, settings).emit, None, args.job_id, CLI)
        print(f"closed job {job.id}; a call in progress ends within "
              f"{settings.revocation_poll_s:g} s")
        return 0

    return on_store(settings, work)


def cmd_invite(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    if args.ttl is not None and not 60 <= args.ttl <= settings.invite_max_ttl_s:
        raise UsageError(f"--ttl must be between 60 and {settings.invite_max_ttl_s} seconds")

    async def work(store: Store) -> int:
        job = await store.jobs.get(args.job_id)
        link = await invitations.create_join_link(
            store, settings, job, args.role, args.ttl, CLI
        )
        print(link.url)
        print(f"valid until {when(link.invite.expires_at)}", file=sys.stderr)
        return 0

    return on_store(settings, work)


def cmd_export(args: argparse.Namespace) -> int:
    from videoassist.domain import jobrecord
    from videoassist.snapshots.service import SnapshotService
    from videoassist.snapshots.vault import Vault

    settings = settings_of(args)
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

    return on_store(settings, work)


def cmd_purge(args: argparse.Namespace) -> int:
    from videoassist.domain import retention
    settings = settings_of(args)

    async def work(store: Store) -> int:
        counts = await retention.purge(store, settings, time.time())
        print(f"purged {counts['snapshots']} snapshots, {counts['messages']} chat messages "
              f"and {counts['events']} events; cleared {counts['names']} names")
        return 0

    return on_store(settings, work)


def register(commands: Commands, common: Parser) -> None:
    job = commands.add_parser("job", help="jobs").add_subparsers(
        dest="job_command", required=True, metavar="ACTION")
    create = job.add_parser("create", parents=[common], help="create a job; prints its id")
    create.add_argument("title")
    create.add_argument("--external-ref", default=None)
    create.set_defaults(func=cmd_job_create)
    close = job.add_parser("close", parents=[common],
                           help="close a job: its links stop working, its call ends")
    close.add_argument("job_id", type=positive_int)
    close.set_defaults(func=cmd_job_close)

    export = commands.add_parser("export", parents=[common],
                                 help="write a job's record and snapshots to a ZIP file")
    export.add_argument("job_id", type=positive_int)
    export.add_argument("--out", type=Path, required=True, help="the ZIP file to write")
    export.add_argument("--force", action="store_true", help="replace --out if it exists")
    export.set_defaults(func=cmd_export)

    commands.add_parser("purge", parents=[common],
                        help="delete what the retention settings have expired, now"
                        ).set_defaults(func=cmd_purge)

    invite = commands.add_parser("invite", parents=[common], help="print a one-time join link")
    invite.add_argument("job_id", type=positive_int)
    invite.add_argument("--role", required=True, choices=INVITE_ROLES)
    invite.add_argument("--ttl", type=positive_int, default=None, help="lifetime in seconds")
    invite.set_defaults(func=cmd_invite)
