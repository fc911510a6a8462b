"""HTML pages. Opening any of them changes nothing on the server: link previewers
and mail scanners fetch links before people do."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from videoassist.appkeys import SETTINGS
from videoassist.config import LOGO_TYPES
from videoassist.i18n import ENGLISH, LANGUAGES, catalogue, negotiate

routes = web.RouteTableDef()


def _context(request: web.Request, **extra: Any) -> dict[str, Any]:
    """What every page's template has: the company, its logo, and the words in English
    (``_``: the console and the setup page are English; the join page's are not)."""
    settings = request.app[SETTINGS]
    return {"company": settings.company_name, "logo": settings.brand_logo is not None,
            "lang": ENGLISH.language, "_": ENGLISH.gettext, **extra}


@routes.get("/brand.css")
async def brand_css(request: web.Request) -> web.Response:
    """The company's colour, for every page (after app.css): a stylesheet of its own,
    because the pages' Content-Security-Policy admits no inline style. Checked at start
    (``Settings``): #rrggbb, readable under white text."""
    color = request.app[SETTINGS].brand_color
    return web.Response(text=f":root {{ --accent: {color}; }}\n", content_type="text/css")


@routes.get("/brand/logo")
async def brand_logo(request: web.Request) -> web.StreamResponse:
    """The company's logo (``VIDEOASSIST_BRAND_LOGO``), or 404 without one. An SVG is
    served as an image, and the pages only ever show it in an <img>: a script in it
    never runs (nor could, under the pages' Content-Security-Policy)."""
    path = request.app[SETTINGS].brand_logo
    if path is None:
        raise web.HTTPNotFound()
    body = await asyncio.to_thread(path.read_bytes)
    return web.Response(body=body, content_type=LOGO_TYPES[path.suffix.lower()],
                        headers={"Content-Security-Policy": "default-src 'none'; "
                                 "style-src 'unsafe-inline'; sandbox"})


@routes.get("/")
@routes.get(r"/jobs/{id:\d{1,15}}")
@routes.get(r"/jobs/{id:\d{1,15}}/call")
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
async def join(request: web.Request) -> web.Response:
    """A one-time join link lands here; the token stays in the fragment. In the language
    the address asks for (``?lang=``: the page's switch) or else the browser's
    (videoassist/i18n.py), whose words the page's scripts get too."""
    words = catalogue(negotiate(request.query.get("lang"), request.headers.get("Accept-Language")))
    response = aiohttp_jinja2.render_template("join.html", request, _context(
        request, lang=words.language, _=words.gettext, messages=words.json,
        languages=LANGUAGES))
    response.headers["Content-Language"] = words.language
    # A cache in between keeps one copy per language the browsers ask for.
    response.headers["Vary"] = "Accept-Language"
    return response


@routes.get("/setup")
@aiohttp_jinja2.template("setup.html")
async def setup(request: web.Request) -> dict[str, Any]:
    """A set-password link lands here."""
    return _context(request)
