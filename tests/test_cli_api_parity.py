"""The command line and the HTTP API do the same for the same action: the same audit
rows (but for who did it: ``cli`` or the admin) and the same webhook events, queued for
the server's worker. Each action is done once through each door, on twin objects, by a
real ``videoassist`` process beside the real server and by the server's API, on SQLite
and PostgreSQL; the rules live in the domain (docs/architecture.md), so that neither
door can skip one."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.databases import raw_fetchall
from tests.support.server import Server, ServerFactory
from videoassist.cli import build_parser

# Nothing listens there: deliveries are queued and fail, which is all this needs.
WEBHOOK_URL = "http://127.0.0.1:9/hooks"


@dataclass
class Twins:
    """What each side of an action works on: its own job, user and API key."""

    job: int
    user: Any
    disabled: Any  # a user disabled already
    key: int


@dataclass(frozen=True)
class Action:
    name: str
    cli: Callable[[Twins, Path], list[str]]
    api: Callable[[Twins], tuple[str, str, dict[str, Any] | None]]  # method, path, json


ACTIONS = [
    Action("job create", lambda t, d: ["job", "create", "Boiler", "--external-ref", "WO-1"],
           lambda t: ("POST", "/api/jobs", {"title": "Boiler", "external_ref": "WO-1"})),
    Action("job close", lambda t, d: ["job", "close", str(t.job)],
           lambda t: ("POST", f"/api/jobs/{t.job}/close", None)),
    Action("invite", lambda t, d: ["invite", str(t.job), "--role", "customer"],
           lambda t: ("POST", f"/api/jobs/{t.job}/invites", {"role": "customer"})),
    Action("export", lambda t, d: ["export", str(t.job), "--out", str(d / "job.zip")],
           lambda t: ("GET", f"/api/jobs/{t.job}/export", None)),
    Action("user add", lambda t, d: ["user", "add", "erin", "--role", "expert"],
           lambda t: ("POST", "/api/users", {"username": "frank", "role": "expert"})),
    Action("user disable", lambda t, d: ["user", "disable", t.user.username],
           lambda t: ("POST", f"/api/users/{t.user.id}/disable", None)),
    Action("user enable", lambda t, d: ["user", "enable", t.disabled.username],
           lambda t: ("POST", f"/api/users/{t.disabled.id}/enable", None)),
    Action("user role", lambda t, d: ["user", "role", t.user.username, "expert"],
           lambda t: ("PATCH", f"/api/users/{t.user.id}", {"role": "expert"})),
    Action("apikey add", lambda t, d: ["apikey", "add", "erp", "--scope", "jobs:read"],
           lambda t: ("POST", "/api/keys", {"name": "erp", "scopes": ["jobs:read"]})),
    Action("audit export", lambda t, d: ["audit", "export", "--action", "job."],
           lambda t: ("GET", "/api/audit?format=jsonl&action=job.", None)),
    Action("apikey revoke", lambda t, d: ["apikey", "revoke", str(t.key)],
           lambda t: ("DELETE", f"/api/keys/{t.key}", None)),
]


async def _twins(server: Server, token: str, n: int) -> Twins:
    status, job, _ = await server.request("POST", "/api/jobs", token=token,
                                          json={"title": f"Twin {n}"})
    assert status == 201, job
    user = await server.add_user("technician", username=f"twin{n}")
    disabled = await server.add_user("technician", username=f"gone{n}")
    status, answer, _ = await server.request("POST", f"/api/users/{disabled.id}/disable",
                                             token=token)
    assert status < 300, answer
    status, key, _ = await server.request("POST", "/api/keys", token=token,
                                          json={"name": f"twin{n}", "scopes": ["jobs:read"]})
    assert status == 201, key
    return Twins(job["id"], user, disabled, key["id"])


async def _after(server: Server, audit_id: int, delivery_id: int
                 ) -> tuple[list[tuple[str, str, Any]], list[tuple[str, Any]]]:
    """What was audited and queued since the marks: (actor kind, action, detail's
    keys), and (event type, its data's shape)."""
    audited = await raw_fetchall(server.settings.database,
                                 "SELECT actor, action, detail FROM audit_log WHERE id > ? "
                                 "ORDER BY id", (audit_id,))
    queued = await raw_fetchall(server.settings.database,
                                "SELECT type, body FROM webhook_deliveries WHERE id > ? "
                                "ORDER BY id", (delivery_id,))
    return ([(actor.split(":")[0], action, sorted(json.loads(detail or "{}")))
             for actor, action, detail in audited],
            [(kind, _shape(json.loads(body)["data"])) for kind, body in queued])


def _shape(value: Any) -> Any:
    """A JSON value's keys and types, not its values (ids and times differ)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return type(value).__name__


async def _marks(server: Server) -> tuple[int, int]:
    [(audit_id,)] = await raw_fetchall(server.settings.database,
                                       "SELECT COALESCE(MAX(id), 0) FROM audit_log")
    [(delivery_id,)] = await raw_fetchall(server.settings.database,
                                          "SELECT COALESCE(MAX(id), 0) FROM webhook_deliveries")
    return audit_id, delivery_id


@pytest.mark.parametrize("action", ACTIONS, ids=[a.name for a in ACTIONS])
async def test_the_cli_and_the_api_audit_and_emit_the_same(
        server_factory: ServerFactory, tmp_path: Path, action: Action) -> None:
    server = await server_factory(webhook_url=WEBHOOK_URL)
    admin = await server.add_user("admin")
    token = await server.sign_in(admin.username)
    by_cli, by_api = await _twins(server, token, 1), await _twins(server, token, 2)

    marks = await _marks(server)
    code, out, err = await server.cli(*action.cli(by_cli, tmp_path),
                                      VIDEOASSIST_WEBHOOK_URL=WEBHOOK_URL)
    assert code == 0, (out, err)
    cli_audited, cli_queued = await _after(server, *marks)

    marks = await _marks(server)
    method, path, body = action.api(by_api)
    status, answer, _ = await server.request(method, path, token=token, json=body)
    assert status < 300, (status, answer)
    api_audited, api_queued = await _after(server, *marks)

    assert cli_audited, f"{action.name}: the CLI audited nothing"
    assert {kind for kind, _, _ in cli_audited} == {"cli"}, cli_audited
    assert {kind for kind, _, _ in api_audited} == {"user"}, api_audited
    assert [row[1:] for row in cli_audited] == [row[1:] for row in api_audited]
    assert cli_queued == api_queued


# The commands with no twin in the API: the server and its data directory's files,
# reads, and what the server does by itself; and ``user password-link``, which makes a
# set-password link and leaves the password as it is, where the API's password-reset
# also forgets the password and signs the user out (another action).
NO_API_TWIN = {"serve", "worker", "migrate", "keys rotate", "webhooks secret", "backup",
               "restore", "purge", "analytics", "audit verify", "apikey list",
               "user password-link"}


def _commands() -> set[str]:
    """Every command the command line has, as typed: ``job create``, ``invite``..."""
    names = set()
    for top, parser in _subcommands(build_parser()).items():
        below = _subcommands(parser)
        names |= {f"{top} {name}" for name in below} if below else {top}
    return names


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_command_that_changes_what_the_api_changes_is_compared() -> None:
    """A new command is either in the table above or said to have no API twin."""
    compared = {a.name for a in ACTIONS}
    assert _commands() - NO_API_TWIN == compared

