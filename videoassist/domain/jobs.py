"""Jobs: creating and closing them, the same whoever asks (staff or an API key over
HTTP, an operator with the CLI).

Each action changes the database, records itself in the audit log and queues its
webhook here; closing also ends the job's call. A call runs on the server, so when
the CLI (another process) closes a job there is no call to end in that process: the
server's watcher (``Hub.watch_revocations``) sees the job closed within
``VIDEOASSIST_REVOCATION_POLL_S`` and ends the call the same way, through
``end_call`` below.
"""

from __future__ import annotations

import logging
from typing import Protocol

from videoassist.actors import Actor
from videoassist.errors import BadRequest
from videoassist.storage import Store
from videoassist.storage.records import Job
from videoassist.webhooks.events import Emit

logger = logging.getLogger(__name__)

MAX_TITLE_CHARS = 200
MAX_EXTERNAL_REF_CHARS = 100
MAX_RETENTION_DAYS = 100 * 365

# What everyone in the call of a job being closed is told, and the close reason.
CLOSED_REASON = "job_closed"
CLOSED_MESSAGE = "This job has been closed."



class Calls(Protocol):
    """What closing a job needs of the calls in progress (``Hub`` implements it)."""

    async def end_call(self, job_id: int, reason: str, message: str) -> int:
        """Close every connection in the job's call, saying why; return how many."""


def _text(value: str | None, name: str, max_len: int, required: bool) -> str | None:
    value = (value or "").strip()
    if required and not value:
        raise BadRequest(f"{name} must not be empty.")
    if len(value) > max_len:
        raise BadRequest(f"{name} must be at most {max_len} characters.")
    return value or None


async def create(store: Store, emit: Emit, title: str, external_ref: str | None,
                 actor: Actor) -> Job:
    """Create a job (its creator: the staff user ``actor`` is, if one); audited as
    ``actor``, followed by a ``job.created`` webhook."""
    checked = _text(title, "title", MAX_TITLE_CHARS, required=True)
    assert checked is not None
    ref = _text(external_ref, "external_ref", MAX_EXTERNAL_REF_CHARS, required=False)
    job = await store.jobs.create(checked, ref, actor.user_id)
    await store.audit.record(actor, "job.created", f"job:{job.id}")
    await emit("job.created", {"job": job.public()})
    logger.info("[job %d] created by %s", job.id, actor)
    return job


async def close(store: Store, emit: Emit, calls: Calls | None, job_id: int,
                actor: Actor) -> Job:
    """Close an open job: its links stop working and its call, if ``calls`` carries
    one, ends now (``None``: the CLI, whose close the server's watcher picks up).
    Audited as ``actor``, followed by a ``job.closed`` webhook. Conflict if it is
    already closed."""
    job = await store.jobs.close(job_id, actor.user_id)
    if calls is not None:
        await end_call(calls, job_id)
    await store.audit.record(actor, "job.closed", f"job:{job_id}")
    await emit("job.closed", {"job": job.public()})
    logger.info("[job %d] closed by %s", job_id, actor)
    return job


async def erase(store: Store, job_id: int, actor: Actor) -> list[int]:
    """Erase a job and its whole record, its data key included, and the personal data
    the audit log kept about it (the addresses its links were redeemed from); audited
    as ``actor`` with the ids of the snapshots erased, which are returned, and of the
    audit rows whose personal data went. Refused (Conflict) while a call of the job is
    in progress or a snapshot of it is being made, whichever server process holds
    them: the database says, not this process's calls."""
    snapshot_ids = await store.jobs.delete(job_id)
    await store.audit.erase_personal(actor, "job.erased", f"job:{job_id}",
                                     snapshot_ids=snapshot_ids)
    logger.info("[job %d] erased by %s", job_id, actor)
    return snapshot_ids


async def end_call(calls: Calls, job_id: int) -> int:
    """End the call of a job that has been closed: everyone in it gets ``job_closed``."""
    return await calls.end_call(job_id, CLOSED_REASON, CLOSED_MESSAGE)


async def set_retention(store: Store, job_id: int, days: object, actor: Actor) -> Job:
    """Set a job's own retention in days (None: the server's default), audited."""
    if days is not None and (isinstance(days, bool) or not isinstance(days, int)
                             or not 1 <= days <= MAX_RETENTION_DAYS):
        raise BadRequest(f"retention_days must be 1 to {MAX_RETENTION_DAYS}, or null.")
    job = await store.jobs.set_retention(job_id, days)
    await store.audit.record(actor, "job.retention", f"job:{job_id}", days=days)
    return job
