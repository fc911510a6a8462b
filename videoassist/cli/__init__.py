"""The ``videoassist`` command (also ``python -m videoassist``).

Bad input gives one clear line on stderr and exit code 2, never a traceback.

Its commands are grouped by noun, one module each (``COMMANDS``): running the server and
its data directory (``server``), staff accounts (``users``), jobs and their links and
records (``jobs``), API keys (``apikeys``), analytics and the audit log (``records``).
Each module's ``register`` adds its commands; each command's function takes the parsed
arguments and returns the exit status, and leaves the rules to the domain's modules.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from videoassist import __version__
from videoassist.cli import apikeys, jobs, records, server, users
from videoassist.cli.common import Parser, Register, UsageError
from videoassist.errors import ConfigError, VideoassistError
from videoassist.storage.errors import DatabaseError

__all__ = ["COMMANDS", "build_parser", "main"]

# The modules whose commands the command line has, in the order --help lists them.
COMMANDS: tuple[Register, ...] = (server.register, users.register, jobs.register,
                                  apikeys.register, records.register)


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=None,
                        help="data directory (default ./data, or VIDEOASSIST_DATA_DIR)")
    common.add_argument("--config", type=Path, default=None, help="TOML settings file")

    parser = Parser(prog="videoassist", description="\n\n".join(__doc__.split("\n\n")[:2]))
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(commands, common)
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
