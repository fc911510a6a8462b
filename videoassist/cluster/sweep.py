"""Ending the calls of nodes that are gone.

Run by whoever knows a node is gone: the supervisor at start-up (every node of this
machine is from a previous run) and when one of its workers dies (that worker's node),
and a server of one process at its own start. Also ended: calls held by a node not
heard from for ``SILENT_S`` (on any machine), and calls held by no node (left by a
version from before nodes). Each ended call is told to the webhooks as ``call.ended``.
"""

from __future__ import annotations

import logging
import socket

from videoassist.cluster.node import SILENT_S
from videoassist.storage import Store
from videoassist.webhooks import CallWebhooks, Outbox, Webhooks

logger = logging.getLogger(__name__)

KEEP_STOPPED_S = 7 * 86400  # stopped nodes are forgotten after a week


async def end_calls_of_gone_nodes(store: Store, webhooks: Webhooks | Outbox, now: float,
                                  pid: int | None = None) -> list[int]:
    """End the calls of the nodes gone: this machine's (all, or process ``pid``'s),
    and those silent for ``SILENT_S``; mark those nodes stopped. The calls' ids."""
    gone = await store.nodes.gone(socket.gethostname(), now - SILENT_S, pid)
    ended = await store.calls.end_held_by(gone, unplaced=pid is None)
    await store.nodes.stop(gone)
    events = CallWebhooks(webhooks)
    for call_id in ended:
        call = await store.calls.get(call_id)
        await events.call_ended(await store.jobs.get(call.job_id), call)
    if pid is None:
        await store.nodes.prune(now - KEEP_STOPPED_S)
    return ended
