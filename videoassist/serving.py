"""Running the server until it is told to stop, and stopping without cutting calls.

The first SIGTERM (or SIGINT: Ctrl-C does the same) starts the drain: ``/readyz``
answers 503 so that a load balancer sends nobody new, and no new call starts here
(``/api/invites/redeem`` answers 503, a WebSocket ``auth`` for a job with no call in
progress is refused with 1013 ``draining``). Calls in progress go on, and take anyone
who may join them, coming back or new.
When the last one ends, or ``drain_timeout_s`` after the signal, the server stops: the
calls left get the usual shutdown notice (1001 ``server_shutdown``), the database is
closed, and the process exits 0. A second signal exits at once, with 128 + the signal's
number (143 for SIGTERM, 130 for SIGINT), closing nothing: the calls it cut are marked
ended at the next start.

``serve`` is a server of one process (``--workers 1``). ``serve_worker`` is one worker
under the supervisor (``videoassist.cluster.supervisor``): the same server, bound with
SO_REUSEPORT beside the other workers, which takes its orders from the supervisor's
control line instead of signals. A worker's drain also waits for the connections it
carries to calls on other workers; a worker drained says so and keeps listening
(answering 503 and refusing new calls) until the supervisor says every worker has
drained: workers stop listening together, so that no connection meets a closed port
while others still drain.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable

from aiohttp import web

from videoassist import __version__
from videoassist import loop as event_loop
from videoassist.app import create_app
from videoassist.appkeys import DRAINING, HUB, NODE, PROXIES
from videoassist.cluster.control import Control
from videoassist.config import Settings
from videoassist.logs import ACCESS_LOGGER, AccessLogger

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Once the calls are closed, how long requests still in flight get to finish.
SHUTDOWN_TIMEOUT_S = 10.0
# How long after the drain timeout a worker waits for the workers holding the calls it
# carries connections to to close them, before it cuts them itself.
CARRIED_GRACE_S = 5.0


class Drain:
    """The stop signals: the first starts the drain, the second ends the process."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.signal_name = ""

    def on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.started.is_set():
            code = 128 + signum
            logger.warning("%s again: exiting at once with status %d, without closing "
                           "calls", name, code)
            exit_now(code)
        self.start(name)

    def start(self, name: str) -> None:
        self.signal_name = name
        self.started.set()


def exit_now(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


async def serve(settings: Settings) -> int:
    """Serve until a stop signal and the drain that follows; the exit status."""
    drain = Drain()
    loop = asyncio.get_running_loop()
    for signum in SIGNALS:
        loop.add_signal_handler(signum, drain.on_signal, signum)

    async def announce(host: str, port: int) -> None:
        print(f"videoassist {__version__} serving on http://{host}:{port} "
              f"(public URL {settings.public_url}, {event_loop.name(loop)} event loop)",
              flush=True)

    try:
        await _run(create_app(settings), settings, drain, announce, reuse_port=False)
    finally:
        for signum in SIGNALS:
            loop.remove_signal_handler(signum)
    logger.info("stopped")
    return 0


async def serve_worker(settings: Settings, index: int, control_fd: int) -> int:
    """Serve as worker ``index`` until the supervisor says to drain; the exit status."""
    for signum in SIGNALS:  # the supervisor's to handle: a worker is told on its line
        signal.signal(signum, signal.SIG_IGN)
    control = await Control.open(socket.socket(fileno=control_fd))
    drain = Drain()
    stop = asyncio.Event()
    app = create_app(settings, worker=index)

    async def listen() -> None:
        while (message := await control.receive()) is not None:
            if "drain" in message and not drain.started.is_set():
                drain.start(str(message["drain"]))
            if "stop" in message:
                stop.set()
        logger.warning("the supervisor is gone: exiting at once, without closing calls")
        exit_now(1)

    async def announce(host: str, port: int) -> None:
        await control.send(ready=app[NODE].id, address=app[NODE].address)

    async def drained() -> None:
        await control.send(drained=True)
        await stop.wait()

    listener = asyncio.create_task(listen())
    try:
        await _run(app, settings, drain, announce, reuse_port=True, drained=drained)
    finally:
        listener.cancel()
        control.close()
    logger.info("stopped")
    return 0


async def _nothing() -> None:
    pass


async def _run(app: web.Application, settings: Settings, drain: Drain,
               announce: Callable[[str, int], Awaitable[None]], *, reuse_port: bool,
               drained: Callable[[], Awaitable[None]] = _nothing) -> None:
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger(ACCESS_LOGGER) if settings.access_log else None,
        access_log_class=AccessLogger,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        # A connection that has not sent a whole request head this long after opening
        # or after its last response is closed: idle, or sending its headers slowly.
        keepalive_timeout=settings.http_idle_timeout_s,
    )
    try:
        # A start-up that fails (a missing label font, a wrong snapshot key) still closes
        # what had opened, the database's thread included, so the process exits.
        await runner.setup()
        await web.TCPSite(runner, settings.host, settings.port,
                          reuse_port=reuse_port or None).start()
        host, port = runner.addresses[0][:2]
        await announce(host, port)
        await drain.started.wait()
        await _drain(app, drain.signal_name, settings.drain_timeout_s)
        await drained()
    finally:
        await runner.cleanup()


async def _drain(app: web.Application, signal_name: str, timeout_s: float) -> None:
    """Refuse new joins and wait for the calls in progress to end, at most ``timeout_s``;
    likewise for the connections this node carries to calls on other nodes."""
    app[DRAINING][0] = True
    hub, proxies = app[HUB], app[PROXIES]
    try:
        await app[NODE].draining()  # placement passes this node by from now on
    except Exception:
        logger.exception("drain: this node could not be marked draining; going on")
    calls, people = len(hub.rooms), len(hub.members())
    carried = f", {len(proxies)} carried to other workers" if len(proxies) else ""
    logger.info("%s: draining: /readyz answers 503 and new calls are refused; "
                "%d calls in progress (%d connections%s); stopping when they end, at the "
                "latest in %g s; a second signal exits at once", signal_name, calls, people,
                carried, timeout_s)
    deadline = asyncio.get_running_loop().time() + timeout_s
    timed_out = False
    try:
        async with asyncio.timeout_at(deadline):
            await hub.wait_idle()
    except TimeoutError:
        timed_out = True
        logger.warning("drain: %d calls still in progress after %g s: closing them "
                       "(server_shutdown)", len(hub.rooms), timeout_s)
        await hub.close_all()
    try:
        # The calls these connections are in drain on their own workers, which close
        # them at the same timeout: cut them here only if a worker failed to.
        async with asyncio.timeout_at(deadline + CARRIED_GRACE_S):
            await proxies.wait_idle()
    except TimeoutError:
        logger.warning("drain: %d connections carried to other workers still open "
                       "%g s after the drain timeout: closing them (server_shutdown)",
                       len(proxies), CARRIED_GRACE_S)
    else:
        if not timed_out:
            logger.info("drain: no call in progress: stopping")
