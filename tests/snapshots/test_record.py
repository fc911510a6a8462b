"""What a call leaves behind: snapshots sealed at rest, versions, erasure, retention,
export. Snapshots come from a real aiortc customer through the real server."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import cv2
import numpy as np
import pytest

from tests.support.peers import MediaClient
from tests.support.server import Server, ServerFactory, leave, receive
from videoassist import keyfiles
from videoassist.appkeys import HUB, SNAPSHOTS
from videoassist.cli import main as cli
from videoassist.domain import retention
from videoassist.errors import ConfigError, NotFound, Unavailable
from videoassist.snapshots.vault import Vault

ARROW = {"id": "a1", "kind": "arrow", "points": [[0.1, 0.9], [0.4, 0.6]], "color": "#00ff00",
         "width": 0.01}
RING = {"id": "r1", "kind": "circle", "points": [[0.7, 0.3], [0.8, 0.3]], "color": "#ff00ff",
        "width": 0.01}
DAY = 86400.0


class Party:
    """An expert on /ws and a customer publishing a real camera, in one job's call."""

    def __init__(self, server: Server) -> None:
        self.server = server

    async def start(self) -> Party:
        server = self.server
        self.user, self.token = await server.staff("expert")
        self.job_id = await server.job(self.token)
        self.expert, _ = await server.join_call(self.token, self.job_id)
        self.customer = MediaClient(server, await server.participant(self.token, self.job_id),
                                    audio=False)
        await self.customer.start()
        assert self.customer.video is not None
        async with asyncio.timeout(10):
            while self.customer.video.sent < 10:
                await asyncio.sleep(0.02)
        return self

    async def snapshot(self, shapes: list[dict[str, Any]]) -> int:
        await self.expert.send_json({"type": "snapshot.request", "shapes": shapes,
                                     "camera": self.customer.participant_id})
        saved = await receive(self.expert, skip=("participant.joined", "media.tracks"))
        assert saved["type"] == "snapshot.saved", saved
        snapshot_id: int = saved["snapshot"]["id"]
        return snapshot_id

    async def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        status, body, _ = await self.server.request("GET", path, token=token or self.token)
        return status, body

    async def hang_up(self) -> None:
        await self.customer.close()
        await leave(self.expert)
        async with asyncio.timeout(5):  # the call ends when its last member has left
            while self.job_id in self.server.app[HUB].rooms:
                await asyncio.sleep(0.02)


@pytest.fixture
async def party(server: Server) -> AsyncIterator[Party]:
    p = await Party(server).start()
    yield p
    await p.customer.close()
    await p.expert.close()


def data_files(server: Server) -> dict[str, bytes]:
    """Every file of the data dir (the database, its WAL and SHM, the key files)."""
    return {path.name: path.read_bytes() for path in sorted(server.settings.data_dir.iterdir())
            if path.is_file()}


# The JPEG start of image with the APPn or DQT marker that follows it in a real file:
# four bytes, so encrypted data matches them by chance once in 4 GiB, not once in 16 MiB.
JPEG_STARTS = [b"\xff\xd8\xff" + bytes([m]) for m in (*range(0xE0, 0xF0), 0xDB)]


def assert_no_clear_jpeg(files: dict[str, bytes], jpegs: list[bytes]) -> None:
    for name, content in files.items():
        for start in JPEG_STARTS:
            assert start not in content, f"{name} holds a JPEG header"
        assert b"JFIF" not in content, f"{name} holds a JFIF marker"
        for jpeg in jpegs:
            # Canaries: 32-byte runs from all over each image's entropy-coded data.
            for offset in range(len(jpeg) // 4, len(jpeg) - 32, max(1, len(jpeg) // 40)):
                assert jpeg[offset:offset + 32] not in content, f"{name} holds image bytes"


async def database_values(server: Server) -> dict[str, bytes]:
    """On PostgreSQL, everything the server's database holds: each table's values (bytea
    as they are, the others as text), one string per table."""
    assert server.settings.database_url is not None
    conn = await asyncpg.connect(server.settings.database_url.reveal())
    try:
        tables = [r[0] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return {table: b"\0".join(
            value if isinstance(value, bytes) else str(value).encode()
            for row in await conn.fetch(f'SELECT * FROM "{table}"') for value in row)
            for table in tables}
    finally:
        await conn.close()


def same_database(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI, run in this process, on the server's database (when not its SQLite)."""
    if server.settings.database_url is not None:
        monkeypatch.setenv("VIDEOASSIST_DATABASE_URL", server.settings.database_url.reveal())


BOTH = pytest.mark.parametrize("server_backend", ["sqlite", "postgresql"])


@BOTH
async def test_the_data_dir_never_holds_a_picture_in_the_clear(party: Party) -> None:
    """Nor, on PostgreSQL, the database, where the sealed images are."""
    server = party.server
    snapshot_id = await party.snapshot([ARROW])
    status, jpeg = await party.get(f"/api/snapshots/{snapshot_id}/image")
    assert status == 200 and jpeg[:3] == b"\xff\xd8\xff"
    # The clean frame kept for re-annotation, opened the way the server does.
    stored = await server.store.snapshots.get(snapshot_id)
    vault = Vault(keyfiles.snapshot_key(server.settings), server.store.snapshots)
    key = await vault.key(party.job_id)
    frame = vault.open_image(key, party.job_id,
                             await server.store.snapshots.sealed_frame(stored.frame_id))
    assert frame[:3] == b"\xff\xd8\xff"
    files = data_files(server)
    assert "snapshot-key" in files
    if server.settings.database_url is None:
        assert "videoassist.sqlite3-wal" in files
    else:
        assert not any(name.startswith("videoassist.sqlite3") for name in files)
        tables = await database_values(server)
        sealed = await server.store.snapshots.sealed_image(snapshot_id)
        assert sealed[20:52] in tables["snapshots"]  # the sealed image is in PostgreSQL
        files |= {f"table {name}": content for name, content in tables.items()}
    assert_no_clear_jpeg(files, [jpeg, frame])
    # A control: the same scan finds the picture when it is there in the clear.
    with pytest.raises(AssertionError):
        assert_no_clear_jpeg({"control": b"xx" + jpeg[100:] + b"yy"}, [jpeg])


async def test_what_is_sealed_for_a_job_does_not_open_as_another_jobs(party: Party) -> None:
    """Each sealed image, and each job's wrapped data key, is bound to its job: taken
    as another job's, even with the right key, it does not open. Checked on what the
    real server stored, through the vault and through the API."""
    server, store = party.server, party.server.store
    snapshot_id = await party.snapshot([ARROW])
    status, jpeg = await party.get(f"/api/snapshots/{snapshot_id}/image")
    assert status == 200
    other = await server.job(party.token, "Another job")
    stored = await store.snapshots.get(snapshot_id)
    sealed_image = await store.snapshots.sealed_image(snapshot_id)
    sealed_frame = await store.snapshots.sealed_frame(stored.frame_id)
    vault = Vault(keyfiles.snapshot_key(server.settings), store.snapshots)
    key = await vault.key(party.job_id)
    # Controls: as its own job's, each opens (the image is what the API served).
    assert vault.open_image(key, party.job_id, sealed_image) == jpeg
    assert vault.open_image(key, party.job_id, sealed_frame)[:3] == b"\xff\xd8\xff"
    for sealed in (sealed_image, sealed_frame):
        with pytest.raises(Unavailable):
            vault.open_image(key, other, sealed)
    # The job's wrapped data key, stored as the other job's, does not unwrap.
    wrapped = await store.snapshots.job_key(party.job_id)
    assert wrapped is not None and await store.snapshots.job_key(other) is None
    await store.snapshots.add_job_key(other, wrapped)
    with pytest.raises(Unavailable):
        await vault.key(other)
    # Someone with the database alone moves the snapshot, its frame and its key to the
    # other job's record: the server refuses to show it there.
    await store.db.execute("UPDATE frames SET job_id = ? WHERE id = ?", (other, stored.frame_id))
    await store.db.execute("UPDATE snapshots SET job_id = ? WHERE id = ?", (other, snapshot_id))
    status, body = await party.get(f"/api/snapshots/{snapshot_id}/image")
    assert status == 503 and body["error"]["code"] == "unavailable", body
    status, body = await party.get(f"/api/jobs/{other}/export")
    assert status == 503, body


async def test_the_timeline_says_who_did_each_thing(party: Party) -> None:
    """Each event of the record names who did it where the record knows (the staff
    user who created the job, made a link, closed the job; the participant who joined
    or left; a snapshot's author), and says None where nobody did (a link opened, the
    call's start and end, a job made through an API key)."""
    server = party.server
    first = await party.snapshot([ARROW])
    status, body, _ = await server.request("POST", f"/api/snapshots/{first}/versions",
                                           token=party.token, json={"shapes": [RING]})
    assert status == 201, body
    await party.hang_up()
    status, body, _ = await server.request("POST", f"/api/jobs/{party.job_id}/close",
                                           token=party.token)
    assert status == 200, body
    _, record = await party.get(f"/api/jobs/{party.job_id}")
    expert = party.user.username
    said = [(e["type"], e["who"]) for e in record["events"]]
    assert said[:8] == [
        ("job.created", expert), ("call.started", None),
        ("participant.joined", expert), ("invite.created", expert),
        ("invite.redeemed", None), ("participant.joined", "Customer"),
        ("snapshot.saved", expert), ("snapshot.annotated", expert)], said
    # The two leave on two connections: the server may hear either first.
    assert sorted(said[8:10]) == [("participant.left", "Customer"),
                                  ("participant.left", expert)], said
    assert said[10:] == [("call.ended", None), ("job.closed", expert)], said

    # A job created through an API key: nobody's name, and no error.
    stranger = await server.store.jobs.create("Leak under the sink", None, None)
    _, record = await party.get(f"/api/jobs/{stranger.id}")
    assert [(e["type"], e["who"]) for e in record["events"]] == [("job.created", None)]


async def test_annotating_again_makes_a_version_and_keeps_the_original(party: Party) -> None:
    server = party.server
    first = await party.snapshot([ARROW])
    _, before = await party.get(f"/api/snapshots/{first}/image")
    status, body, _ = await server.request(
        "POST", f"/api/snapshots/{first}/versions", token=party.token,
        json={"shapes": [RING], "caption": "  the valve  "})
    assert status == 201, body
    assert (body["original_id"], body["version"], body["caption"]) == (first, 2, "the valve")
    second = body["id"]
    status, body, _ = await server.request(
        "POST", f"/api/snapshots/{second}/versions", token=party.token, json={"shapes": []})
    assert status == 201 and (body["original_id"], body["version"]) == (first, 3), body
    _, after = await party.get(f"/api/snapshots/{first}/image")
    assert after == before  # the original is untouched
    _, v2 = await party.get(f"/api/snapshots/{second}/image")
    old, new = (cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR) for b in (before, v2))
    # Version 2 is drawn on the clean frame: the ring is there, the first arrow is not.
    ax, ay = round(0.25 * 640), round(0.75 * 360)   # the arrow's middle
    rx, ry = round(0.8 * 640), round(0.3 * 360)     # on the ring
    assert old[ay, ax, 1] > 180 and old[ay, ax, 0] < 110   # green in version 1
    assert not (new[ay, ax, 1] > 180 and new[ay, ax, 0] < 110 and new[ay, ax, 2] < 110)
    assert new[ry, rx, 0] > 180 and new[ry, rx, 2] > 180 and new[ry, rx, 1] < 110  # magenta
    status, record = await party.get(f"/api/jobs/{party.job_id}")
    assert [(s["id"], s["version"]) for s in record["snapshots"]] == [
        (first, 1), (second, 2), (body["id"], 3)]
    status, body, _ = await server.request("PATCH", f"/api/snapshots/{first}",
                                           token=party.token, json={"caption": "gauge"})
    assert status == 200 and body["caption"] == "gauge"


@BOTH
async def test_erasing_a_job_destroys_its_key_so_its_ciphertext_never_decrypts(
        party: Party) -> None:
    server = party.server
    snapshot_id = await party.snapshot([ARROW])
    store = server.store
    sealed = await store.snapshots.sealed_image(snapshot_id)
    wrapped = await store.snapshots.job_key(party.job_id)
    assert wrapped is not None
    if server.settings.database_url is not None:  # a control for the scan below
        before = await database_values(server)
        assert wrapped.wrapped in before["job_keys"] and sealed[20:52] in before["snapshots"]
    status, _, _ = await server.request("DELETE", f"/api/jobs/{party.job_id}", token=party.token)
    assert status == 403  # an expert may not erase
    _, admin_token = await server.staff("admin")
    status, body, _ = await server.request("DELETE", f"/api/jobs/{party.job_id}",
                                           token=admin_token)
    assert status == 409, body  # the call is in progress
    status, body, _ = await server.request("POST", f"/api/jobs/{party.job_id}/close",
                                           token=party.token)
    assert status == 200 and body["status"] == "closed"
    # Closing ends the call: the expert's socket is closed with job_closed.
    message = await receive(party.expert, skip=("participant.left", "media.tracks"))
    assert message["code"] == "job_closed", message
    async with asyncio.timeout(5):
        while party.job_id in server.app[HUB].rooms:
            await asyncio.sleep(0.02)
    status, _, _ = await server.request("DELETE", f"/api/jobs/{party.job_id}", token=admin_token)
    assert status == 204
    status, _ = await party.get(f"/api/snapshots/{snapshot_id}/image")
    assert status == 404
    assert await store.snapshots.job_key(party.job_id) is None
    vault = Vault(keyfiles.snapshot_key(server.settings), store.snapshots)
    with pytest.raises(NotFound):
        await vault.key(party.job_id)
    # The wrapped key is gone from every file: the database overwrote it
    # (secure_delete) and the WAL was truncated.
    # On PostgreSQL, no table holds them either (what the server's files still hold
    # until VACUUM and the WAL reuse them: see docs/deploy.md).
    files = data_files(server)
    if server.settings.database_url is not None:
        files |= {f"table {name}": content
                  for name, content in (await database_values(server)).items()}
    for name, content in files.items():
        assert wrapped.wrapped not in content, f"{name} still holds the wrapped key"
        assert sealed[20:52] not in content, f"{name} still holds the ciphertext"
    # The ciphertext a backup would keep does not open under any key left.
    other_job = await server.job(party.token)
    other_key = await vault.key_for_new(other_job)
    for job_id in (party.job_id, other_job):
        with pytest.raises(Unavailable):
            vault.open_image(other_key, job_id, sealed)
    audit = {e["action"]: e for e in reversed(await store.audit.recent(50))}
    assert "job.closed" in audit
    # Made, then deleted with its job: both in the audit log, naming the snapshot.
    created = audit["snapshot.created"]
    assert (created["target"], created["detail"]["job"]) == (f"snapshot:{snapshot_id}",
                                                            party.job_id)
    _, me = await party.get("/api/session")
    assert created["actor"] == f"user:{me['user']['id']}"  # the expert who asked for it
    redeemed = sorted(e["id"] for e in await store.audit.recent(50)
                      if (e["action"], e["target"]) == ("invite.redeemed", f"job:{party.job_id}"))
    assert redeemed  # the customer's link: its address erased with the job
    assert audit["job.erased"]["detail"] == {"snapshot_ids": [snapshot_id],
                                             "redacted": redeemed}


async def test_retention_purges_by_the_injected_clock(server_factory: ServerFactory) -> None:
    server = await server_factory(retention_days=30, retention_check_s=0.05)
    party = await Party(server).start()
    try:
        old = await party.snapshot([ARROW])
        await party.expert.send_json({"type": "chat.message", "text": "old news"})
        await receive(party.expert, skip=("participant.joined", "media.tracks"))
        kept_job = await server.job(party.token, "Kept for good")
        status, body, _ = await server.request("PATCH", f"/api/jobs/{party.job_id}",
                                               token=party.token, json={"retention_days": 1})
        assert status == 403, body
        _, admin_token = await server.staff("admin")
        status, body, _ = await server.request("PATCH", f"/api/jobs/{party.job_id}",
                                               token=admin_token, json={"retention_days": 2})
        assert status == 200 and body["retention_days"] == 2, body
        await party.hang_up()
        # A day later nothing has expired yet: what the background task does, done here
        # (waiting a while for the task to do it would prove nothing on a busy machine).
        server.clock.advance(1 * DAY)
        counts = await retention.purge(server.store, server.settings, server.clock())
        assert not any(counts.values()), counts
        assert [s.id for s in await server.store.snapshots.of_job(party.job_id)] == [old]
        # Three days later the job's own two days have passed: the background task purges.
        server.clock.advance(2 * DAY)
        async with asyncio.timeout(5):
            while await server.store.snapshots.of_job(party.job_id):
                await asyncio.sleep(0.05)
        assert await server.store.calls.messages_of_job(party.job_id) == []
        assert await server.store.jobs.events(party.job_id) == []
        _, fresh_token = await server.staff("expert")  # the old session has expired
        status, _ = await party.get(f"/api/snapshots/{old}/image", fresh_token)
        assert status == 404
        job = await server.store.jobs.get(party.job_id)  # the job itself stays
        assert job.title and await server.store.jobs.events(kept_job) != []
        # Past the server's 30 days, the other job's events go too.
        server.clock.advance(30 * DAY)
        async with asyncio.timeout(5):
            while await server.store.jobs.events(kept_job):
                await asyncio.sleep(0.05)
        purged = [e for e in await server.store.audit.recent() if e["action"] ==
                  "retention.purged"]
        assert purged[-1]["detail"]["snapshot_ids"] == [old]  # the first purge took it
    finally:
        await party.customer.close()
        await party.expert.close()


async def test_without_retention_nothing_is_purged(party: Party) -> None:
    server = party.server
    snapshot_id = await party.snapshot([])
    counts = await retention.purge(server.store, server.settings, server.clock() + 3650 * DAY)
    assert counts == {"snapshots": 0, "messages": 0, "events": 0, "names": 0}
    assert (await server.store.snapshots.get(snapshot_id)).id == snapshot_id


async def test_export_round_trips_the_record_and_the_images(
        party: Party, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = party.server
    first = await party.snapshot([ARROW])
    status, body, _ = await server.request("POST", f"/api/snapshots/{first}/versions",
                                           token=party.token, json={"shapes": [RING]})
    assert status == 201
    status, body, _ = await server.request("POST", f"/api/jobs/{party.job_id}/notes",
                                           token=party.token, json={"text": "Order a part."})
    assert status == 201, body
    _, record = await party.get(f"/api/jobs/{party.job_id}")
    status, archive, headers = await server.request(
        "GET", f"/api/jobs/{party.job_id}/export", token=party.token)
    assert status == 200 and headers["Content-Type"] == "application/zip"
    assert headers["Cache-Control"] == "no-store"
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        assert z.testzip() is None
        exported = json.loads(z.read("job.json"))
        images = {name: z.read(name) for name in z.namelist() if name != "job.json"}
    assert exported["format"] == "videoassist.job-record/1"
    assert exported["notes"][0]["text"] == "Order a part."
    assert len(exported["snapshots"]) == 2 and len(images) == 2
    for item, live in zip(exported["snapshots"], record["snapshots"], strict=True):
        _, jpeg = await party.get(live["image_url"])
        assert images[item["file"]] == jpeg
        assert hashlib.sha256(jpeg).hexdigest() == item["sha256"]
        assert {k: v for k, v in item.items() if k != "file"} == {
            k: v for k, v in live.items() if k != "image_url"}
    same_keys = set(record) - {"snapshots"}
    assert {k: exported[k] for k in same_keys} == {k: record[k] for k in same_keys}
    audit = await server.store.audit.recent(50)
    exported_audit = next(e for e in audit if e["action"] == "job.exported")
    assert exported_audit["detail"]["snapshot_ids"] == [s["id"] for s in record["snapshots"]]
    assert {e["target"] for e in audit if e["action"] == "snapshot.viewed"} == {
        f"snapshot:{s['id']}" for s in record["snapshots"]}

    # The CLI writes the same archive to a 0600 file, and refuses to overwrite it.
    await party.hang_up()
    out = tmp_path / "job.zip"
    data_dir = str(server.settings.data_dir)
    same_database(server, monkeypatch)
    assert await asyncio.to_thread(cli, ["export", str(party.job_id), "--out", str(out),
                                         "--data-dir", data_dir]) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    with zipfile.ZipFile(out) as z:
        assert {n: z.read(n) for n in z.namelist() if n != "job.json"} == images
        assert json.loads(z.read("job.json"))["snapshots"] == exported["snapshots"]
    assert await asyncio.to_thread(cli, ["export", str(party.job_id), "--out", str(out),
                                         "--data-dir", data_dir]) == 2
    # Audited alike through either door (jobrecord.export_zip audits itself), once each:
    # the refused second export is not.
    rows = [e for e in await server.store.audit.recent(100) if e["action"] == "job.exported"]
    assert [e["actor"] for e in rows] == ["cli", exported_audit["actor"]]
    assert rows[0]["target"] == rows[1]["target"] == f"job:{party.job_id}"
    assert rows[0]["detail"]["snapshot_ids"] == rows[1]["detail"]["snapshot_ids"]
    assert rows[0]["detail"]["bytes"] == out.stat().st_size


async def test_cli_purge_uses_the_retention_settings(server_factory: ServerFactory,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    server = await server_factory()
    _, token = await server.staff("expert")
    job_id = await server.job(token)
    data_dir = str(server.settings.data_dir)
    same_database(server, monkeypatch)
    assert await asyncio.to_thread(cli, ["purge", "--data-dir", data_dir]) == 0
    assert await server.store.jobs.events(job_id) != []  # the default keeps everything
    server.clock.advance(-10 * DAY)  # what happens now is ten days old to the CLI
    _, token = await server.staff("expert")
    await server.job(token, "Ten days ago")
    monkeypatch.setenv("VIDEOASSIST_RETENTION_DAYS", "5")
    assert await asyncio.to_thread(cli, ["purge", "--data-dir", data_dir]) == 0
    assert await server.store.jobs.events(job_id) != []  # made now: kept
    jobs = await server.store.jobs.list()
    old = next(j for j in jobs if j.title == "Ten days ago")
    assert await server.store.jobs.events(old.id) == []



async def test_one_snapshot_in_flight_per_requester_and_bad_versions_are_refused(
        party: Party) -> None:
    server = party.server
    for request in ("a", "b"):
        await party.expert.send_json({"type": "snapshot.request", "request": request,
                                      "camera": party.customer.participant_id})
    answers = {}
    for _ in range(2):
        message = await receive(party.expert, skip=("participant.joined", "media.tracks"))
        answers[message["request"]] = message
    assert answers["a"]["type"] == "snapshot.saved", answers
    assert (answers["b"]["code"], answers["b"]["ref"]) == ("conflict", "snapshot.request")
    snapshot_id = answers["a"]["snapshot"]["id"]
    bad: list[tuple[Any, int]] = [
        ({"shapes": "all"}, 400),
        ({"shapes": [{**ARROW, "points": [[0.1, 0.1], [2, 2]]}]}, 400),
        ({"shapes": [], "caption": "x" * 501}, 400),
        ({"shapes": [], "owner": "me"}, 400),
        ({"caption": "no shapes"}, 400),
    ]
    for body, expected in bad:
        status, answer, _ = await server.request(
            "POST", f"/api/snapshots/{snapshot_id}/versions", token=party.token, json=body)
        assert status == expected, (body, answer)
        assert answer["error"]["message"]
    status, answer, _ = await server.request(
        "POST", f"/api/snapshots/{snapshot_id}/versions", token="forged.token.value",
        json={"shapes": []})
    assert status == 401
    status, answer, _ = await server.request(
        "POST", "/api/snapshots/999999/versions", token=party.token, json={"shapes": []})
    assert status == 404
    # Nothing of that was stored.
    assert [s.id for s in await server.store.snapshots.of_job(party.job_id)] == [snapshot_id]


async def test_an_erased_jobs_id_is_never_given_again_nor_its_links_honoured(
        server: Server) -> None:
    _, token = await server.staff("expert")
    _, admin_token = await server.staff("admin")
    erased = await server.job(token, "To be erased")
    stale = await server.participant(token, erased)  # a customer's redeemed link
    status, _, _ = await server.request("DELETE", f"/api/jobs/{erased}", token=admin_token)
    assert status == 204
    fresh = await server.job(token, "The next job")
    assert fresh > erased
    # The next invites may take the erased invites' ids: the stale token still fails.
    await server.participant(token, fresh)
    for job in (None, fresh, erased):
        ws = await server.ws()
        await ws.send_json({"type": "auth", "token": stale, **({} if job is None else
                                                                {"job": job})})
        answer = await receive(ws)
        assert answer["type"] == "error", answer
        await ws.close()


async def test_erasing_waits_for_a_snapshot_being_saved(party: Party) -> None:
    server = party.server
    service = server.app[SNAPSHOTS]
    release = asyncio.Event()
    capturer = service._capturer  # the real media router, held back for this test
    assert capturer is not None

    class HeldCamera:
        async def capture(self, participant_id: int) -> Any:
            captured = await capturer.capture(participant_id)
            await release.wait()
            return captured

        async def placed(self, participant_id: int, shapes: list[dict[str, Any]],
                         timestamp: int) -> list[dict[str, Any]]:
            return await capturer.placed(participant_id, shapes, timestamp)

    service._capturer = HeldCamera()
    await party.expert.send_json({"type": "snapshot.request",
                                  "camera": party.customer.participant_id})
    async with asyncio.timeout(5):
        while not await service.busy(party.job_id):
            await asyncio.sleep(0.01)
    _, admin_token = await server.staff("admin")
    await server.request("POST", f"/api/jobs/{party.job_id}/close", token=party.token)
    async with asyncio.timeout(5):
        while party.job_id in server.app[HUB].rooms:
            await asyncio.sleep(0.02)
    status, body, _ = await server.request("DELETE", f"/api/jobs/{party.job_id}",
                                           token=admin_token)
    assert (status, body["error"]["code"]) == (409, "conflict"), body
    release.set()
    async with asyncio.timeout(5):
        while await service.busy(party.job_id):
            await asyncio.sleep(0.01)
    assert len(await server.store.snapshots.of_job(party.job_id)) == 1  # saved, not lost
    status, _, _ = await server.request("DELETE", f"/api/jobs/{party.job_id}",
                                        token=admin_token)
    assert status == 204
    assert await server.store.snapshots.of_job(party.job_id) == []


async def test_a_kek_that_opens_no_stored_key_is_refused(party: Party) -> None:
    server = party.server
    await party.snapshot([])
    wrong = Vault(b"w" * 32, server.store.snapshots)
    with pytest.raises(ConfigError, match="restore"):
        await wrong.check()
    await Vault(keyfiles.snapshot_key(server.settings), server.store.snapshots).check()
