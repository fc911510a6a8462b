"""The analytics dashboard's figures, as JSON or CSV. For admins, and for integrations'
API keys with the ``analytics:read`` scope (a BI tool pulling the CSV)."""

from __future__ import annotations

from aiohttp import web

from videoassist.api.guard import staff_or_api_key
from videoassist.appkeys import CLOCK, STORE
from videoassist.domain import analytics
from videoassist.errors import BadRequest, Forbidden

routes = web.RouteTableDef()


@routes.get("/api/analytics")
async def summary(request: web.Request) -> web.Response:
    """``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (UTC days, both included; default the last 30
    days) and ``format=json`` (default) or ``csv``."""
    caller = await staff_or_api_key(request, "analytics:read")
    if caller.user is not None and caller.user.role != "admin":
        raise Forbidden()
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise BadRequest("format must be json or csv.")
    since, until = analytics.period(request.query.get("from"), request.query.get("to"),
                                    request.app[CLOCK]())
    figures = await request.app[STORE].analytics.summary(since, until)
    if fmt == "json":
        return web.json_response(figures)
    period = f"{figures['calls_per_day'][0]['day']}_{figures['calls_per_day'][-1]['day']}"
    return web.Response(
        text=analytics.to_csv(figures), content_type="text/csv", charset="utf-8",
        headers={"Content-Disposition":
                 f'attachment; filename="videoassist-analytics-{period}.csv"'},
    )
