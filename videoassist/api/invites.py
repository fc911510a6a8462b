"""One-time join links: create, inspect (changes nothing), redeem (consumes)."""

from __future__ import annotations

import logging

import segno
from aiohttp import web

from videoassist import invitations
from videoassist.api.body import int_param, read_json, text_field
from videoassist.api.guard import client_address, staff_user
from videoassist.appkeys import DRAINING, NOTIFIER, SETTINGS, STORE, TOKENS
from videoassist.errors import Draining

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()


@routes.post("/api/jobs/{id}/invites")
async def create_invite(request: web.Request) -> web.Response:
    user = await staff_user(request)
    job_id = int_param(request.match_info["id"], "job id")
    body = await read_json(request)
    to = text_field(body, "to", max_len=254, required=False)
    store, settings = request.app[STORE], request.app[SETTINGS]
    job = await store.jobs.get(job_id)
    link = await invitations.create_join_link(
        store, settings, job, body.get("role"), body.get("ttl_s"), f"user:{user.id}", user.id
    )
    notified = False
    if to is not None:
        notified = request.app[NOTIFIER].send_invite(to, job.title, settings.company_name,
                                                      link.url, link.invite.id)
    return web.json_response(
        {
            "id": link.invite.id,
            "url": link.url,
            "role": link.invite.role,
            "expires_at": link.invite.expires_at,
            "notified": notified,
            "qr": qr_code(link.url),
        },
        status=201,
    )


def qr_code(url: str) -> str:
    """The link as a QR code, a PNG ``data:`` URL for the console to show: a customer
    beside the technician scans it from the screen. Made here, once: the server keeps
    only the link's hash, so it is never made again."""
    code = segno.make(url, error="m")
    return str(code.png_data_uri(scale=6, border=4, dark="#000000", light="#ffffff"))


@routes.post("/api/invites/inspect")
async def inspect_invite(request: web.Request) -> web.Response:
    """What a live link is for (the join page shows it); the link stays unused."""
    body = await read_json(request)
    invite, job = await invitations.inspect_join(request.app[STORE], body.get("token"))
    return web.json_response({
        "company": request.app[SETTINGS].company_name,
        "job": {"id": job.id, "title": job.title},
        "role": invite.role,
        "expires_at": invite.expires_at,
    })


@routes.post("/api/invites/redeem")
async def redeem_invite(request: web.Request) -> web.Response:
    if request.app[DRAINING][0]:  # before the link is used up: it works on the next server
        raise Draining()
    body = await read_json(request)
    invite, job = await invitations.redeem_join(
        request.app[STORE], body.get("token"), client_address(request)
    )
    token, expires_at = request.app[TOKENS].issue_participant(
        invite.id, job.id, invite.role, request.app[SETTINGS].participant_ttl_s
    )
    return web.json_response({
        "token": token,
        "expires_at": expires_at,
        "job": {"id": job.id, "title": job.title},
        "role": invite.role,
    })
