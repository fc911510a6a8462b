"""HTML pages. Opening any of them changes nothing on the server: link previewers
and mail scanners fetch links before people do."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from videoassist.appkeys import SETTINGS

routes = web.RouteTableDef()


def _context(request: web.Request, **extra: Any) -> dict[str, Any]:
    return {"company": request.app[SETTINGS].company_name, **extra}


@routes.get("/")
@routes.get(r"/jobs/{id:\d{1,15}}")
@routes.get("/people")
@routes.get("/keys")
@routes.get("/audit")
@routes.get("/dashboard")
@aiohttp_jinja2.template("console.html")
async def console(request: web.Request) -> dict[str, Any]:
    """The staff console: sign in, jobs, invites. Each of its views has an address
    (docs/ui.md, Addresses), the same page for all: the console shows the view its
    address names once someone has signed in."""
    return _context(request)


@routes.get("/join")
@aiohttp_jinja2.template("join.html")
async def join(request: web.Request) -> dict[str, Any]:
    """A one-time join link lands here; the token stays in the fragment."""
    return _context(request)


@routes.get("/setup")
@aiohttp_jinja2.template("setup.html")
async def setup(request: web.Request) -> dict[str, Any]:
    """A set-password link lands here."""
    return _context(request)
