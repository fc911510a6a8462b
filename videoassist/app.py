"""Wiring: builds the aiohttp application from settings. No logic lives here.

``worker``: this app is worker number ``worker`` under a supervisor
(``videoassist.cluster``), which did the one-time start-up. None: a server of one
process, which does it all itself. The periodic duties (retention) run on one node at a
time (``cluster.duties``); webhooks are delivered by every node on PostgreSQL, each
claiming what it sends, and by worker 0 on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from videoassist import keyfiles, loop, notify, pages
from videoassist.api import (
    analytics,
    apikeys,
    audit,
    calls,
    health,
    invites,
    jobs,
    metrics,
    session,
    snapshots,
    users,
    webhooks,
)
from videoassist.api.middleware import add_security_headers, errors_middleware
from videoassist.api.ws import internal_websocket, websocket
from videoassist.appkeys import (
    CLOCK,
    DRAINING,
    HUB,
    ICE,
    MEDIA,
    METRICS,
    NODE,
    PROXIES,
    REFUSALS,
    SENDERS,
    SETTINGS,
    SIGNIN_LIMITS,
    SNAPSHOTS,
    STORE,
    TOKENS,
    WEBHOOKS,
    WORKER,
)
from videoassist.auth.tokens import TokenService
from videoassist.cluster.changes import ChangeListener
from videoassist.cluster.duties import Duties, Duty
from videoassist.cluster.node import ThisNode
from videoassist.cluster.proxy import WS_PATH, Proxies
from videoassist.cluster.sweep import Sweeper, end_calls_of_gone_nodes
from videoassist.config import Settings
from videoassist.domain import retention
from videoassist.domain.accounts import SignInLimits
from videoassist.domain.refusals import Refusals
from videoassist.mail import Mailer
from videoassist.media import aiortc_hooks
from videoassist.media.candidates import CandidatePolicy, parse_networks
from videoassist.media.ice import IcePolicy
from videoassist.media.network import MediaNetwork, describe, ephemeral_overlap, resolve
from videoassist.media.router import MediaRouter
from videoassist.metrics import Metrics
from videoassist.sending import Senders
from videoassist.signalling.hub import Hub
from videoassist.signalling.joins import JoinLimits
from videoassist.signalling.mediastate import MediaStateWriter
from videoassist.snapshots.fonts import LabelFonts
from videoassist.snapshots.service import SnapshotService
from videoassist.snapshots.vault import Vault
from videoassist.storage import Store
from videoassist.webhooks import CallWebhooks, NotifyGateway, RetryPolicy, Webhooks
from videoassist.webhooks import emitter as webhook_emitter

logger = logging.getLogger(__name__)

SIGNINS_PRUNE_EVERY_S = 60.0  # failed sign-ins past their window are deleted this often

# A link to the repository's web/ in a checkout, the files themselves once installed.
WEB_DIR = Path(__file__).resolve().parent / "web"


def create_app(settings: Settings, clock: Callable[[], float] = time.time,
               worker: int | None = None) -> web.Application:
    app = web.Application(
        middlewares=[errors_middleware], client_max_size=256 * 1024
    )
    app[SETTINGS] = settings
    app[WORKER] = worker
    app[CLOCK] = clock
    app[DRAINING] = [False]
    app[METRICS] = Metrics()
    app[SIGNIN_LIMITS] = SignInLimits(settings.signin_max_failures,
                                      settings.signin_max_failures_per_client,
                                      settings.signin_window_s)
    keyfiles.private_data_dir(settings)
    app[TOKENS] = TokenService(
        keyfiles.signing_keys(settings), settings.public_url, settings.token_leeway_s, clock
    )
    # The TURN secret is generated on first run, for ops to give coturn too.
    app[ICE] = IcePolicy(settings.turn_urls, keyfiles.turn_secret(settings), settings.turn_ttl_s,
                         clock, server_relays=settings.media_turn)
    app.cleanup_ctx.append(_lag)
    app.cleanup_ctx.append(_store)
    app.cleanup_ctx.append(_refusals)
    app.cleanup_ctx.append(_this_node)
    app.cleanup_ctx.append(_webhooks)
    app.cleanup_ctx.append(_hub)
    app.cleanup_ctx.append(_notifier)
    app.cleanup_ctx.append(_media)
    app.cleanup_ctx.append(_snapshots)
    app.cleanup_ctx.append(_node_serving)  # last: nodes send calls here once all is up
    app.on_response_prepare.append(add_security_headers)
    app.on_shutdown.append(_close_calls)

    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(WEB_DIR / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
    )
    for module in (health, metrics, session, jobs, snapshots, invites, users, calls, apikeys,
                   webhooks, audit, analytics, pages):
        app.router.add_routes(module.routes)
    app.router.add_get("/ws", websocket)
    app.router.add_static("/static", WEB_DIR / "static", append_version=False)
    return app


async def _lag(app: web.Application) -> AsyncIterator[None]:
    """How late the event loop runs, in the metrics, and in the log when it is long."""
    task = asyncio.create_task(loop.watch_lag(app[METRICS].event_loop_lag.observe))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _store(app: web.Application) -> AsyncIterator[None]:
    store = await Store.open(app[SETTINGS].database, app[CLOCK])
    app[STORE] = store
    yield
    await store.close()


async def _refusals(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    refusals = Refusals(app[STORE].audit, app[CLOCK], settings.audit_refusals_window_s,
                        settings.audit_refusals_max_clients)
    app[REFUSALS] = refusals
    task = asyncio.create_task(refusals.run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await refusals.flush(everything=True)


async def _webhooks(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # The secret is generated on first run with a URL set, for ops to give the receiver.
    secret = keyfiles.webhook_secret(settings) if settings.webhook_url else ""
    retry = RetryPolicy(settings.webhook_max_attempts, settings.webhook_retry_base_s,
                        settings.webhook_retry_max_s)
    # The same worker delivers the notify webhook's links, sealed in the database under
    # a key derived from the snapshot key (which every node has, outside the database).
    gateway = None if not settings.notify_url else NotifyGateway(
        settings.notify_url, notify.sealing_key(keyfiles.snapshot_key(settings)),
        settings.notify_timeout_s,
        RetryPolicy(notify.MAX_ATTEMPTS, notify.RETRY_BASE_S, notify.RETRY_MAX_S))
    webhooks = Webhooks(app[STORE], settings.webhook_url, secret.encode(), retry,
                        settings.webhook_timeout_s, app[CLOCK], gateway)
    app[WEBHOOKS] = webhooks  # every node queues; _node_serving starts the deliverer
    yield
    await webhooks.close()


async def _hub(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    limits = JoinLimits(settings.call_max_connections_per_link,
                        settings.call_max_connections_per_user, settings.call_max_participants,
                        settings.call_joins_per_min)
    hub = Hub(app[STORE], settings.revocation_poll_s, app[CLOCK], app[NODE],
              CallWebhooks(app[WEBHOOKS].emit), limits, settings.ws_outbox_messages,
              settings.call_away_s)
    if app[WORKER] is None:  # a supervisor does this before starting its workers
        ended = await end_calls_of_gone_nodes(app[STORE], app[WEBHOOKS], app[CLOCK]())
        if ended:
            logger.info("closed %d calls left open by a previous run", len(ended))
    app[HUB] = hub
    watcher = asyncio.create_task(hub.watch_revocations())
    listen_url = app[SETTINGS].database_listen_url
    listener = asyncio.create_task(ChangeListener(
        app[STORE].db, None if listen_url is None else listen_url.reveal(), hub.watch,
        app[METRICS]).run())
    yield
    for task in (listener, watcher):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _close_calls(app: web.Application) -> None:
    """on_shutdown: tell every connected client why, before connections are cut."""
    app[PROXIES].close_all(1001, "server_shutdown", "The server is shutting down.")
    await app[HUB].close_all()


def media_network(settings: Settings) -> MediaNetwork:
    """Where this process's peer connections put their sockets (ConfigError if an
    address or interface of VIDEOASSIST_MEDIA_ADDRESSES is not this machine's)."""
    addresses = resolve(settings.media_addresses) if settings.media_addresses else None
    network = MediaNetwork(settings.media_port_range, addresses,
                           settings.media_announced_address or None)
    if not network.is_default:
        logger.info("media on UDP ports %s of %s%s", describe(network.ports),
                    ", ".join(addresses) if addresses else "every address",
                    f", announced as {network.announced}" if network.announced else "")
    if network.ports is not None and (overlap := ephemeral_overlap(network.ports)):
        logger.warning("%s", overlap)
    return network


async def _media(app: web.Application) -> AsyncIterator[None]:
    aiortc_hooks.check_compatible()  # fail at start, not mid-call, after an aiortc upgrade
    settings = app[SETTINGS]
    network = media_network(settings)
    policy = CandidatePolicy(parse_networks(settings.ice_allowed_peers),
                             settings.ice_max_candidates)
    router = MediaRouter(app[ICE].for_server, settings.media_transcode, network, policy,
                         settings.sdp_max_m_lines)
    app[MEDIA] = router
    app[METRICS].watch(app[HUB], router, app[DRAINING])
    # The admin views read the media states from the database, in any process.
    writer = asyncio.create_task(MediaStateWriter(app[HUB], router, app[STORE]).run())
    yield
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
    await router.close()


async def _snapshots(app: web.Application) -> AsyncIterator[None]:
    settings, store = app[SETTINGS], app[STORE]
    vault = Vault(keyfiles.snapshot_key(settings), store.snapshots)
    await vault.check()
    # Fail at start, not at the first label, when a font or the text shaping is missing.
    fonts = await asyncio.get_running_loop().run_in_executor(
        None, LabelFonts.open, settings.label_fonts)
    app[SNAPSHOTS] = SnapshotService(store, vault, app[MEDIA], settings.snapshot_jpeg_quality,
                                     app[WEBHOOKS].emit, fonts=fonts)
    yield


async def _notifier(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    senders = Senders(app[WEBHOOKS].notifier(), Mailer(settings), settings.company_name)
    app[SENDERS] = senders
    yield
    await senders.close()


def _delivers_webhooks(app: web.Application) -> bool:
    """Every node on PostgreSQL (each claims what it sends); on SQLite (one machine),
    worker 0 or the server of one process, as before nodes shared a database."""
    return app[STORE].db.session_locks or app[WORKER] in (None, 0)


def _duties(app: web.Application) -> Duties:
    store, settings = app[STORE], app[SETTINGS]

    async def purge(now: float) -> None:
        await retention.purge(store, settings, now)

    async def prune(now: float) -> None:
        await webhook_emitter.prune(store, now)

    async def forget_signins(now: float) -> None:
        await store.signins.prune(settings.signin_window_s)

    return Duties(store, [Duty("retention purge", settings.retention_check_s, purge),
                          Duty("webhook pruning", webhook_emitter.PRUNE_EVERY_S, prune),
                          Duty("sign-in failures pruning", SIGNINS_PRUNE_EVERY_S,
                               forget_signins)],
                  app[CLOCK], app[WORKER])


async def _this_node(app: web.Application) -> AsyncIterator[None]:
    """This process as a node: known from here on, registered (and so given calls) only
    once everything is up, by ``_node_serving``."""
    def load() -> int:
        return len(app[HUB].members()) if HUB in app else 0

    secret = await asyncio.get_running_loop().run_in_executor(
        None, keyfiles.node_secret, app[SETTINGS])
    settings = app[SETTINGS]
    app[NODE] = ThisNode(app[STORE], secret, app[WORKER], app[CLOCK], load,
                         timeout_s=settings.node_timeout_s, host=settings.internal_host,
                         port=settings.internal_port)
    app[PROXIES] = Proxies(secret)
    yield
    await app[PROXIES].close()


async def _node_serving(app: web.Application) -> AsyncIterator[None]:
    async def carried(request: web.Request) -> web.StreamResponse:
        return await internal_websocket(app, request)

    async def own_metrics(request: web.Request) -> web.Response:
        return web.Response(body=app[METRICS].exposition(), content_type="text/plain")

    node = app[NODE]
    sweeper = Sweeper(app[STORE], app[WEBHOOKS], node, app[PROXIES], app[CLOCK])
    await node.start({WS_PATH: carried, metrics.INTERNAL_METRICS: own_metrics},
                     on_beat=sweeper.check)
    if _delivers_webhooks(app):
        app[WEBHOOKS].start(node.id)
    duties = asyncio.create_task(_duties(app).run(node.id))
    yield
    duties.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await duties
    await node.stop()
