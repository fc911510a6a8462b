"""``GET /metrics``: Prometheus text format (see ``videoassist.metrics``)."""

from __future__ import annotations

import hmac

from aiohttp import web

from videoassist.appkeys import METRICS, SETTINGS
from videoassist.errors import Unauthorized
from videoassist.metrics import CONTENT_TYPE

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Counts and gauges, no customer data. With ``VIDEOASSIST_METRICS_TOKEN`` set, only
    for ``Authorization: Bearer`` that token."""
    token = request.app[SETTINGS].metrics_token
    if token is not None:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), token.reveal().encode()):
            raise Unauthorized("Send the metrics token as Authorization: Bearer TOKEN.")
    return web.Response(body=request.app[METRICS].exposition(),
                        headers={"Content-Type": CONTENT_TYPE})
