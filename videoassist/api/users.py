"""Staff accounts, for admins."""

from __future__ import annotations

from aiohttp import web

from videoassist import accounts, invitations
from videoassist.api.body import int_param, read_json, text_field
from videoassist.api.guard import staff_user
from videoassist.appkeys import HUB, SETTINGS, STORE
from videoassist.errors import BadRequest

routes = web.RouteTableDef()


@routes.get("/api/users")
async def list_users(request: web.Request) -> web.Response:
    await staff_user(request, "admin")
    users = await request.app[STORE].users.list()
    return web.json_response({
        "users": [{**u.public(), "active": u.active, "has_password": u.has_password}
                  for u in users]
    })


@routes.post("/api/users")
async def add_user(request: web.Request) -> web.Response:
    """Create a staff account; the answer holds a one-time link to set its password."""
    admin = await staff_user(request, "admin")
    body = await read_json(request)
    username = text_field(body, "username", max_len=64)
    assert username is not None
    store, settings = request.app[STORE], request.app[SETTINGS]
    user = await accounts.add_user(store, username, body.get("role"), None)
    await store.audit.record(f"user:{admin.id}", "user.created", f"user:{user.id}",
                             role=user.role)
    link = await invitations.create_password_link(
        store, settings, user, f"user:{admin.id}", admin.id
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
    revoked = await accounts.disable_user(store, user, f"user:{admin.id}")
    closed = await request.app[HUB].disconnect_user(user.id, "account_disabled")
    return web.json_response({"user": user.public(), "active": False,
                              "invites_revoked": revoked, "connections_closed": closed})


@routes.post("/api/users/{id}/enable")
async def enable_user(request: web.Request) -> web.Response:
    admin = await staff_user(request, "admin")
    user_id = int_param(request.match_info["id"], "user id")
    store = request.app[STORE]
    user = await store.users.get(user_id)
    await accounts.enable_user(store, user, f"user:{admin.id}")
    return web.json_response({"user": user.public(), "active": True})
