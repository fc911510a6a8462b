"""Sign-in and setting a password through a one-time link."""

from __future__ import annotations

from aiohttp import web

from videoassist.actors import Actor
from videoassist.api.body import read_json, text_field
from videoassist.api.guard import client_address, staff_user
from videoassist.appkeys import REFUSALS, SENDERS, SETTINGS, SIGNIN_LIMITS, STORE, TOKENS
from videoassist.auth.passwords import MAX_LENGTH, check_policy
from videoassist.domain import accounts, invitations
from videoassist.errors import BadRequest, Unauthorized
from videoassist.storage.records import User

routes = web.RouteTableDef()


def _session(request: web.Request, user: User) -> web.Response:
    token, expires_at = request.app[TOKENS].issue_staff(
        user.id, user.role, request.app[SETTINGS].session_ttl_s, user.session_version
    )
    return web.json_response({"token": token, "expires_at": expires_at, "user": user.public(),
                              "sending": request.app[SENDERS].channels()})


@routes.post("/api/session")
async def sign_in(request: web.Request) -> web.Response:
    body = await read_json(request)
    username = text_field(body, "username", max_len=64)
    password = body.get("password")
    if not isinstance(password, str) or not password or len(password) > MAX_LENGTH:
        raise BadRequest("password is required.")
    assert username is not None
    user = await accounts.sign_in(
        request.app[STORE], request.app[SIGNIN_LIMITS], username, password,
        client_address(request), request.app[REFUSALS],
    )
    return _session(request, user)


@routes.get("/api/session")
async def whoami(request: web.Request) -> web.Response:
    user = await staff_user(request)
    return web.json_response({"user": user.public(), "sending": request.app[SENDERS].channels()})


@routes.post("/api/password")
async def set_password(request: web.Request) -> web.Response:
    """Consume a set-password link: {"token", "password"} -> a signed-in session."""
    body = await read_json(request)
    password = body.get("password")
    if not isinstance(password, str):
        raise BadRequest("password is required.")
    check_policy(password)  # before the link is consumed: a weak password costs nothing
    store = request.app[STORE]
    pending = await invitations.inspect_password(store, body.get("token"))
    assert pending.user_id is not None
    if not (await store.users.get(pending.user_id)).active:  # refuse before the link is used
        raise Unauthorized("This account is disabled.")
    invite = await invitations.redeem_password(store, body.get("token"), client_address(request))
    assert invite.user_id is not None
    await accounts.set_password(store, invite.user_id, password, Actor.user(invite.user_id))
    user = await store.users.get(invite.user_id)
    return _session(request, user)
