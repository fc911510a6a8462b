"""What every command shares: its settings, its store, its errors and its arguments'
types; and how a module of this package adds its commands (``register``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol, TypeAlias

from videoassist import keyfiles
from videoassist.actors import CLI
from videoassist.config import Settings, load_settings
from videoassist.storage import Store
from videoassist.webhooks import Outbox


class UsageError(Exception):
    """Bad input on the command line: one line to stderr, exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit 2), like ours."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"videoassist: {message} (see '{self.prog} --help')\n")


# What a module's commands are added to: the parser's subcommands.
Commands: TypeAlias = "argparse._SubParsersAction[Parser]"


class Register(Protocol):
    """A module's ``register``: adds its commands to ``commands``, each with
    ``parents=[common]`` (``--data-dir``, ``--config``) and its function as ``func``."""

    def __call__(self, commands: Commands, common: Parser) -> None: ...


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def settings_of(args: argparse.Namespace) -> Settings:
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


def on_store(settings: Settings, work: Callable[[Store], Awaitable[int]],
             migrate: bool = True) -> int:
    """Run ``work`` on the store of ``settings`` (migrated first unless told not to),
    closed after; its exit status."""
    return asyncio.run(_with_store(settings, work, migrate))


def outbox(store: Store, settings: Settings) -> Outbox:
    """Webhooks queued for the server's worker to send (this process sends nothing)."""
    return Outbox(store, bool(settings.webhook_url), time.time)


def audit_if_database(settings: Settings, action: str, **detail: Any) -> None:
    """Record what a command did to the data dir's key files, in its database if it has
    one (a command on a data dir without one does not make one for this)."""
    if settings.database_url is not None or settings.database_path.exists():
        async def work(store: Store) -> int:
            await store.audit.record(CLI, action, None, **detail)
            return 0

        on_store(settings, work)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def moment(text: str) -> float:
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
