"""The outgoing webhooks' delivery log, for admins."""

from __future__ import annotations

from aiohttp import web

from videoassist.api.body import int_param
from videoassist.api.guard import staff_user
from videoassist.appkeys import STORE, WEBHOOKS
from videoassist.errors import BadRequest
from videoassist.storage.webhooks import DELIVERY_STATES

routes = web.RouteTableDef()


@routes.get("/api/webhooks/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    """The newest deliveries first, each with the log of its attempts."""
    await staff_user(request, "admin")
    state = request.query.get("state")
    if state is not None and state not in DELIVERY_STATES:
        raise BadRequest(f"state must be one of {', '.join(DELIVERY_STATES)}.")
    limit = int_param(request.query.get("limit", "50"), "limit")
    if not 1 <= limit <= 200:
        raise BadRequest("limit must be between 1 and 200.")
    recent = await request.app[STORE].webhooks.recent(state, limit)
    return web.json_response({
        "enabled": request.app[WEBHOOKS].enabled,
        "deliveries": [{**d.public(), "log": [a.public() for a in attempts]}
                       for d, attempts in recent],
    })
