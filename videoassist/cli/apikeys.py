"""Integrations' API keys: ``apikey add``, ``list``, ``revoke`` (the rules are
``videoassist.domain.apikeys``')."""

from __future__ import annotations

import argparse
import sys

from videoassist.actors import CLI
from videoassist.auth.apikeys import SCOPES
from videoassist.cli.common import Commands, Parser, on_store, positive_int, settings_of, when
from videoassist.domain import apikeys
from videoassist.storage import Store


def cmd_apikey_add(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def work(store: Store) -> int:
        record, key = await apikeys.create(store, args.name, args.scope, CLI)
        print(key)
        print(f"API key {record.id} ({record.name!r}, scopes {' '.join(record.scopes)}): "
              "shown once, it cannot be read back", file=sys.stderr)
        return 0

    return on_store(settings, work)


def cmd_apikey_list(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def work(store: Store) -> int:
        for key in await store.api_keys.list():
            used = when(key.last_used_at) if key.last_used_at else "never used"
            state = f"revoked {when(key.revoked_at)}" if key.revoked_at else "active"
            print(f"{key.id}\t{key.name}\t...{key.hint}\t{' '.join(key.scopes)}\t{state}\t"
                  f"{used}")
        return 0

    return on_store(settings, work)


def cmd_apikey_revoke(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def work(store: Store) -> int:
        record = await apikeys.revoke(store, args.key_id, CLI)
        print(f"API key {record.id} ({record.name!r}) is revoked; a running server refuses "
              "it at once")
        return 0

    return on_store(settings, work)


def register(commands: Commands, common: Parser) -> None:
    apikey = commands.add_parser("apikey", help="API keys for integrations").add_subparsers(
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
    revoke_key.add_argument("key_id", type=positive_int)
    revoke_key.set_defaults(func=cmd_apikey_revoke)
