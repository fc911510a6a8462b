"""``GET /metrics``: Prometheus text format (see ``videoassist.metrics``)."""

from __future__ import annotations

import hmac

from aiohttp import web

from videoassist.appkeys import METRICS, NODE, SETTINGS, STORE, WORKER
from videoassist.cluster.gather import gather
from videoassist.errors import Unauthorized
from videoassist.metrics import CONTENT_TYPE

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Counts and gauges, no customer data. With ``VIDEOASSIST_METRICS_TOKEN`` set, only
    for ``Authorization: Bearer`` that token. A worker answers for every worker, each
    sample labelled ``worker`` (``videoassist.cluster.gather``)."""
    token = request.app[SETTINGS].metrics_token
    if token is not None:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), token.reveal().encode()):
            raise Unauthorized("Send the metrics token as Authorization: Bearer TOKEN.")
    app = request.app
    body = app[METRICS].exposition()
    worker = app[WORKER]
    if worker is not None:
        node = app[NODE]
        others = [n for n in await app[STORE].nodes.live(node.heard_after()) if n.id != node.id]
        body = await gather(body, worker, others, node.secret, INTERNAL_METRICS)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


INTERNAL_METRICS = "/internal/metrics"  # each node's own, on its internal address
