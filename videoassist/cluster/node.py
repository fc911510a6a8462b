"""This process as a node: its row in ``nodes``, its heartbeat, its internal address.

The internal address is a second HTTP listener (``VIDEOASSIST_INTERNAL_HOST`` and
``_PORT``: 127.0.0.1 and any free port by default; an address the other machines reach
in a fleet) that only the installation's own nodes use: a node proxies a signalling
WebSocket to the node that holds its call there, and gathers the others' metrics from
there. Every request must carry the installation's node secret
(``VIDEOASSIST_NODE_SECRET`` or ``DATA_DIR/node-secret``) and arrive on that listener;
anything else gets 404, as if the path did not exist.

After each heartbeat the node runs its ``on_beat`` (the sweep of dead nodes,
``cluster.sweep``), once its heartbeats have gone through for a whole node timeout. A
node whose heartbeat finds its row marked stopped was taken for dead by another (its
loop stalled longer than the node timeout) and its calls were ended: it registers
again, as a new node, and its hub closes the calls it still had.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web

from videoassist.storage import Store

logger = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
# The default of VIDEOASSIST_NODE_TIMEOUT_S: a node not heard from for this long holds
# nothing: its calls are ended by another node and placed again. Far above the
# heartbeat, so that a node whose loop is slow for a while (a busy machine) keeps its
# calls; a worker that dies is noticed at once by its supervisor, not by this.
SILENT_S = 30.0
SECRET_HEADER = "X-Videoassist-Node-Secret"  # noqa: S105 (a header name)
CLIENT_HEADER = "X-Videoassist-Client"  # the client's address, as the first node saw it
INTERNAL_HOST = "127.0.0.1"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ThisNode:
    """Registers this process as a node, heartbeats, and serves the internal routes."""

    def __init__(self, store: Store, secret: str, worker: int | None,
                 clock: Callable[[], float], load: Callable[[], int], *,
                 timeout_s: float = SILENT_S, host: str = INTERNAL_HOST,
                 port: int = 0) -> None:
        self._store = store
        self.secret = secret
        self.worker = worker
        self._clock = clock
        self._load = load
        self.timeout_s = timeout_s
        self._host = host
        # A fixed port is the first worker's; worker N listens on the Nth after it.
        self._port = port + (worker or 0) if port else 0
        self.id = 0
        self.address = ""
        self._runner: web.AppRunner | None = None
        self._beat: asyncio.Task[None] | None = None
        self._on_beat: Callable[[], Awaitable[None]] | None = None
        self._draining = False

    def heard_after(self) -> float:
        """Nodes heard from since this time are live."""
        return self._clock() - self.timeout_s

    def internal_app(self, routes: dict[str, Handler]) -> web.Application:
        """The internal listener's application: ``routes`` by path (GET), each behind
        the secret and this listener."""
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        for path, handler in routes.items():
            app.router.add_get(path, handler)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            raise web.HTTPNotFound()
        return await handler(request)

    async def start(self, routes: dict[str, Handler],
                    on_beat: Callable[[], Awaitable[None]] | None = None) -> None:
        """Listen on the internal address, then register and start heartbeating;
        ``on_beat`` runs after each heartbeat."""
        runner = web.AppRunner(self.internal_app(routes), access_log=None,
                               shutdown_timeout=2.0)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        host, port = runner.addresses[0][:2]
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        await self._register()
        self._on_beat = on_beat
        self._beat = asyncio.create_task(self._heartbeat())

    async def _register(self) -> None:
        self.id = await self._store.nodes.register(socket.gethostname(), os.getpid(),
                                                   self.worker, self.address)
        logger.info("node %d (worker %s) listening internally on %s", self.id,
                    "-" if self.worker is None else self.worker, self.address)
        if self._draining:
            await self._store.nodes.set_draining(self.id)

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        # Since when every heartbeat went through. Only a node that has heard the
        # database for a whole node timeout judges others by their silence: after an
        # outage of the database, every node's heartbeat is old until it beats again.
        steady_since = loop.time()
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                if not await self._store.nodes.heartbeat(self.id, self._load()):
                    logger.error("node %d was taken for dead by another node (not heard "
                                 "from for %g s) and its calls were ended: registering "
                                 "again", self.id, self.timeout_s)
                    await self._register()
                if self._on_beat is not None and loop.time() - steady_since >= self.timeout_s:
                    await self._on_beat()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("node %d: heartbeat failed; trying again", self.id)
                steady_since = loop.time() + HEARTBEAT_S

    async def draining(self) -> None:
        """Take no new calls: placement passes this node by."""
        self._draining = True
        await self._store.nodes.set_draining(self.id)

    async def stop(self) -> None:
        """Stop heartbeating, mark the node stopped, close the internal listener."""
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        if self.id:
            try:
                await self._store.nodes.stop([self.id])
            except Exception:
                logger.exception("node %d: could not be marked stopped", self.id)
        if self._runner is not None:
            await self._runner.cleanup()
