"""GET /api/audit through the real server: admins only, filters, paging, the JSON-lines
export (checked with the chain rules of docs/security.md, written out again here), an
audit log that holds no token, password or key after a realistic day, and a customer's
address gone from it when their job is erased, the chain still verifying."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import pytest

from tests.support.databases import raw_fetchall
from tests.support.server import PASSWORD, Server, ServerFactory, leave
from videoassist.appkeys import HUB
from videoassist.auth.apikeys import new_api_key

GENESIS = "0" * 64


def chain_holds(lines: list[dict[str, Any]]) -> bool:
    """The rule of docs/security.md, applied to exported lines."""
    prev = GENESIS
    for line in lines:
        fields = {k: v for k, v in line.items() if k not in ("prev_hash", "hash", "personal")}
        text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        if line["prev_hash"] != prev:
            return False
        if hashlib.sha256((prev + text).encode("ascii")).hexdigest() != line["hash"]:
            return False
        prev = line["hash"]
    return True


async def export(server: Server, token: str, query: str = "") -> tuple[int, str, list[Any]]:
    """GET /api/audit?format=jsonl...: status, content type, the parsed lines."""
    async with server.http.get(f"{server.url}/api/audit?format=jsonl{query}",
                               headers={"Authorization": f"Bearer {token}"}) as response:
        raw = await response.read()
        if response.status != 200:
            return response.status, response.content_type, [json.loads(raw)]
        assert raw.endswith(b"\n") or not raw
        return (response.status, response.content_type,
                [json.loads(line) for line in raw.decode("ascii").splitlines()])


async def page(server: Server, token: str, query: str = "") -> dict[str, Any]:
    status, body, _ = await server.request("GET", f"/api/audit{query}", token=token)
    assert status == 200, body
    assert isinstance(body, dict)
    return body


async def test_only_admins_read_the_audit_log(server: Server) -> None:
    _, admin = await server.staff("admin")
    _, expert = await server.staff("expert")
    assert (await server.request("GET", "/api/audit"))[0] == 401
    assert (await server.request("GET", "/api/audit", token=expert))[0] == 403
    assert (await export(server, expert))[0] == 403
    _, key, _ = await server.request("POST", "/api/keys", token=admin,
                                     json={"name": "CRM", "scopes": ["jobs:read"]})
    assert (await server.request("GET", "/api/audit", token=key["key"]))[0] == 403
    assert (await server.request("GET", "/api/audit", token=admin))[0] == 200


async def test_filters_and_paging(server: Server) -> None:
    admin_user, admin = await server.staff("admin")
    start = server.clock()
    expert, _ = await server.staff("expert")  # signin.ok
    await server.request("POST", "/api/session",
                         json={"username": expert.username, "password": "not it at all"})
    server.clock.advance(100)
    job_id = await server.job(admin)
    later = server.clock()
    await server.invite(admin, job_id)

    everything = (await page(server, admin, "?limit=1000"))["entries"]
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
    assert set(everything[0]) == {"id", "created_at", "actor", "action", "target", "detail",
                                  "prev_hash", "hash", "personal"}
    assert everything[0]["prev_hash"] == everything[1]["hash"]

    def actions(body: dict[str, Any]) -> list[str]:
        return [e["action"] for e in body["entries"]]

    assert actions(await page(server, admin, "?action=signin.")) == [
        "signin.failed", "signin.ok", "signin.ok"]
    assert actions(await page(server, admin, "?action=signin.ok")) == ["signin.ok", "signin.ok"]
    assert actions(await page(server, admin, "?action=signin")) == []  # not a prefix
    assert actions(await page(server, admin, f"?actor=user:{admin_user.id}")) == [
        "invite.created", "job.created", "signin.ok"]
    assert actions(await page(server, admin, f"?target=job:{job_id}")) == [
        "invite.created", "job.created"]
    assert actions(await page(server, admin, f"?since={later}")) == ["invite.created"]
    assert actions(await page(server, admin, f"?since={start}&until={later}&action=signin.")
                   ) == ["signin.failed", "signin.ok"]
    # Before the start: the admin added (by the test's helper, audited as any caller of
    # accounts.add_user is) and signed in.
    assert actions(await page(server, admin, f"?until={start}")) == ["signin.ok", "user.created"]

    # Newest first, a page at a time, until next_before is null.
    seen: list[int] = []
    query = "?limit=2"
    while True:
        body = await page(server, admin, query)
        seen += [e["id"] for e in body["entries"]]
        if body["next_before"] is None:
            break
        assert body["next_before"] == body["entries"][-1]["id"]
        query = f"?limit=2&before={body['next_before']}"
    assert seen == [e["id"] for e in everything]


async def test_a_page_names_its_actors_and_targets(server: Server) -> None:
    """``names``: the page's users, API keys and jobs as people know them; an erased
    job's id is left unnamed, its rows kept."""
    admin_user, admin = await server.staff("admin")
    status, key, _ = await server.request("POST", "/api/keys", token=admin,
                                          json={"name": "CRM", "scopes": ["jobs:create"]})
    assert status == 201, key
    status, made, _ = await server.request("POST", "/api/jobs", token=key["key"],
                                           json={"title": "Boiler makes a noise"})
    assert status == 201, made
    erased = await server.job(admin, "Leak under the sink")
    assert (await server.request("DELETE", f"/api/jobs/{erased}", token=admin))[0] == 204
    body = await page(server, admin, "?limit=1000")
    refs = {ref for e in body["entries"] for ref in (e["actor"], e["target"]) if ref}
    assert {f"user:{admin_user.id}", f"apikey:{key['id']}", f"job:{made['id']}",
            f"job:{erased}"} <= refs, refs
    assert body["names"] == {f"user:{admin_user.id}": admin_user.username,
                             f"apikey:{key['id']}": "CRM",
                             f"job:{made['id']}": "Boiler makes a noise"}


BAD = {
    "limit=0": "limit must be between 1 and 1000.",
    "limit=1001": "limit must be between 1 and 1000.",
    "limit=ten": "limit must be a positive whole number.",
    "before=-3": "before must be a positive whole number.",
    "since=yesterday": "since must be a time in Unix seconds, like 1767258000.",
    "since=nan": "since must be a time in Unix seconds, like 1767258000.",
    "until=-5": "until must be a time in Unix seconds, like 1767258000.",
    "until=inf": "until must be a time in Unix seconds, like 1767258000.",
    "since=200&until=100": "until must be later than since.",
    "actor=": "actor must be 1 to 200 characters.",
    "target=" + "x" * 201: "target must be 1 to 200 characters.",
    "user=3": "Unknown parameter 'user'; use action, actor, before, format, limit, since, "
              "target, until.",
    "action=a&action=b": "Give action once.",
    "format=xml": "format must be json or jsonl.",
    "format=jsonl&limit=5": "limit does not apply to format=jsonl, which returns every "
                            "matching row.",
    "format=jsonl&before=5": "before does not apply to format=jsonl, which returns every "
                             "matching row.",
}


@pytest.mark.parametrize(("query", "message"), BAD.items(), ids=BAD.keys())
async def test_bad_filters_get_400_saying_what_is_wrong(server: Server, query: str,
                                                        message: str) -> None:
    _, admin = await server.staff("admin")
    status, body, _ = await server.request("GET", f"/api/audit?{query}", token=admin)
    assert (status, body) == (400, {"error": {"code": "bad_request", "message": message}})


async def test_the_export_streams_every_matching_row_oldest_first(server: Server) -> None:
    admin_user, admin = await server.staff("admin")
    # More rows than one read batch (500) and one write chunk (64 KiB) hold.
    for n in range(1200):
        await server.store.audit.record("cli", "test.bulk", f"job:{n % 7}", n=n, pad="x" * 40)
    status, content_type, lines = await export(server, admin)
    assert (status, content_type) == (200, "application/x-ndjson")
    assert [line["id"] for line in lines] == list(range(1, len(lines) + 1))
    assert lines[-1]["action"] == "audit.exported"  # the export is audited, and in it
    assert lines[-1]["actor"] == f"user:{admin_user.id}"
    assert [line["detail"]["n"] for line in lines if line["action"] == "test.bulk"] == list(
        range(1200))
    assert chain_holds(lines)
    # A control: the same check fails on a line that was changed.
    changed = [dict(line) for line in lines]
    changed[600]["detail"] = {**changed[600]["detail"], "n": -1}
    assert not chain_holds(changed)

    _, _, filtered = await export(server, admin, "&target=job:3&action=test.")
    assert [line["detail"]["n"] for line in filtered] == list(range(3, 1200, 7))
    audited = (await page(server, admin, "?action=audit.exported"))["entries"][0]
    assert audited["detail"] == {"filters": {"target": "job:3", "action": "test."}}


async def test_the_audit_log_holds_no_secret_after_a_realistic_day(server: Server) -> None:
    """Sign-ins (good and bad), invites and redeemed links, a set-password link, API
    keys used and refused, a call joined: then no token, password or key is anywhere
    in audit_log, nor in its export."""
    admin_user = await server.add_user("admin")
    admin = await server.sign_in(admin_user.username)
    wrong = "Tr0ub4dor&3-but-wrong"
    await server.request("POST", "/api/session",
                         json={"username": admin_user.username, "password": wrong})
    job_id = await server.job(admin)
    link = await server.invite(admin, job_id)
    status, redeemed = await server.redeem(link)
    assert status == 200, redeemed
    participant = redeemed["token"]
    ws, _ = await server.join_call(participant)
    await leave(ws)

    status, created, _ = await server.request("POST", "/api/users", token=admin,
                                              json={"username": "carol", "role": "expert"})
    assert status == 201, created
    setup = created["password_link"]["url"].split("#", 1)[1]
    new_password = "a long new password for carol"
    status, carol, _ = await server.request("POST", "/api/password",
                                            json={"token": setup, "password": new_password})
    assert status == 200, carol

    status, key, _ = await server.request("POST", "/api/keys", token=admin,
                                          json={"name": "CRM", "scopes": ["jobs:read"]})
    assert status == 201, key
    assert (await server.request("GET", "/api/jobs", token=key["key"]))[0] == 200
    unknown = new_api_key()
    assert (await server.request("GET", "/api/jobs", token=unknown))[0] == 401
    await server.request("DELETE", f"/api/keys/{key['id']}", token=admin)
    assert (await server.request("GET", "/api/jobs", token=key["key"]))[0] == 401

    data_dir = server.settings.data_dir
    keys = json.loads((data_dir / "jwt-keys.json").read_text())["keys"]
    secrets = {
        "password": PASSWORD, "wrong password": wrong, "new password": new_password,
        "admin session": admin, "carol's session": carol["token"], "join link": link,
        "participant token": participant, "set-password link": setup,
        "API key": key["key"], "unknown API key": unknown,
        "TURN secret": (data_dir / "turn-secret").read_text().strip(),
        "snapshot key": (data_dir / "snapshot-key").read_text().strip(),
        **{f"signing key {k['kid']}": k["key"] for k in keys},
    }
    rows = await raw_fetchall(server.settings.database, "SELECT * FROM audit_log")
    stored = "\n".join(repr(row) for row in rows)
    _, _, lines = await export(server, admin)
    exported = json.dumps(lines)
    actions = {line["action"] for line in lines}
    assert {"signin.ok", "signin.failed", "invite.created", "invite.redeemed", "call.joined",
            "call.left", "user.created", "password_link.created", "password_link.redeemed",
            "password.set", "apikey.created", "apikey.used", "apikey.refused",
            "apikey.revoked"} <= actions, actions
    for name, secret in secrets.items():
        assert len(secret) >= 16, name
        for text in (stored, exported):
            # Whole, or any 16-character piece of it (a prefix, a JWT's signature).
            pieces = {secret[i:i + 16] for i in range(0, len(secret) - 15)}
            assert not any(p in text for p in pieces), f"the audit log holds the {name}"


def test_the_documented_export_checks_out() -> None:
    """The JSON-lines example of docs/api.md is a real chain, as an auditor would check it."""
    from pathlib import Path

    api = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text("utf-8")
    lines = [json.loads(line) for line in api.splitlines() if line.startswith('{"action":')]
    assert len(lines) == 2 and chain_holds(lines)


CUSTOMER_ADDRESS = "198.51.100.23"


@pytest.mark.parametrize("server_backend", ["sqlite", "postgresql"])
async def test_erasing_a_job_erases_its_customers_address_from_the_audit_log(
        server_factory: ServerFactory) -> None:
    """Issue 20: a customer's IP address, audited when their link was redeemed, goes
    with their job; the row stays and `videoassist audit verify` still passes."""
    server = await server_factory(trust_forwarded_for=True)  # the address a proxy saw
    _, admin = await server.staff("admin")
    job_id = await server.job(admin)
    status, body, _ = await server.request(
        "POST", "/api/invites/redeem", json={"token": await server.invite(admin, job_id)},
        headers={"X-Forwarded-For": CUSTOMER_ADDRESS})
    assert status == 200, body
    ws, _ = await server.join_call(body["token"])
    everything = "SELECT * FROM audit_log ORDER BY id"
    redeemed = [r for r in await raw_fetchall(server.settings.database, everything)
                if CUSTOMER_ADDRESS in repr(r)]
    assert [r[3] for r in redeemed] == ["invite.redeemed"]  # (id, created_at, actor, action)
    status, _, _ = await server.request("POST", f"/api/jobs/{job_id}/close", token=admin)
    assert status == 200
    async with asyncio.timeout(5):
        while job_id in server.app[HUB].rooms:
            await asyncio.sleep(0.02)
    await ws.close()
    status, _, _ = await server.request("DELETE", f"/api/jobs/{job_id}", token=admin)
    assert status == 204
    rows = await raw_fetchall(server.settings.database, everything)
    assert CUSTOMER_ADDRESS not in repr(rows)
    assert redeemed[0][0] in [r[0] for r in rows]  # the row itself stays
    entries = (await page(server, admin, f"?target=job:{job_id}"))["entries"]
    assert entries[0]["action"] == "job.erased"
    assert entries[0]["detail"]["redacted"] == [redeemed[0][0]]
    code, out, err = await server.cli("audit", "verify")
    assert code == 0 and out.startswith("audit log intact"), (out, err)
