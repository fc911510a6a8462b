"""The events the server emits and the shape of their data.

``snapshot.saved`` and ``job.closed`` are emitted by the code that saves snapshots
and closes jobs; their data is documented in ``docs/api.md``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from videoassist.storage.records import Call, Job

# What sends an event: its type and data (``Webhooks.emit`` in the server, ``Outbox.emit``
# in another process). The rules that emit events take one.
Emit = Callable[[str, dict[str, Any]], Awaitable[None]]

EVENT_TYPES: tuple[str, ...] = (
    "job.created", "call.started", "call.ended", "snapshot.saved", "job.closed",
)


def job_ref(job: Job) -> dict[str, Any]:
    """What names a job to the company's systems."""
    return {"id": job.id, "external_ref": job.external_ref}


def call_data(call: Call) -> dict[str, Any]:
    duration = None if call.ended_at is None else round(call.ended_at - call.started_at, 3)
    return {"id": call.id, "started_at": call.started_at, "ended_at": call.ended_at,
            "duration_s": duration}


class CallWebhooks:
    """The hub's ``CallEvents`` (``videoassist.signalling.events``) sent as webhooks."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit

    async def call_started(self, job: Job, call: Call) -> None:
        await self._emit("call.started", {"job": job_ref(job), "call": call_data(call)})

    async def call_ended(self, job: Job, call: Call) -> None:
        await self._emit("call.ended", {"job": job_ref(job), "call": call_data(call)})
