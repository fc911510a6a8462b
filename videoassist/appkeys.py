"""Typed keys for the app-wide objects that live on the aiohttp application."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from videoassist.auth.tokens import TokenService
from videoassist.config import Settings
from videoassist.domain.accounts import SignInLimits
from videoassist.domain.refusals import Refusals
from videoassist.media.ice import IcePolicy
from videoassist.metrics import Metrics
from videoassist.storage import Store

if TYPE_CHECKING:
    from videoassist.cluster.node import ThisNode
    from videoassist.cluster.proxy import Proxies
    from videoassist.sending import Senders
    from videoassist.signalling.hub import Hub
    from videoassist.signalling.media import MediaPlane
    from videoassist.snapshots.service import SnapshotService
    from videoassist.webhooks import Webhooks

SETTINGS = web.AppKey("settings", Settings)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
STORE = web.AppKey("store", Store)
TOKENS = web.AppKey("tokens", TokenService)
ICE = web.AppKey("ice", IcePolicy)
SIGNIN_LIMITS = web.AppKey("signin_limits", SignInLimits)
# Audit rows for refusals anyone can cause, as counts per client and window.
REFUSALS = web.AppKey("refusals", Refusals)
HUB: web.AppKey[Hub] = web.AppKey("hub")
SENDERS: web.AppKey[Senders] = web.AppKey("senders")
MEDIA: web.AppKey[MediaPlane] = web.AppKey("media")
# [True] from the first SIGTERM on (videoassist.serving): /readyz 503, no new joins.
DRAINING = web.AppKey("draining", list[bool])
METRICS = web.AppKey("metrics", Metrics)
SNAPSHOTS: web.AppKey[SnapshotService] = web.AppKey("snapshots")
WEBHOOKS: web.AppKey[Webhooks] = web.AppKey("webhooks")
# This process as a node of the installation (videoassist.cluster).
NODE: web.AppKey[ThisNode] = web.AppKey("node")
# Client connections carried to the nodes holding their calls.
PROXIES: web.AppKey[Proxies] = web.AppKey("proxies")
# This process's slot under the supervisor; None: a server of one process.
WORKER: web.AppKey[int | None] = web.AppKey("worker")
