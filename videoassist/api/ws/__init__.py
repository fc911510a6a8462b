"""``GET /ws``: one signalling connection, from handshake to leave.

The handshake is refused (403) unless the Origin is allowed. Then, in this package:

- ``handshake``: the first message must be ``auth`` within ``ws_auth_timeout_s``; who
  it lets in (``signalling.admission``), the hub's join, or the connection carried to
  the node that holds the call (``videoassist.cluster.proxy``: that node, reached on
  its internal address, runs the same ``Connection`` for it, ``internal_websocket``,
  with the client's address passed along and the Origin already checked here);
- ``connection``: every later message rate limited, size checked, parsed, and checked
  against the sender's right to be in the call (account still active, link not
  revoked, token not expired) before it acts;
- ``handlers``: what each client message type does (``HANDLERS``);
- ``replies``: errors in a message are answered with an ``error`` message, counted; the
  connection lives on. This package is the one place signalling errors become ``error``
  messages.
"""

from __future__ import annotations

import contextlib
import logging

from aiohttp import web

from videoassist.api.guard import client_address
from videoassist.api.ws.connection import Connection
from videoassist.appkeys import METRICS, SETTINGS
from videoassist.cluster.node import CLIENT_HEADER
from videoassist.errors import Forbidden
from videoassist.signalling.members import CLOSE_CALL_LOST

logger = logging.getLogger(__name__)

# Frames above this are refused by aiohttp itself (close 1009); frames between the
# configured message limit and this get an error message and the connection lives.
HARD_FRAME_LIMIT = 1024 * 1024


async def websocket(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    # Whole and exact: a browser sends the origin serialized (RFC 6454), as configured.
    origin = request.headers.get("Origin", "")
    if origin not in settings.allowed_origins:
        logger.warning("refused a WebSocket from origin %r", origin[:100])
        raise Forbidden("This origin may not open the signalling socket.")
    ws = web.WebSocketResponse(
        heartbeat=settings.ws_heartbeat_s, max_msg_size=HARD_FRAME_LIMIT
    )
    await ws.prepare(request)
    metrics = request.app[METRICS]
    metrics.websocket_opened.inc()
    metrics.websocket_connections.inc()
    connection = Connection(request.app, request, ws, client_address(request))
    try:
        await _run(connection)
    finally:
        metrics.websocket_connections.dec()
        metrics.websocket_closes.labels(connection.close_reason).inc()
    return ws


async def internal_websocket(app: web.Application, request: web.Request) -> web.StreamResponse:
    """A client's connection that another node carries here, on this node's internal
    address (behind the node secret). The client is counted in the metrics of the node
    it connected to, not here."""
    ws = web.WebSocketResponse(
        heartbeat=app[SETTINGS].ws_heartbeat_s, max_msg_size=HARD_FRAME_LIMIT
    )
    await ws.prepare(request)
    client = request.headers.get(CLIENT_HEADER, "")[:64] or "unknown"
    await _run(Connection(app, request, ws, client, carried=True))
    return ws


async def _run(connection: Connection) -> None:
    """Serve the connection; an error it did not handle is logged and closes the socket
    (1011): once upgraded, no HTTP error may be written on it."""
    try:
        await connection.run()
    except ConnectionError as exc:  # the client went away mid-write: nothing to fix
        logger.info("a WebSocket connection was lost: %s", exc)
    except Exception:
        logger.exception("a WebSocket connection failed")
        connection.metrics.unhandled_errors.labels("websocket").inc()
        connection.failed = True
        with contextlib.suppress(Exception):
            await connection.ws.close(code=CLOSE_CALL_LOST, message=b"internal")
