"""What the hub tells the rest of the server about calls: a small interface, so
signalling does not depend on webhooks (``videoassist.webhooks.CallWebhooks``
implements it)."""

from __future__ import annotations

from typing import Protocol

from videoassist.storage.records import Call, Job


class CallEvents(Protocol):
    async def call_started(self, job: Job, call: Call) -> None:
        """A job's call started: its first participant joined."""

    async def call_ended(self, job: Job, call: Call) -> None:
        """A job's call ended: its last participant left, or the server restarted."""
