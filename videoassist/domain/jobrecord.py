"""The job record: everything a job's calls left behind, as one JSON document, and
its export as a ZIP for the company's own archive.

The record is what ``GET /api/jobs/{id}`` answers: the job, the timeline of its
calls (who joined and left when, and for how long), its events, chat, notes and
snapshots. The export is that record as ``job.json`` plus every snapshot image,
decrypted, under ``snapshots/``; ``job.json`` names each image's file and SHA-256.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable
from typing import Any

from videoassist import __version__
from videoassist.actors import Actor
from videoassist.errors import BadRequest, Forbidden, NotFound
from videoassist.snapshots.service import SnapshotService
from videoassist.storage import Store
from videoassist.storage.records import Call, Participant, Snapshot, User

FORMAT = "videoassist.job-record/1"


def _duration(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 3)


def snapshot_file(snapshot: Snapshot) -> str:
    root = snapshot.original_id or snapshot.id
    return f"snapshots/{root:06d}-v{snapshot.version}.jpg"


async def record(store: Store, job_id: int) -> dict[str, Any]:
    """The whole record of one job (NotFound if there is no such job)."""
    job = await store.jobs.get(job_id)
    participants = await store.calls.participants_of_job(job_id)
    by_call: dict[int, list[Participant]] = {}
    for p in participants:
        by_call.setdefault(p.call_id, []).append(p)
    calls = []
    for call in await store.calls.calls_of_job(job_id):
        call_id = int(call["id"] or 0)
        calls.append({
            **call,
            "duration_s": _duration(call["started_at"], call["ended_at"]),
            "participants": [p.public() | {"duration_s": _duration(p.joined_at, p.left_at)}
                             for p in by_call.get(call_id, [])],
        })
    snapshots = await store.snapshots.of_job(job_id)
    return {
        **job.public(),
        "calls": calls,
        "participants": [p.public() for p in participants],
        "events": await _events_with_who(store, job_id, snapshots),
        "messages": [m.public() for m in await store.calls.messages_of_job(job_id)],
        "notes": [n.public() for n in await store.jobs.notes(job_id)],
        "snapshots": [snapshot_json(s) for s in snapshots],
    }


async def _events_with_who(store: Store, job_id: int,
                           snapshots: list[Snapshot]) -> list[dict[str, Any]]:
    """The job's events, each with ``who``: the name of whoever did it, where the
    record knows (a staff user's username, a participant's name, a snapshot's
    author), else None (an API key, a link being opened, the server itself)."""
    events = await store.jobs.events(job_id)
    authors = {s.id: s.author.name for s in snapshots}
    users: dict[int, str | None] = {}

    async def name_of(user_id: object) -> str | None:
        if not isinstance(user_id, int):
            return None
        if user_id not in users:
            try:
                users[user_id] = (await store.users.get(user_id)).name
            except NotFound:
                users[user_id] = None
        return users[user_id]

    for event in events:
        data, who = event["data"], None
        if event["type"] in ("job.created", "job.closed", "invite.withdrawn"):
            who = await name_of(data.get("by"))
        elif event["type"] in ("participant.joined", "participant.left"):
            who = data.get("name")
        elif event["type"] in ("snapshot.saved", "snapshot.annotated"):
            who = authors.get(data.get("snapshot"))
        elif event["type"] == "invite.created" and isinstance(data.get("invite"), int):
            invite = await store.invites.get(data["invite"])
            who = await name_of(invite.created_by) if invite else None
        event["who"] = who
    return events


async def snapshot_ids(store: Store, job_id: int) -> list[int]:
    """The ids of a job's snapshots, every version: what an export holds, for the
    audit log."""
    return [s.id for s in await store.snapshots.of_job(job_id)]


def snapshot_json(snapshot: Snapshot) -> dict[str, Any]:
    """A snapshot as the API shows it: its record and where its image is."""
    return snapshot.public() | {"image_url": f"/api/snapshots/{snapshot.id}/image"}


async def export_zip(store: Store, snapshots: SnapshotService, job_id: int,
                     clock: Callable[[], float], actor: Actor) -> bytes:
    """The job's record and images as a ZIP archive, built in memory, and audited as
    ``job.exported`` by ``actor`` (its size and the snapshots decrypted into it),
    whoever asks: the API, the CLI.

    Images are JPEGs already: they are stored, not deflated again.
    """
    data = await record(store, job_id)
    data["format"] = FORMAT
    data["exported_at"] = clock()
    data["exported_by"] = f"videoassist {__version__}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for item in data["snapshots"]:
            snapshot, jpeg = await snapshots.image(item["id"])
            name = snapshot_file(snapshot)
            item["file"] = name
            del item["image_url"]
            archive.writestr(zipfile.ZipInfo(name, _zip_time(snapshot.created_at)), jpeg,
                             compress_type=zipfile.ZIP_STORED)
        document = json.dumps(data, indent=2, ensure_ascii=False).encode()
        archive.writestr(zipfile.ZipInfo("job.json", _zip_time(data["exported_at"])), document,
                         compress_type=zipfile.ZIP_DEFLATED)
    archived = buffer.getvalue()
    await store.audit.record(actor, "job.exported", f"job:{job_id}", bytes=len(archived),
                             snapshot_ids=await snapshot_ids(store, job_id))
    return archived


def _zip_time(unix: float) -> tuple[int, int, int, int, int, int]:
    t = time.gmtime(max(unix, 315532800))  # ZIP dates start in 1980
    return t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec


async def record_outcome(store: Store, call_id: int, fixed: object, user: User) -> Call:
    """Whether a call's visit fixed the problem (``first_time_fix``), by an expert who
    was in the call or any admin; a later answer replaces an earlier one. Audited."""
    if not isinstance(fixed, bool):
        raise BadRequest("first_time_fix must be true or false.")
    # Membership first: an expert learns nothing of calls they were not in.
    if user.role != "admin" and not await store.calls.was_in(call_id, user.id):
        raise Forbidden("Only someone who was in the call records its outcome.")
    call = await store.calls.get(call_id)
    await store.calls.set_outcome(call_id, fixed, user.id)
    await store.audit.record(Actor.user(user.id), "call.outcome", f"job:{call.job_id}",
                             call=call_id, first_time_fix=fixed)
    return call
