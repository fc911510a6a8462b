"""One-time join links: create (and send), list, withdraw, send again in one's place,
inspect (changes nothing), redeem (consumes). What each may do is ``invitations``'s;
how a link is sent, ``sending``'s."""

from __future__ import annotations

import contextlib
import logging

import segno
from aiohttp import web

from videoassist.actors import Actor
from videoassist.api.body import int_param, name_field, read_json, text_field
from videoassist.api.guard import client_address, staff_user
from videoassist.appkeys import CLOCK, DRAINING, HUB, SENDERS, SETTINGS, STORE, TOKENS
from videoassist.domain import invitations
from videoassist.domain.invitations import Link
from videoassist.errors import Draining, NotFound
from videoassist.sending import Channel, recipient
from videoassist.storage import Store
from videoassist.storage.records import Invite, Job

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()


@routes.post("/api/jobs/{id}/invites")
async def create_invite(request: web.Request) -> web.Response:
    user = await staff_user(request)
    job_id = int_param(request.match_info["id"], "job id")
    body = await read_json(request)
    to = text_field(body, "to", max_len=254, required=False)
    if to is not None:
        recipient(to)  # checked before the link is made
    name = name_field(body, "name")
    store, settings = request.app[STORE], request.app[SETTINGS]
    job = await store.jobs.get(job_id)
    link = await invitations.create_join_link(
        store, settings, job, body.get("role"), body.get("ttl_s"), Actor.user(user.id), name,
    )
    sent_by = None if to is None else await invitations.send(
        store, request.app[SENDERS], to, job.title, link)
    return _made(link, sent_by)


def _made(link: Link, sent_by: Channel | None, **extra: object) -> web.Response:
    """A link just made (201): the only time its URL and QR code are shown."""
    return web.json_response(
        {
            "id": link.invite.id,
            "url": link.url,
            "role": link.invite.role,
            "name": link.invite.name,
            "expires_at": link.invite.expires_at,
            "notified": sent_by is not None,
            "sent_by": sent_by,
            "qr": qr_code(link.url),
            **extra,
        },
        status=201,
    )


def _view(invite: Invite, now: float, makers: dict[int, str]) -> dict[str, object]:
    """A join link as the console lists it (never its URL: the server has only its
    hash)."""
    state = ("withdrawn" if invite.revoked_at is not None else "used"
             if invite.used_at is not None else "expired" if invite.expires_at <= now
             else "open")
    return {"id": invite.id, "role": invite.role, "name": invite.name,
            "sent_to": invite.sent_to, "state": state, "created_at": invite.created_at,
            "expires_at": invite.expires_at, "used_at": invite.used_at,
            "revoked_at": invite.revoked_at,
            "created_by": makers.get(invite.created_by or 0)}


async def _makers(store: Store, invites: list[Invite]) -> dict[int, str]:
    """The names of whoever made these links, by user id (gone users left out)."""
    names: dict[int, str] = {}
    for user_id in {i.created_by for i in invites if i.created_by is not None}:
        with contextlib.suppress(NotFound):
            names[user_id] = (await store.users.get(user_id)).name
    return names


@routes.get("/api/jobs/{id}/invites")
async def list_invites(request: web.Request) -> web.Response:
    """A job's join links, newest first, each with its state."""
    await staff_user(request)
    job_id = int_param(request.match_info["id"], "job id")
    store = request.app[STORE]
    await store.jobs.get(job_id)  # 404 for no such job
    invites = await store.invites.of_job(job_id)
    makers = await _makers(store, invites)
    now = request.app[CLOCK]()
    return web.json_response({"invites": [_view(i, now, makers) for i in invites]})


async def _join_link(request: web.Request, store: Store) -> tuple[Invite, Job]:
    invite_id = int_param(request.match_info["id"], "link id")
    invite = await store.invites.get(invite_id)
    if invite is None or invite.purpose != "join" or invite.job_id is None:
        raise NotFound("No such join link.")
    return invite, await store.jobs.get(invite.job_id)


@routes.post("/api/invites/{id}/withdraw")
async def withdraw_invite(request: web.Request) -> web.Response:
    """Withdraw a join link: unused, it answers 410 from now on; used, whoever came by
    it is removed from the call (``link_revoked``: at once on this process, within the
    watcher's poll elsewhere) and its participant token stops working."""
    user = await staff_user(request)
    store, hub = request.app[STORE], request.app[HUB]
    invite, job = await _join_link(request, store)
    # Counted before: this process's watcher, notified of the withdrawal (PostgreSQL),
    # may close them before the call below does.
    holding = {m.id for m in hub.members() if m.invite_id == invite.id and not m.closing}
    withdrawn = await invitations.withdraw(store, invite, job, user)
    if withdrawn.used_at is not None:
        await hub.remove_link_participants({withdrawn.id})
    removed = len(holding) if withdrawn.revoked_at != invite.revoked_at else 0
    makers = await _makers(store, [withdrawn])
    return web.json_response({"invite": _view(withdrawn, request.app[CLOCK](), makers),
                              "participants_removed": removed})


@routes.post("/api/invites/{id}/resend")
async def resend_invite(request: web.Request) -> web.Response:
    """Send a new link where an unused one was sent, in its place (``invitations.resend``)."""
    user = await staff_user(request)
    store = request.app[STORE]
    invite, job = await _join_link(request, store)
    link, sent_by = await invitations.resend(store, request.app[SETTINGS],
                                             request.app[SENDERS], invite, job, user)
    return _made(link, sent_by, replaces=invite.id)


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
    store = request.app[STORE]
    invite, job = await invitations.inspect_join(store, body.get("token"))
    return web.json_response({
        "company": request.app[SETTINGS].company_name,
        "job": {"id": job.id, "title": job.title},
        "role": invite.role,
        "name": invite.name,
        "invited_by": await invitations.inviter_name(store, invite),
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
        "name": invite.name,
        "invited_by": await invitations.inviter_name(request.app[STORE], invite),
    })
