"""Snapshots over HTTP: metadata, the image, a caption, another annotated version.

Images are served to signed-in staff only (a customer's participant token is not a
staff token), decrypted on the fly, never cached by the browser or a proxy.
"""

from __future__ import annotations

from aiohttp import web

from videoassist.actors import Actor
from videoassist.api.body import int_param, read_json
from videoassist.api.guard import staff_user
from videoassist.appkeys import SNAPSHOTS, STORE
from videoassist.domain.jobrecord import snapshot_file, snapshot_json
from videoassist.errors import BadRequest
from videoassist.snapshots.shapes import check_shapes
from videoassist.storage.records import Author

routes = web.RouteTableDef()


def _id(request: web.Request) -> int:
    return int_param(request.match_info["id"], "snapshot id")


@routes.get("/api/snapshots/{id}")
async def get_snapshot(request: web.Request) -> web.Response:
    await staff_user(request)
    snapshot = await request.app[STORE].snapshots.get(_id(request))
    return web.json_response(snapshot_json(snapshot))


@routes.get("/api/snapshots/{id}/image")
async def snapshot_image(request: web.Request) -> web.Response:
    user = await staff_user(request)
    snapshot, jpeg = await request.app[SNAPSHOTS].view(_id(request), Actor.user(user.id))
    name = snapshot_file(snapshot).rsplit("/", 1)[-1]
    return web.Response(body=jpeg, content_type="image/jpeg", headers={
        "Cache-Control": "no-store",
        "Content-Disposition": f'inline; filename="job-{snapshot.job_id}-{name}"',
        "X-Content-Type-Options": "nosniff",
    })


@routes.patch("/api/snapshots/{id}")
async def caption_snapshot(request: web.Request) -> web.Response:
    user = await staff_user(request)
    body = await read_json(request)
    if set(body) != {"caption"}:
        raise BadRequest("Send {\"caption\": TEXT or null}.")
    snapshot = await request.app[SNAPSHOTS].caption(_id(request), body["caption"],
                                                    Actor.user(user.id))
    return web.json_response(snapshot_json(snapshot))


@routes.post("/api/snapshots/{id}/versions")
async def annotate_again(request: web.Request) -> web.Response:
    """A new version: other shapes on the same captured frame. The original stays."""
    user = await staff_user(request)
    body = await read_json(request)
    unknown = set(body) - {"shapes", "caption"}
    if unknown:
        raise BadRequest(f"Unknown field {sorted(unknown)[0]!r}; send shapes and caption.")
    if "shapes" not in body:
        raise BadRequest("shapes is required.")
    shapes = check_shapes(body["shapes"])
    author = Author(user.name, user.role, None, user.id)
    transport = request.transport
    snapshot = await request.app[SNAPSHOTS].annotate(
        _id(request), author, shapes, body.get("caption"), Actor.user(user.id),
        wanted=lambda: transport is not None and not transport.is_closing())
    return web.json_response(snapshot_json(snapshot), status=201)
