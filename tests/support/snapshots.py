"""Snapshots stored without a live call, for tests about what is done with them."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from tests.support.server import Server
from videoassist import keyfiles
from videoassist.actors import Actor
from videoassist.snapshots.service import SnapshotService
from videoassist.snapshots.vault import Vault
from videoassist.storage.records import Author


async def still_snapshot(server: Server, job_id: int, author: Any,
                         size: tuple[int, int] = (720, 1280)) -> tuple[int, int]:
    """A stored snapshot for the examples to read, ``size`` (height, width). Taken from a
    still picture, not a live camera: the live path is tested in tests/snapshots; these
    examples are about the HTTP answers."""

    class StillCamera:
        async def capture(self, participant_id: int) -> Any:
            return dataclasses.make_dataclass("Capture", ["image", "captured_at", "timestamp"])(
                np.full((*size, 3), 90, np.uint8), server.clock(), 0)

        async def placed(self, participant_id: int, shapes: list[dict[str, Any]],
                         timestamp: int) -> list[dict[str, Any]]:
            return shapes  # nothing pinned on a still

    vault = Vault(keyfiles.snapshot_key(server.settings), server.store.snapshots)
    service = SnapshotService(server.store, vault, StillCamera(), 90)
    store = server.store
    call_id = await store.calls.start(job_id)
    expert = await store.calls.join(call_id, author.role, author.username, author.id, None)
    customer = await store.calls.join(call_id, "customer", "Customer", None, None)
    snapshot = await service.take(
        job_id, call_id, Author(author.username, author.role, expert.id, author.id),
        Author("Customer", "customer", customer.id), [], Actor.user(author.id))
    await store.calls.end(call_id)
    return snapshot.id, call_id
