"""Liveness and readiness probes."""

from __future__ import annotations

import logging

from aiohttp import web

from videoassist.appkeys import DRAINING, STORE

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process is up and its event loop answers."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """The database answers and the server is not draining: send traffic here."""
    if request.app[DRAINING][0]:
        return web.json_response({"status": "draining"}, status=503)
    try:
        await request.app[STORE].db.ping()
    except Exception:
        logger.exception("readiness check: database not reachable")
        return web.json_response({"status": "database unavailable"}, status=503)
    return web.json_response({"status": "ready"})
