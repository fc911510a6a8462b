"""API keys through the real server: made by admins, shown once, stored hashed, scoped,
revocable; and the attacks on them, each refused with a clear error."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import aiohttp
import pytest

from tests.support.server import Server
from videoassist.auth.apikeys import new_api_key

SEND_AS_BEARER = "Send the API key as Authorization: Bearer KEY."


async def _key(server: Server, admin_token: str, *scopes: str, name: str = "CRM"
               ) -> tuple[int, str]:
    status, body, _ = await server.request("POST", "/api/keys", token=admin_token,
                                           json={"name": name, "scopes": list(scopes)})
    assert status == 201, body
    return body["id"], body["key"]


def _error(status: int, body: Any) -> tuple[int, str, str]:
    return status, body["error"]["code"], body["error"]["message"]


async def _audit(server: Server) -> list[dict[str, Any]]:
    return await server.store.audit.recent(500)


async def test_a_key_is_shown_once_and_stored_only_as_its_hash(server: Server) -> None:
    admin, token = await server.staff("admin")
    status, created, _ = await server.request(
        "POST", "/api/keys", token=token,
        json={"name": " Salesforce ", "scopes": ["jobs:read", "jobs:create"]})
    assert status == 201, created
    key = created["key"]
    assert key.startswith("vak_") and len(key) == 47
    assert created["name"] == "Salesforce"
    assert created["scopes"] == ["jobs:create", "jobs:read"]
    assert (created["hint"], created["created_by"]) == (key[-4:], admin.id)
    assert created["last_used_at"] is None and created["revoked_at"] is None

    status, listed, _ = await server.request("GET", "/api/keys", token=token)
    assert status == 200
    [entry] = listed["keys"]
    assert "key" not in entry and key not in json.dumps(listed)
    assert entry == {k: v for k, v in created.items() if k != "key"}

    row = await server.store.db.fetchone("SELECT token_hash FROM api_keys")
    assert row is not None and bytes(row[0]) == hashlib.sha256(key.encode()).digest()
    await server.store.db.checkpoint()
    for path in server.settings.data_dir.iterdir():
        assert key.encode() not in path.read_bytes(), f"the key is in {path.name}"
    assert all(key not in json.dumps(entry) for entry in await _audit(server))
    actions = [(e["actor"], e["action"]) for e in await _audit(server)]
    assert (f"user:{admin.id}", "apikey.created") in actions


async def test_an_integration_creates_and_reads_jobs_with_its_key(server: Server) -> None:
    _, admin = await server.staff("admin")
    key_id, key = await _key(server, admin, "jobs:create", "jobs:read")
    status, job, _ = await server.request(
        "POST", "/api/jobs", token=key,
        json={"title": "Boiler makes a noise", "external_ref": "SF-00042"})
    assert status == 201, job
    assert job["external_ref"] == "SF-00042"
    status, listed, _ = await server.request("GET", "/api/jobs", token=key)
    assert status == 200 and [j["id"] for j in listed["jobs"]] == [job["id"]]
    status, record, _ = await server.request("GET", f"/api/jobs/{job['id']}", token=key)
    assert status == 200 and record["external_ref"] == "SF-00042"

    [entry] = (await server.request("GET", "/api/keys", token=admin))[1]["keys"]
    assert entry["last_used_at"] is not None
    audit = await _audit(server)
    used = [e for e in audit if e["action"] == "apikey.used"]
    assert [(e["detail"]["method"], e["detail"]["scope"]) for e in reversed(used)] == [
        ("POST", "jobs:create"), ("GET", "jobs:read"), ("GET", "jobs:read")]
    assert all(e["actor"] == f"apikey:{key_id}" for e in used)
    assert any(e["action"] == "job.created" and e["actor"] == f"apikey:{key_id}"
               for e in audit)
    assert all(key not in json.dumps(e) for e in audit)


async def test_a_key_without_the_scope_gets_403(server: Server) -> None:
    _, admin = await server.staff("admin")
    reader_id, reader = await _key(server, admin, "jobs:read")
    _, creator = await server.staff("expert")
    job_id = await server.job(creator)
    _, writer = await _key(server, admin, "jobs:create")

    status, body, _ = await server.request("POST", "/api/jobs", token=reader,
                                           json={"title": "Leak"})
    assert _error(status, body) == (403, "forbidden",
                                    "This API key does not have the jobs:create scope.")
    for path in ("/api/jobs", f"/api/jobs/{job_id}"):
        status, body, _ = await server.request("GET", path, token=writer)
        assert _error(status, body) == (403, "forbidden",
                                        "This API key does not have the jobs:read scope.")
    refused = [e for e in await _audit(server) if e["action"] == "apikey.refused"]
    assert len(refused) == 3 and all(e["detail"]["reason"] == "scope" for e in refused)
    assert any(e["actor"] == f"apikey:{reader_id}" for e in refused)


async def test_forged_and_unknown_keys_get_401(server: Server) -> None:
    _, admin = await server.staff("admin")
    _, key = await _key(server, admin, "jobs:create", "jobs:read")
    flipped = key[:-1] + ("A" if key[-1] != "A" else "B")
    forgeries = {
        "unknown": new_api_key(),
        "one character changed": flipped,
        "truncated": key[:-1],
        "extended": key + "x",
        "prefix only": "vak_",
        "the key's hash": "vak_" + base64.urlsafe_b64encode(
            hashlib.sha256(key.encode()).digest()).decode().rstrip("="),
        "not base64": "vak_" + "!" * 43,
    }
    for name, forged in forgeries.items():
        status, body, _ = await server.request("GET", "/api/jobs", token=forged)
        assert _error(status, body) == (401, "unauthorized", "This API key is not valid."), name
    status, body, _ = await server.request("GET", "/api/jobs", token=key)
    assert status == 200  # the control
    # One client's refusals: a row at the first, the count of the others at the
    # window's end (tests/api/test_floods.py floods it).
    unknown = [e for e in await _audit(server) if e["action"] == "apikey.refused"]
    assert len(unknown) == 1
    await server.refusals.flush(everything=True)
    unknown = [e for e in await _audit(server) if e["action"] == "apikey.refused"]
    assert [e["detail"].get("repeated", 0) for e in unknown] == [len(forgeries) - 1, 0]
    assert all(e["detail"]["reason"] == "unknown" and e["actor"].startswith("client:")
               for e in unknown)


async def test_a_revoked_key_stops_working_at_once(server: Server) -> None:
    admin, admin_token = await server.staff("admin")
    key_id, key = await _key(server, admin_token, "jobs:read")
    assert (await server.request("GET", "/api/jobs", token=key))[0] == 200
    status, revoked, _ = await server.request("DELETE", f"/api/keys/{key_id}",
                                              token=admin_token)
    assert status == 200 and revoked["revoked_at"] is not None
    status, body, _ = await server.request("GET", "/api/jobs", token=key)
    assert _error(status, body) == (401, "unauthorized", "This API key has been revoked.")
    # Revoking again changes nothing; an unknown key is a 404.
    status, again, _ = await server.request("DELETE", f"/api/keys/{key_id}", token=admin_token)
    assert (status, again["revoked_at"]) == (200, revoked["revoked_at"])
    status, body, _ = await server.request("DELETE", "/api/keys/999", token=admin_token)
    assert _error(status, body)[:2] == (404, "not_found")
    audit = await _audit(server)
    assert [e["actor"] for e in audit if e["action"] == "apikey.revoked"] == [
        f"user:{admin.id}"]
    assert any(e["action"] == "apikey.refused" and e["detail"]["reason"] == "revoked"
               and e["target"] == f"apikey:{key_id}" for e in audit)


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/api/session", None),
    ("GET", "/api/users", None),
    ("POST", "/api/users", {"username": "mallory", "role": "admin"}),
    ("GET", "/api/keys", None),
    ("POST", "/api/keys", {"name": "more", "scopes": ["jobs:create"]}),
    ("DELETE", "/api/keys/1", None),
    ("GET", "/api/webhooks/deliveries", None),
    ("POST", "/api/jobs/JOB/invites", {"role": "customer"}),
])
async def test_staff_routes_refuse_api_keys(server: Server, method: str, path: str,
                                            body: Any) -> None:
    _, admin = await server.staff("admin")
    key_id, key = await _key(server, admin, "jobs:create", "jobs:read")
    job_id = await server.job(admin)
    path = path.replace("JOB", str(job_id))
    status, answer, _ = await server.request(method, path, token=key, json=body)
    assert _error(status, answer) == (
        403, "forbidden", "API keys cannot use this route: it needs a staff session.")
    refused = [e for e in await _audit(server) if e["action"] == "apikey.refused"]
    assert [(e["actor"], e["detail"]["reason"], e["detail"]["path"]) for e in refused] == [
        (f"apikey:{key_id}", "staff_only", path)]
    status, listed, _ = await server.request("GET", "/api/keys", token=admin)
    assert [k["revoked_at"] for k in listed["keys"]] == [None]  # nothing changed


async def test_an_api_key_cannot_join_a_call(server: Server) -> None:
    _, admin = await server.staff("admin")
    _, key = await _key(server, admin, "jobs:create", "jobs:read")
    job_id = await server.job(admin)
    ws = await server.ws()
    await ws.send_json({"type": "auth", "token": key, "job": job_id})
    message = await ws.receive(timeout=5)
    assert json.loads(message.data)["code"] == "unauthorized"
    closed = await ws.receive(timeout=5)
    assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 4401
    await ws.close()


async def test_a_key_in_the_wrong_header_form_gets_401_saying_how(server: Server) -> None:
    _, admin = await server.staff("admin")
    _, key = await _key(server, admin, "jobs:read")
    wrong: dict[str, dict[str, str]] = {
        "no scheme": {"Authorization": key},
        "Token scheme": {"Authorization": f"Token {key}"},
        "Basic with the key as user": {"Authorization": f"Basic {key}"},
        "X-Api-Key": {"X-Api-Key": key},
        "Bearer with nothing": {"Authorization": "Bearer ", "X-Api-Key": key},
    }
    for name, headers in wrong.items():
        status, body, _ = await server.request("GET", "/api/jobs", headers=headers)
        assert _error(status, body) == (401, "unauthorized", SEND_AS_BEARER), name
    status, body, _ = await server.request("GET", f"/api/jobs?api_key={key}")
    assert _error(status, body) == (401, "unauthorized",
                                    "Sign in first (Authorization: Bearer TOKEN).")
    status, body, _ = await server.request("GET", "/api/jobs",
                                           headers={"Authorization": f"bearer  {key} "})
    assert status == 200, body  # the scheme is case-insensitive, spaces are trimmed


async def test_only_admins_manage_keys_and_bad_requests_are_400(server: Server) -> None:
    _, expert = await server.staff("expert")
    for method, path in (("POST", "/api/keys"), ("GET", "/api/keys"),
                         ("DELETE", "/api/keys/1")):
        status, body, _ = await server.request(method, path, token=expert,
                                               json={"name": "x", "scopes": ["jobs:read"]})
        assert _error(status, body)[:2] == (403, "forbidden"), (method, path)
    _, admin = await server.staff("admin")
    for bad in ({"scopes": ["jobs:read"]}, {"name": " ", "scopes": ["jobs:read"]},
                {"name": "x" * 101, "scopes": ["jobs:read"]}, {"name": "x"},
                {"name": "x", "scopes": []}, {"name": "x", "scopes": ["admin"]},
                {"name": "x", "scopes": "jobs:read"}):
        status, body, _ = await server.request("POST", "/api/keys", token=admin, json=bad)
        assert _error(status, body)[:2] == (400, "bad_request"), bad
    assert (await server.request("GET", "/api/keys", token=admin))[1] == {"keys": []}
