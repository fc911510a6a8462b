"""Staff accounts: ``user add``, ``disable``, ``enable``, ``password-link``, ``role``
(the rules are ``videoassist.domain.accounts``')."""

from __future__ import annotations

import argparse
import sys

from videoassist.actors import CLI
from videoassist.cli.common import Commands, Parser, on_store, settings_of, when
from videoassist.domain import accounts, invitations
from videoassist.storage import Store
from videoassist.storage.records import STAFF_ROLES


def cmd_user_add(args: argparse.Namespace) -> int:
    settings = settings_of(args)
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
                  f"{when(link.invite.expires_at)})")
        return 0

    return on_store(settings, work)


def cmd_user_disable(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def work(store: Store) -> int:
        user = await accounts.find_user(store, args.name)
        done = await accounts.disable_user(store, user, CLI, None)
        print(f"disabled {user.username!r}; {done.invites_revoked} open and "
              f"{done.used_invites_revoked} used links revoked; a running server closes "
              f"their connections, and those of people who came by their links, within "
              f"{settings.revocation_poll_s:g} s")
        return 0

    return on_store(settings, work)


def cmd_user_enable(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def work(store: Store) -> int:
        user = await accounts.find_user(store, args.name)
        await accounts.enable_user(store, user, CLI)
        print(f"enabled {user.username!r}")
        return 0

    return on_store(settings, work)


def cmd_user_password_link(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def work(store: Store) -> int:
        user = await accounts.find_user(store, args.name)
        link = await invitations.create_password_link(store, settings, user, CLI)
        print(f"{link.url}  (valid until {when(link.invite.expires_at)})")
        return 0

    return on_store(settings, work)


def cmd_user_role(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def work(store: Store) -> int:
        user = await accounts.find_user(store, args.name)
        changed = await accounts.change_role(store, user, args.role, CLI)
        if changed.role == user.role:
            print(f"{user.username!r} is already {user.role}")
        else:
            print(f"{user.username!r} is now {changed.role}; signed out everywhere "
                  "(a running server closes their connections within a second)")
        return 0

    return on_store(settings, work)


def register(commands: Commands, common: Parser) -> None:
    user = commands.add_parser("user", help="staff accounts").add_subparsers(
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
