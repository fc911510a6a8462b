"""API keys for integrations, for admins. A key is shown once, in the answer that
creates it."""

from __future__ import annotations

from aiohttp import web

from videoassist.actors import Actor
from videoassist.api.body import int_param, read_json
from videoassist.api.guard import staff_user
from videoassist.appkeys import STORE
from videoassist.domain import apikeys

routes = web.RouteTableDef()


@routes.post("/api/keys")
async def create_key(request: web.Request) -> web.Response:
    admin = await staff_user(request, "admin")
    body = await read_json(request)
    record, key = await apikeys.create(request.app[STORE], body.get("name"),
                                       body.get("scopes"), Actor.user(admin.id))
    return web.json_response({**record.public(), "key": key}, status=201)


@routes.get("/api/keys")
async def list_keys(request: web.Request) -> web.Response:
    await staff_user(request, "admin")
    keys = await request.app[STORE].api_keys.list()
    return web.json_response({"keys": [k.public() for k in keys]})


@routes.delete("/api/keys/{id}")
async def revoke_key(request: web.Request) -> web.Response:
    admin = await staff_user(request, "admin")
    key_id = int_param(request.match_info["id"], "key id")
    record = await apikeys.revoke(request.app[STORE], key_id, Actor.user(admin.id))
    return web.json_response(record.public())
