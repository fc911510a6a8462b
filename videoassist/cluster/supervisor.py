"""The supervisor: ``videoassist serve`` with more than one worker.

It does the one-time start-up (the key files, the label fonts check, ending the calls
left open by a previous run), reserves the public port, starts the workers
(``python -m videoassist worker``, each with a control line: ``cluster.control``, and
its slice of ``VIDEOASSIST_MEDIA_PORTS``; a range too small for them all is refused) and
prints the address served once every worker serves. Then it watches them:

- A worker that exits unasked (a crash, SIGKILL, the kernel's OOM killer) has its
  node's calls ended in the database at once (``call.ended`` webhooks included) and a
  new worker starts in its slot (after a pause growing up to 30 s for a slot whose
  workers die within 10 s of starting). The other workers carry on; the connections
  they carried to its calls are closed with 1011 ``call_lost`` and reconnect.
- SIGTERM or SIGINT: every worker is told to drain (``videoassist.serving``). A worker
  drained says so and keeps listening; when all have, they are told to stop, together,
  and the supervisor exits when all have exited, 0 if all exited 0. A second signal
  kills the workers (SIGKILL) and exits at once with 128 + the signal's number.
- If the supervisor itself is killed, each worker sees its control line close and
  exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videoassist import __version__, keyfiles
from videoassist.cluster.control import Control
from videoassist.cluster.sweep import end_calls_of_gone_nodes
from videoassist.config import MEDIA_PORTS_MIN, Settings
from videoassist.errors import ConfigError
from videoassist.media import network
from videoassist.snapshots.fonts import LabelFonts
from videoassist.storage import Store
from videoassist.webhooks import Outbox

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
READY_TIMEOUT_S = 120.0  # a worker's start-up, on a busy machine
QUICK_DEATH_S = 10.0
RESTART_PAUSES_S = (0.0, 1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass(eq=False)
class Slot:
    """One worker's place: the process in it now."""

    index: int
    process: asyncio.subprocess.Process | None = None
    control: Control | None = None
    node_id: int = 0
    started_at: float = 0.0
    quick_deaths: int = 0
    drained: bool = False
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    listener: asyncio.Task[None] | None = None


class Supervisor:
    def __init__(self, settings: Settings, config: Path | None) -> None:
        self.settings = settings
        self.config = config
        self.slots = [Slot(i) for i in range(settings.worker_count)]
        # Each worker's own slice of VIDEOASSIST_MEDIA_PORTS, given on its command line.
        ports = settings.media_port_range
        self.media_ports = (None if ports is None
                            else network.split(ports, len(self.slots), MEDIA_PORTS_MIN))
        self.draining = asyncio.Event()
        self.signal_name = ""
        self.port = settings.port
        self._store: Store | None = None
        self._reserved: socket.socket | None = None
        self._stopping = False  # every worker was told to stop

    # -- start-up ------------------------------------------------------------

    async def run(self) -> int:
        """Serve with the workers until a stop signal and their drain; the exit status."""
        loop = asyncio.get_running_loop()
        settings = self.settings
        await loop.run_in_executor(None, keyfiles.prepare, settings)
        # Fail here, once, with the reason as the last word, not in every worker.
        await loop.run_in_executor(None, LabelFonts.open, settings.label_fonts)
        network.resolve(settings.media_addresses)
        self._reserved = self._reserve_port()
        self._store = await Store.open(settings.database)
        try:
            ended = await end_calls_of_gone_nodes(self._store, self._outbox(), time.time())
            if ended:
                logger.info("closed %d calls left open by a previous run", len(ended))
            for signum in SIGNALS:
                loop.add_signal_handler(signum, self._on_signal, signum)
            try:
                return await self._serve()
            finally:
                for signum in SIGNALS:
                    loop.remove_signal_handler(signum)
        finally:
            await self._store.close()
            self._reserved.close()

    def _outbox(self) -> Outbox:
        assert self._store is not None
        return Outbox(self._store, bool(self.settings.webhook_url), time.time)

    def _reserve_port(self) -> socket.socket:
        """Bind the public address with SO_REUSEPORT, without listening: the port is
        known (``--port 0``) and stays this server's while workers come and go. The
        kernel gives connections only to listening sockets: the workers'. First, a bind
        without SO_REUSEPORT: a port some other server (another videoassist too)
        listens on is refused, not shared."""
        host = self.settings.host
        family, kind, proto, _, address = socket.getaddrinfo(
            host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        probe = socket.socket(family, kind, proto)
        sock = socket.socket(family, kind, proto)
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
            self.port = probe.getsockname()[1]
            probe.close()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((address[0], self.port, *address[2:]))
        except OSError as exc:
            sock.close()
            raise ConfigError(f"cannot bind {host}:{self.port}: {exc.strerror}") from None
        finally:
            probe.close()
        return sock

    async def _serve(self) -> int:
        for slot in self.slots:
            await self._start(slot)
        exits = {asyncio.create_task(self._exit_of(slot)): slot for slot in self.slots}
        # A stop signal meanwhile is for _watch: a worker not ready yet is told when it is.
        ready = asyncio.ensure_future(asyncio.gather(*(s.ready.wait() for s in self.slots)))
        waits: list[asyncio.Future[Any]] = [ready, *exits]
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            done = set()
        if ready not in done:
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ready
            failed = [exits[t] for t in done if t in exits]
            if failed and failed[0].process is not None:
                code = failed[0].process.returncode or 1
                logger.error("worker %d exited with status %d before serving: stopping",
                             failed[0].index, code)
            else:
                code = 1
                logger.error("the workers did not all start within %g s: stopping",
                             READY_TIMEOUT_S)
            await self._kill_all()
            return code
        print(f"videoassist {__version__} serving on http://{self.settings.host}:{self.port} "
              f"(public URL {self.settings.public_url}) with {len(self.slots)} workers",
              flush=True)
        return await self._watch(exits)

    def _drained_task(self) -> asyncio.Task[bool]:
        return asyncio.create_task(self.draining.wait())

    async def _start(self, slot: Slot) -> None:
        ours, theirs = socket.socketpair()
        command = [sys.executable, "-m", "videoassist", "worker", "--index", str(slot.index),
                   "--control-fd", str(theirs.fileno()), "--data-dir",
                   str(self.settings.data_dir), "--host", self.settings.host,
                   "--port", str(self.port)]
        if self.config is not None:
            command += ["--config", str(self.config)]
        if self.media_ports is not None:
            command += ["--media-ports", network.describe(self.media_ports[slot.index])]
        try:
            slot.process = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.DEVNULL, pass_fds=(theirs.fileno(),))
        finally:
            theirs.close()
        slot.control = await Control.open(ours)
        slot.ready = asyncio.Event()
        slot.drained = False
        slot.started_at = time.monotonic()
        slot.listener = asyncio.create_task(self._listen(slot, slot.control))
        logger.info("worker %d started (pid %d, media ports %s)", slot.index, slot.process.pid,
                    network.describe(None if self.media_ports is None
                                     else self.media_ports[slot.index]))

    async def _listen(self, slot: Slot, control: Control) -> None:
        while (message := await control.receive()) is not None:
            if "ready" in message:
                slot.node_id = int(message["ready"])
                logger.info("worker %d serves as node %d (internal address %s)", slot.index,
                            slot.node_id, message.get("address"))
                slot.ready.set()
                if self.draining.is_set():  # started just before the signal
                    await control.send(drain=self.signal_name)
            if message.get("drained"):
                slot.drained = True
                await self._stop_if_all_drained()

    async def _stop_if_all_drained(self) -> None:
        """Once every running worker has drained, tell them all to stop."""
        running = [s for s in self.slots
                   if s.process is not None and s.process.returncode is None]
        if not self._stopping and all(s.drained for s in running):
            self._stopping = True
            logger.info("every worker has drained: stopping them")
            for s in running:
                if s.control is not None:
                    with contextlib.suppress(ConnectionError):
                        await s.control.send(stop=True)

    async def _exit_of(self, slot: Slot) -> Slot:
        assert slot.process is not None
        await slot.process.wait()
        return slot

    # -- running ---------------------------------------------------------------

    async def _watch(self, exits: dict[asyncio.Task[Slot], Slot]) -> int:
        statuses: list[int] = []
        drained: asyncio.Task[Any] = self._drained_task()
        while exits:
            waits: list[asyncio.Future[Any]] = [*exits, drained]
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if drained in done:
                drained = asyncio.create_task(asyncio.Event().wait())  # once only
                for slot in self.slots:
                    await self._tell_drain(slot)
            for task in done:
                slot = exits.pop(task, None)  # type: ignore[call-overload]
                if slot is None:
                    continue
                assert slot.process is not None
                code = slot.process.returncode
                assert code is not None
                await self._worker_gone(slot, code)
                if self.draining.is_set():
                    statuses.append(code)
                    await self._stop_if_all_drained()  # it may have been the last one
                    continue
                await self._restart(slot)
                exits[asyncio.create_task(self._exit_of(slot))] = slot
        drained.cancel()
        logger.info("stopped")
        return 0 if all(code == 0 for code in statuses) else 1

    async def _tell_drain(self, slot: Slot) -> None:
        if slot.control is None or slot.process is None or slot.process.returncode is not None:
            return
        with contextlib.suppress(ConnectionError):
            await slot.control.send(drain=self.signal_name)

    async def _worker_gone(self, slot: Slot, code: int) -> None:
        """A worker exited: end the calls its node held (none after a drain)."""
        assert slot.process is not None and self._store is not None
        if slot.listener is not None:
            slot.listener.cancel()
        if slot.control is not None:
            slot.control.close()
        how = (f"was killed by {signal.Signals(-code).name}" if code < 0
               else f"exited with status {code}")
        try:
            ended = await end_calls_of_gone_nodes(self._store, self._outbox(), time.time(),
                                                  pid=slot.process.pid)
        except Exception:
            logger.exception("worker %d: its calls could not be ended", slot.index)
            ended = []
        if code == 0 and self.draining.is_set():
            logger.info("worker %d (pid %d) stopped", slot.index, slot.process.pid)
        else:
            logger.error("worker %d (pid %d, node %d) %s; %d calls it held ended", slot.index,
                         slot.process.pid, slot.node_id, how, len(ended))

    async def _restart(self, slot: Slot) -> None:
        quick = time.monotonic() - slot.started_at < QUICK_DEATH_S
        slot.quick_deaths = slot.quick_deaths + 1 if quick else 0
        pause = RESTART_PAUSES_S[min(slot.quick_deaths, len(RESTART_PAUSES_S) - 1)]
        if pause:
            logger.warning("worker %d died %d times in a row within %g s of starting: "
                           "starting it again in %g s", slot.index, slot.quick_deaths,
                           QUICK_DEATH_S, pause)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self.draining.wait()
            if self.draining.is_set():
                return
        await self._start(slot)

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.draining.is_set():
            code = 128 + signum
            logger.warning("%s again: exiting at once with status %d, without closing "
                           "calls", name, code)
            for slot in self.slots:
                if slot.process is not None and slot.process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        slot.process.kill()
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os._exit(code)
        logger.info("%s: draining %d workers: each stops when its last call ends; a second "
                    "signal exits at once", name, len(self.slots))
        self.signal_name = name
        self.draining.set()

    async def _kill_all(self) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.kill()
                await slot.process.wait()
            if slot.listener is not None:
                slot.listener.cancel()
            if slot.control is not None:
                slot.control.close()


async def supervise(settings: Settings, config: Path | None) -> int:
    return await Supervisor(settings, config).run()
