"""Ending the calls of nodes that are gone.

Two ways a node is known to be gone:

- **On this machine**, by its process: the supervisor at start-up and a server of one
  process at its own start end the calls of this host's nodes whose process is gone
  (this host: the same name and pid namespace, ``node.machine``)
  (or is this very process: a container's pid 1 again), and the supervisor those of a
  worker that died, at once, sure of it. A node of another ``videoassist serve`` on this machine
  that runs is left alone, and so is every other machine's. Calls held by no node
  (left by a version from before nodes) are ended at start-up too.
- **Anywhere**, by its silence: every node, after each heartbeat, takes the nodes not
  heard from for ``VIDEOASSIST_NODE_TIMEOUT_S`` for dead (``Sweeper``), once its own
  heartbeats have gone through for that long (after an outage of the database every
  heartbeat is old: nobody judges until everyone had the time to beat again). Marking one
  stopped is a conditional UPDATE, so of all the nodes that notice at once one claims
  it and ends its calls; every node then closes the connections it carries to calls
  that have ended (1011 ``call_lost``: the clients rejoin, and the job's next join
  places a new call on a live node).

Each ended call is told to the webhooks as ``call.ended``, once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from videoassist.cluster.node import ThisNode, machine
from videoassist.cluster.proxy import Proxies
from videoassist.storage import Store
from videoassist.webhooks import CallWebhooks, Outbox, Webhooks

logger = logging.getLogger(__name__)

KEEP_STOPPED_S = 7 * 86400  # stopped nodes are forgotten after a week


def _process_gone(pid: int) -> bool:
    """Whether no process of this machine has that pid (or it is this one's, which
    registered no node yet)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: alive
        return False
    return False


async def end_calls_of_gone_nodes(store: Store, webhooks: Webhooks | Outbox, now: float,
                                  pid: int | None = None) -> list[int]:
    """End the calls of this machine's nodes whose process is gone (or of the node of
    process ``pid``, which died) and mark those nodes stopped. The ids of the calls
    this ended. Silent nodes elsewhere are the ``Sweeper``'s."""
    host = machine()
    if pid is None:
        gone = [n.id for n in await store.nodes.of_host(host) if _process_gone(n.pid)]
    else:
        gone = [n.id for n in await store.nodes.of_host(host) if n.pid == pid]
    ended = await store.calls.end_held_by(gone, unplaced=pid is None)
    await store.nodes.stop(gone)
    await _tell(store, webhooks, ended)
    if pid is None:
        await store.nodes.prune(now - KEEP_STOPPED_S)
    return ended


async def _tell(store: Store, webhooks: Webhooks | Outbox, ended: list[int]) -> None:
    events = CallWebhooks(webhooks.emit)
    for call_id in ended:
        call = await store.calls.get(call_id)
        await events.call_ended(await store.jobs.get(call.job_id), call)


class Sweeper:
    """This node's look at the others, after each of its heartbeats."""

    def __init__(self, store: Store, webhooks: Webhooks | Outbox, node: ThisNode,
                 proxies: Proxies, clock: Callable[[], float]) -> None:
        self._store = store
        self._webhooks = webhooks
        self._node = node
        self._proxies = proxies
        self._clock = clock

    async def check(self) -> None:
        """End the calls of nodes silent for the node timeout (those this node claims),
        then close the connections this node carries to calls that have ended."""
        claimed, ended = await self._store.calls.end_of_silent_nodes(
            self._node.heard_after(), self._node.id)
        if claimed:
            logger.warning("node %d: nodes %s not heard from for %g s taken for dead; "
                           "%d calls they held ended", self._node.id,
                           ", ".join(map(str, claimed)), self._node.timeout_s, len(ended))
            await _tell(self._store, self._webhooks, ended)
        carried = self._proxies.call_ids()
        if carried:
            lost = await self._store.calls.ended_among(carried)
            if lost:
                self._proxies.close_calls(lost)
