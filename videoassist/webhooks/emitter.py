"""``Webhooks``: queue events in the database, deliver them from a background worker.

The same worker delivers the notify webhook's join links (``videoassist.notify``,
queued by a ``Notifier`` in the same table, channel ``notify``): POSTed unsigned to
the notify URL, after its own few quick retries (``NotifyGateway.retry``), each only
while its link is still live (``notify.to_send``): a link withdrawn or expired
meanwhile is given up unsent.

Every event is one delivery: a JSON body built once and stored byte for byte, so a
retry sends (and signs) exactly the same bytes under the same delivery id. The
worker sends due deliveries a few at a time; a non-2xx answer (redirects included), a
timeout or a connection error schedules the next attempt after an exponential
backoff, until the last allowed attempt. Every attempt is recorded in the database
before it is made, with the node making it, and its outcome when it ends. Bodies and
the URL are never written to the log.

Several nodes may deliver from one database at once (PostgreSQL): each ``claim``s the
deliveries it sends, for a lease of ``VIDEOASSIST_WEBHOOK_TIMEOUT_S`` (or the notify
timeout, if longer) plus ``LEASE_MARGIN_S``, so that no other node sends them
meanwhile. A node that stops gives its claims back (the attempts cut short recorded as
interrupted, the deliveries due again at once); a node that dies keeps them until the
lease ends, then the next node to claim one records the dead node's attempt as lost
and makes the next.
On SQLite only worker 0 (or the server of one process) delivers, as before.

Another process (the CLI) queues with an ``Outbox`` alone; a delivering worker notices
its commit by ``Database.data_version``, read every ``ELSEWHERE_CHECK_S`` while it
waits, and sends what was queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from videoassist import __version__
from videoassist.storage import Store
from videoassist.storage.records import Delivery, DeliveryAttempt
from videoassist.storage.webhooks import NOTIFY, WEBHOOK
from videoassist.webhooks.events import EVENT_TYPES
from videoassist.webhooks.signature import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    sign,
)

# aiohttp's client, and the notify webhook's sealing (``cryptography``), are imported
# where a ``Webhooks`` worker uses them: the CLI, which only queues (``Outbox``), starts
# without them (a fifth of its start-up time).
if TYPE_CHECKING:
    import aiohttp

    from videoassist import notify

logger = logging.getLogger(__name__)

BATCH = 8  # deliveries sent at the same time
IDLE_CHECK_S = 60.0  # look at the database at least this often (clock changes)
# How often a waiting worker looks whether another process (the CLI) committed to the
# database, which may have queued a delivery: the bound on how late it goes out.
ELSEWHERE_CHECK_S = 0.5
KEEP_FINISHED_S = 30 * 86400  # delivered and given-up deliveries are kept 30 days
PRUNE_EVERY_S = 3600.0  # the duty's period
ERROR_PAUSE_S = 5.0
# A claim lasts the attempt's timeout plus this: time to write its outcome. A node
# slower than that may see its delivery taken over and sent again.
LEASE_MARGIN_S = 5.0


async def prune(store: Store, now: float) -> int:
    """Forget the deliveries finished more than ``KEEP_FINISHED_S`` ago (a periodic
    duty: ``cluster.duties``)."""
    pruned = await store.webhooks.prune(now - KEEP_FINISHED_S)
    if pruned:
        logger.info("pruned %d finished webhook deliveries", pruned)
    return pruned


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_s: float
    max_s: float

    def delay(self, attempt: int) -> float:
        """Seconds from failed attempt number ``attempt`` (from 1) to the next one."""
        return float(min(self.base_s * 2.0 ** (attempt - 1), self.max_s))


@dataclass(frozen=True)
class NotifyGateway:
    """Where the notify webhook's deliveries go, and how they are retried."""

    url: str
    key: bytes  # notify.sealing_key
    timeout_s: float
    retry: RetryPolicy


class Outbox:
    """The queueing half: ``emit`` stores an event for the server's worker to deliver.
    The CLI uses it on its own; ``Webhooks`` uses one and wakes its worker."""

    def __init__(self, store: Store, enabled: bool, clock: Callable[[], float],
                 queued: Callable[[], None] = lambda: None) -> None:
        self._store = store
        self.enabled = enabled  # a webhook URL is set
        self._clock = clock
        self._queued = queued

    async def emit(self, event_type: str, data: dict[str, Any]) -> None:
        """Queue an event for delivery. With no webhook URL this does nothing at all.

        Storage failures are logged, never raised: an event is not worth failing the
        action that caused it. An unknown ``event_type`` or ``data`` that is not JSON
        is a bug and raises (ValueError, TypeError) when webhooks are on.
        """
        if not self.enabled:
            return
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown webhook event type {event_type!r}")
        delivery_id = str(uuid.uuid4())
        now = self._clock()
        body = json.dumps(
            {"id": delivery_id, "type": event_type, "created_at": now, "data": data},
            separators=(",", ":"), allow_nan=False,
        ).encode("ascii")
        job = data.get("job")
        job_id = job.get("id") if isinstance(job, dict) else None
        try:
            await self._store.webhooks.add(delivery_id, event_type,
                                           job_id if isinstance(job_id, int) else None,
                                           body, now)
        except Exception:
            logger.exception("[webhook %s %s] could not be queued", delivery_id, event_type)
            return
        self._queued()


class Webhooks:
    """An ``Outbox`` and the worker that delivers what it, or another process, queued:
    the events to ``url``, and the notify webhook's links to ``gateway`` if one is
    given with a URL."""

    def __init__(self, store: Store, url: str, secret: bytes, retry: RetryPolicy,
                 timeout_s: float, clock: Callable[[], float],
                 gateway: NotifyGateway | None = None) -> None:
        self._store = store
        self._url = url
        self._secret = secret
        self._gateway = gateway if gateway is not None and gateway.url else None
        # The channels this worker delivers, each with its retries.
        self._retries: dict[str, RetryPolicy] = {}
        if url:
            self._retries[WEBHOOK] = retry
        if self._gateway is not None:
            self._retries[NOTIFY] = self._gateway.retry
        import aiohttp  # lazily: see the module's imports

        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._notify_timeout = aiohttp.ClientTimeout(
            total=timeout_s if self._gateway is None else self._gateway.timeout_s)
        self.lease_s = max(timeout_s, self._notify_timeout.total or 0.0) + LEASE_MARGIN_S
        self._clock = clock
        self._wake = asyncio.Event()
        self._outbox = Outbox(store, bool(url), clock, self._wake.set)
        self._session: aiohttp.ClientSession | None = None
        self._worker: asyncio.Task[None] | None = None
        self._node_id = 0
        self._claims: dict[int, int] = {}  # delivery id: attempt, being made now
        self._data_version: int | None = None  # the database's, when a round began

    @property
    def enabled(self) -> bool:
        """Events are queued (a webhook URL is set)."""
        return self._outbox.enabled

    @property
    def delivers(self) -> bool:
        """The worker has something to deliver: a webhook or a notify URL is set."""
        return bool(self._retries)

    def notifier(self) -> notify.Notifier:
        """The notify webhook's queueing half, waking this worker (disabled without a
        notify URL)."""
        from videoassist import notify  # lazily: see the module's imports

        gateway = self._gateway
        return notify.Notifier(self._store, "" if gateway is None else gateway.url,
                               b"" if gateway is None else gateway.key, self._clock,
                               self._wake.set)

    async def emit(self, event_type: str, data: dict[str, Any]) -> None:
        """``Outbox.emit``; the worker wakes at once."""
        await self._outbox.emit(event_type, data)

    def start(self, node_id: int) -> None:
        """Start the worker (when a URL is configured), delivering as node ``node_id``."""
        if self.delivers and self._worker is None:
            self._node_id = node_id
            import aiohttp  # lazily: see the module's imports

            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers={"User-Agent": f"videoassist/{__version__}"}
            )
            self._worker = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Stop the worker; the attempts cut short are recorded as interrupted, and their
        deliveries are due again at once (for another node, or the next start)."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._claims:
            try:
                await self._store.webhooks.release(self._node_id, self._claims)
            except Exception:
                logger.exception("webhook deliveries being sent could not be given back: "
                                 "they are due again when their lease ends")
            self._claims = {}
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the worker ------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("webhook worker failed; trying again in %.0f s",
                                 ERROR_PAUSE_S)
                await asyncio.sleep(ERROR_PAUSE_S)

    async def _round(self) -> None:
        """Send what is due, or wait until something is (or is emitted)."""
        self._wake.clear()
        # Read before looking for due deliveries: a commit from elsewhere after this
        # changes it, so the wait below cannot miss a delivery queued meanwhile.
        self._data_version = await self._store.db.data_version()
        deliveries = self._store.webhooks
        now = self._clock()
        limits = {channel: retry.max_attempts for channel, retry in self._retries.items()}
        due = await deliveries.claim(self._node_id, now, self.lease_s, limits, BATCH)
        self._claims.update((d.id, d.attempts) for d in due)
        if due:
            results = await asyncio.gather(*(self._attempt(d) for d in due),
                                           return_exceptions=True)
            failures = [r for r in results if isinstance(r, Exception)]
            for failure in failures:
                logger.error("webhook attempt's outcome not recorded: its delivery is due "
                             "again when the claim's lease ends", exc_info=failure)
            if failures:
                await asyncio.sleep(ERROR_PAUSE_S)
            return
        next_at = await deliveries.next_due_at(limits)
        wait = IDLE_CHECK_S if next_at is None else min(max(next_at - now, 0.0), IDLE_CHECK_S)
        await self._idle(wait)

    async def _idle(self, seconds: float) -> None:
        """Wait ``seconds``, or until an event is emitted here or another process
        commits to the database (checked every ``ELSEWHERE_CHECK_S``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, ELSEWHERE_CHECK_S)):
                    await self._wake.wait()
                    return
            if await self._store.db.data_version() != self._data_version:
                return

    async def _attempt(self, delivery: Delivery) -> None:
        attempt = delivery.attempts  # this one included: claimed for it
        started_at = self._clock()
        loop = asyncio.get_running_loop()
        began = loop.time()
        final = False  # given up now, whatever attempts are left
        status: int | None
        error: str | None
        if delivery.channel == NOTIFY:
            from videoassist import notify  # lazily: see the module's imports

            prefix = f"[notify {delivery.uuid} invite {delivery.invite_id}]"
            assert self._gateway is not None
            body = await notify.to_send(self._store, self._gateway.key, delivery, started_at)
            if isinstance(body, str):  # never sent: the link is no longer live
                status, error, final = None, body, True
            else:
                status, error = await self._post(
                    prefix, attempt, self._gateway.url, body,
                    {"Content-Type": "application/json"}, self._notify_timeout)
        else:
            prefix = f"[webhook {delivery.uuid} {delivery.type}]"
            headers = {
                "Content-Type": "application/json",
                EVENT_HEADER: delivery.type,
                DELIVERY_HEADER: delivery.uuid,
                ATTEMPT_HEADER: str(attempt),
                SIGNATURE_HEADER: sign(self._secret, delivery.body),
            }
            status, error = await self._post(prefix, attempt, self._url, delivery.body,
                                             headers, self._timeout)
        duration_ms = round((loop.time() - began) * 1000)
        delivered = error is None
        next_at = None
        retry = self._retries[delivery.channel]
        if not delivered and not final and attempt < retry.max_attempts:
            next_at = self._clock() + retry.delay(attempt)
        still_ours = await self._store.webhooks.finish(
            delivery.id, self._node_id,
            DeliveryAttempt(attempt, started_at, duration_ms, status, error),
            delivered=delivered, next_attempt_at=next_at,
        )
        del self._claims[delivery.id]
        if not still_ours:
            logger.warning("%s attempt %d outlived its claim (%s): the delivery was taken "
                           "over, or erased", prefix, attempt, error or f"HTTP {status}")
        elif delivered:
            logger.info("%s delivered (attempt %d, HTTP %s)", prefix, attempt, status)
        elif final:
            logger.info("%s given up unsent at attempt %d: %s", prefix, attempt, error)
        elif next_at is not None:
            logger.warning("%s attempt %d failed (%s); next in %.1f s", prefix, attempt, error,
                           next_at - self._clock())
        else:
            logger.error("%s given up after %d attempts (%s)", prefix, attempt, error)

    async def _post(self, prefix: str, attempt: int, url: str, body: bytes,
                    headers: dict[str, str], limit: aiohttp.ClientTimeout
                    ) -> tuple[int | None, str | None]:
        """POST ``body`` to ``url``, never following a redirect: the answer's status,
        and the error that fails the attempt (None: a 2xx answer). Neither the URL nor
        the body is logged."""
        import aiohttp  # lazily: see the module's imports

        assert self._session is not None
        status: int | None = None
        try:
            async with self._session.post(url, data=body, headers=headers,
                                          allow_redirects=False, timeout=limit) as response:
                status = response.status
        except TimeoutError:
            return None, "timeout"
        except aiohttp.ClientConnectorError as exc:
            return None, ("cannot connect: "
                          f"{exc.os_error.strerror or type(exc.os_error).__name__}")
        except aiohttp.ClientError as exc:
            return status, type(exc).__name__
        except Exception as exc:
            logger.exception("%s attempt %d failed", prefix, attempt)
            return status, type(exc).__name__
        return status, None if 200 <= status < 300 else f"HTTP {status}"
