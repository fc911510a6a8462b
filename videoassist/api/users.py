"""Staff accounts, for admins."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from videoassist.actors import Actor
from videoassist.api.body import int_param, name_field, read_json, text_field
from videoassist.api.guard import staff_user
from videoassist.appkeys import CLOCK, HUB, SETTINGS, STORE
from videoassist.domain import accounts, invitations
from videoassist.errors import BadRequest, Conflict
from videoassist.storage.records import User

routes = web.RouteTableDef()


def _admin_view(user: User, in_call: set[int]) -> dict[str, Any]:
    """A user as the admin console lists them."""
    return {**user.public(), "active": user.active, "has_password": user.has_password,
            "created_at": user.created_at, "disabled_at": user.disabled_at,
            "in_call": user.id in in_call}


async def _in_call(request: web.Request) -> set[int]:
    """The users connected to a call now, in whichever server process holds it."""
    return await request.app[STORE].calls.users_in_calls()


@routes.get("/api/users")
async def list_users(request: web.Request) -> web.Response:
    await staff_user(request, "admin")
    users = await request.app[STORE].users.list()
    in_call = await _in_call(request)
    return web.json_response({"users": [_admin_view(u, in_call) for u in users]})


@routes.post("/api/users")
async def add_user(request: web.Request) -> web.Response:
    """Create a staff account; the answer holds a one-time link to set its password."""
    admin = await staff_user(request, "admin")
    body = await read_json(request)
    username = text_field(body, "username", max_len=64)
    assert username is not None
    display_name = name_field(body, "display_name")
    store, settings = request.app[STORE], request.app[SETTINGS]
    user = await accounts.add_user(store, username, body.get("role"), None, display_name,
                                   actor=Actor.user(admin.id))
    link = await invitations.create_password_link(
        store, settings, user, Actor.user(admin.id)
    )
    return web.json_response(
        {"user": user.public(), "password_link": {"url": link.url,
                                                  "expires_at": link.invite.expires_at}},
        status=201,
    )


@routes.post("/api/users/{id}/disable")
async def disable_user(request: web.Request) -> web.Response:
    admin = await staff_user(request, "admin")
    user_id = int_param(request.match_info["id"], "user id")
    store = request.app[STORE]
    user = await store.users.get(user_id)
    if user.id == admin.id:
        raise BadRequest("You cannot disable your own account.")
    done = await accounts.disable_user(store, user, Actor.user(admin.id), request.app[HUB])
    return web.json_response({"user": user.public(), "active": False,
                              "invites_revoked": done.invites_revoked,
                              "connections_closed": done.connections_closed,
                              "participants_removed": done.participants_removed})


@routes.patch("/api/users/{id}")
async def change_user(request: web.Request) -> web.Response:
    """{"role": ...} and/or {"display_name": ...}: a new role signs the user out
    everywhere (they sign in again as that); a new display name (null or "": none, the
    username shows) signs nobody out."""
    admin = await staff_user(request, "admin")
    user_id = int_param(request.match_info["id"], "user id")
    body = await read_json(request)
    if not body or not set(body) <= {"role", "display_name"}:
        raise BadRequest("Send {\"role\": ...} and/or {\"display_name\": ...}: nothing "
                         "else of a user changes.")
    store = request.app[STORE]
    user = await store.users.get(user_id)
    # Everything checked before anything changes: all of it is done, or none.
    display_name = name_field(body, "display_name")
    if "role" in body:
        accounts.check_staff_role(body["role"])
        if user.id == admin.id:
            raise BadRequest("You cannot change your own role.")
    actor = Actor.user(admin.id)
    changed, closed = user, 0
    if "role" in body:  # first: the last admin's stays, refused (409) before any rename
        since = request.app[CLOCK]()
        changed = await accounts.change_role(store, changed, body["role"], actor)
        if changed.role != user.role:
            closed = await accounts.sign_out_connections(store, user, request.app[HUB], since)
    if "display_name" in body:
        changed = await accounts.rename(store, changed, display_name, actor)
    return web.json_response({"user": _admin_view(changed, await _in_call(request)),
                              "connections_closed": closed})


@routes.post("/api/users/{id}/password-reset")
async def reset_password(request: web.Request) -> web.Response:
    """Forget the password, sign the user out everywhere, and answer a one-time link
    for them to set a new one."""
    admin = await staff_user(request, "admin")
    user_id = int_param(request.match_info["id"], "user id")
    store, settings = request.app[STORE], request.app[SETTINGS]
    user = await store.users.get(user_id)
    if user.id == admin.id:
        raise BadRequest("Change your own password by signing out and using a link from "
                         "another admin or the CLI.")
    if not user.active:
        raise Conflict("This account is disabled: enable it first.")
    since = request.app[CLOCK]()
    await accounts.reset_password(store, user, Actor.user(admin.id))
    closed = await accounts.sign_out_connections(store, user, request.app[HUB], since)
    link = await invitations.create_password_link(
        store, settings, user, Actor.user(admin.id)
    )
    return web.json_response({
        "user": user.public(), "connections_closed": closed,
        "password_link": {"url": link.url, "expires_at": link.invite.expires_at},
    })


@routes.post("/api/users/{id}/enable")
async def enable_user(request: web.Request) -> web.Response:
    admin = await staff_user(request, "admin")
    user_id = int_param(request.match_info["id"], "user id")
    store = request.app[STORE]
    user = await store.users.get(user_id)
    await accounts.enable_user(store, user, Actor.user(admin.id))
    return web.json_response({"user": user.public(), "active": True})
