"""No token, password, link secret or key ever reaches a log line, and every event is
one line (one JSON object with ``VIDEOASSIST_LOG_FORMAT=json``)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.support.process import ServeProcess, clean_env, ok
from tests.support.server import PASSWORD, Clock, Server, leave, receive
from videoassist import keyfiles
from videoassist.config import Settings
from videoassist.logs import ACCESS_LOGGER, JsonFormatter, TextFormatter


async def test_no_secret_in_any_log_line(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = [PASSWORD, keyfiles.turn_secret(server.settings)]
    secrets += [k.secret.decode() for k in keyfiles.signing_keys(server.settings)]

    admin = await server.add_user("admin")
    admin_token = await server.sign_in(admin.username)
    secrets.append(admin_token)
    await server.request("POST", "/api/session",
                         json={"username": admin.username, "password": "wrong but secret 1"})
    secrets.append("wrong but secret 1")

    status, created, _ = await server.request("POST", "/api/users", token=admin_token,
                                              json={"username": "tech", "role": "technician"})
    assert status == 201
    setup_token = created["password_link"]["url"].split("#")[1]
    secrets.append(setup_token)
    status, body, _ = await server.request(
        "POST", "/api/password", json={"token": setup_token, "password": "tech password 1"})
    assert status == 200
    secrets += ["tech password 1", body["token"]]

    job_id = await server.job(admin_token)
    link = await server.invite(admin_token, job_id)
    secrets.append(link)
    await server.request("GET", f"/join?token={link}")  # a mistyped link with a query
    await server.request("POST", "/api/invites/inspect", json={"token": link})
    status, redeemed = await server.redeem(link)
    secrets.append(redeemed["token"])
    await server.redeem(link)  # replay: 410

    staff_ws, _ = await server.join_call(admin_token, job_id)
    customer_ws, _ = await server.join_call(redeemed["token"])
    await customer_ws.send_json({"type": "auth", "token": redeemed["token"]})
    await receive(customer_ws)
    bad = await server.ws()
    await bad.send_json({"type": "auth", "token": admin_token + "x", "job": job_id})
    await bad.receive(timeout=5)
    await bad.receive(timeout=5)
    await staff_ws.close()
    await customer_ws.close()

    records = caplog.records
    assert any(r.name == ACCESS_LOGGER and "/api/invites/redeem" in r.getMessage()
               for r in records), "the access log was not captured"
    for record in records:
        text = record.getMessage() + (record.exc_text or "")
        for secret in secrets:
            assert secret not in text, f"{record.name}: a secret is in {text[:200]!r}"


# -- one line per event ------------------------------------------------------------------


def _emit(formatter: logging.Formatter, *, extra: dict[str, object] | None = None) -> str:
    """What a real logger writes through a handler with this formatter: a record with
    a newline in its message, an extra field, and a traceback."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    log = logging.getLogger(f"videoassist.test.{id(stream)}")
    log.propagate = False
    log.addHandler(handler)
    try:
        try:
            raise ValueError("line one\nline two")
        except ValueError:
            log.exception("a forged\nline?", extra=extra)
    finally:
        log.removeHandler(handler)
    return stream.getvalue()


def test_text_format_keeps_a_traceback_on_its_line() -> None:
    written = _emit(TextFormatter())
    [line] = written.splitlines()
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ERROR videoassist\.test\.\d+: "
                    r"a forged\\nline\?\\nTraceback \(most recent call last\):", line), line
    assert line.endswith("ValueError: line one\\nline two")


def test_json_format_is_one_object_per_line() -> None:
    written = _emit(JsonFormatter(), extra={"job": 7, "path": "/x"})
    [line] = written.splitlines()
    entry = json.loads(line)
    assert set(entry) == {"time", "level", "logger", "message", "job", "path", "exception"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"]), entry
    assert (entry["level"], entry["message"], entry["job"]) == ("ERROR", "a forged\nline?", 7)
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert entry["exception"].endswith("ValueError: line one\nline two")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_uncaught_exceptions_and_warnings_are_one_line_each(log_format: str) -> None:
    script = ("import warnings\nfrom videoassist.logs import configure\n"
              f"configure({log_format!r})\n"
              "warnings.warn('first\\nsecond')\n"
              "raise RuntimeError('boom\\nagain')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=30, env=clean_env())
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert "UserWarning: first" in lines[0]
    assert "uncaught exception" in lines[1] and "RuntimeError: boom" in lines[1]
    if log_format == "json":
        warning, error = (json.loads(line) for line in lines)
        assert (warning["logger"], error["level"]) == ("py.warnings", "CRITICAL")
        assert error["exception"].endswith("RuntimeError: boom\nagain")


async def test_a_real_servers_json_log_has_no_secret(tmp_path: Path) -> None:
    """``videoassist serve`` with JSON logs, through sign-in, invite, redeem and join:
    every line on stderr is a JSON object, and none holds a secret."""
    data_dir = tmp_path / "data"
    ok(data_dir, "user", "add", "bob", "--role", "expert", "--password-stdin",
       stdin=PASSWORD + "\n")
    job_id = int(ok(data_dir, "job", "create", "Boiler makes a noise"))
    process = ServeProcess(data_dir, env={"VIDEOASSIST_LOG_FORMAT": "json"},
                           stderr_apart=True)
    secrets = [PASSWORD, "wrong but secret 1"]
    try:
        await asyncio.to_thread(process.wait_ready)
        async with aiohttp.ClientSession() as http:
            remote = Server(process.url, Settings(port=process.port), None,  # type: ignore[arg-type]
                            Clock(), http)
            status, _, _ = await remote.request(
                "POST", "/api/session", json={"username": "bob", "password": secrets[1]})
            assert status == 401
            staff_token = await remote.sign_in("bob")
            link = await remote.invite(staff_token, job_id)
            await remote.request("GET", f"/join?token={link}")  # a mistyped link
            await remote.request("POST", "/api/invites/inspect", json={"token": link})
            status, redeemed = await remote.redeem(link)
            assert status == 200, redeemed
            assert (await remote.redeem(link))[0] == 410
            staff_ws, _ = await remote.join_call(staff_token, job_id)
            customer_ws, _ = await remote.join_call(redeemed["token"])
            await customer_ws.send_json({"type": "chat.message", "text": "hello"})
            await receive(staff_ws, skip=("participant.joined",))
            await leave(customer_ws)
            await leave(staff_ws)
            secrets += [staff_token, link, redeemed["token"]]
    finally:
        assert process.stop() == 0
    secrets.append((data_dir / "turn-secret").read_text().strip())
    secrets.append((data_dir / "snapshot-key").read_text().strip())
    secrets += [k["key"] for k in json.loads((data_dir / "jwt-keys.json").read_text())["keys"]]

    entries = []
    for line in process.err_lines:
        entry = json.loads(line)  # every line, not just most
        assert isinstance(entry, dict) and {"time", "level", "logger", "message"} <= set(entry)
        entries.append(entry)
        for secret in secrets:
            assert secret not in line, f"a secret in the log: {line[:200]}"
    messages = [e["message"] for e in entries]
    access = [e for e in entries if e["logger"] == ACCESS_LOGGER]
    assert {(e["method"], e["path"], e["status"]) for e in access} >= {
        ("POST", "/api/session", 401), ("POST", "/api/invites/redeem", 200),
        ("POST", "/api/invites/redeem", 410), ("GET", "/join", 200), ("GET", "/ws", 101)}
    assert any("joined as customer" in m for m in messages), messages
    assert any(m.startswith("SIGTERM: draining") for m in messages), messages
    assert "Traceback" not in process.output
