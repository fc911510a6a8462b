"""Protocol version 1: decoding and checking client messages.

Every client message is a JSON object with a ``type``. ``decode`` returns the
message with its fields checked, or raises ``BadRequest`` with a message that
names the problem; the connection answers it with an ``error`` and lives on.
Shapes are in normalized coordinates: (0, 0) is the top-left corner of the
video's picture, (1, 1) its bottom-right, whatever its size or letterboxing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from videoassist.errors import BadRequest, PayloadTooLarge
from videoassist.snapshots.shapes import (
    COLOR,
    SHAPE_ID,
    check_shape,
    check_shapes,
    number,
    unit,
)
from videoassist.storage.records import MAX_NOTE_CHARS, storable

PROTOCOL_VERSION = 1

MAX_CHAT_CHARS = 2000
MAX_CHAT_HISTORY = 200  # chat messages a ``joined`` carries at most (the newest)
MAX_SDP_CHARS = 60_000
MAX_CANDIDATE_CHARS = 1024
MEDIA_KINDS = ("audio", "video")
CAMERA_ACTIONS = ("switch", "torch", "zoom")
FACINGS = ("user", "environment")
MAX_ZOOM = 100.0
# A publisher's media modes (docs/protocol.md, "Degrading"), best first, and why it is
# in one.
MEDIA_MODES = ("video", "reduced", "stills")
MODE_REASONS = ("link_ok", "low_bandwidth", "packet_loss")
MAX_KBPS = 1_000_000
# The escapes of what no database stores: a UTF-16 surrogate ("\ud800"; a pair is an
# emoji, a lone one no UTF-8 holds) and NUL ("\u0000", which PostgreSQL refuses). Only a
# message holding one is walked (``storable``).
UNSTORABLE_ESCAPE = re.compile(r"\\u(?:[dD][89abcdefABCDEF]|0000)")



class BadMessage(BadRequest):
    """A message of a known type that fails its checks: the error names the message it
    answers (``ref``)."""

    def __init__(self, message: str, ref: str) -> None:
        super().__init__(message)
        self.ref = ref


def decode(raw: str, max_bytes: int) -> dict[str, Any]:
    """Parse and check one text frame."""
    if len(raw) > max_bytes or len(raw.encode("utf-8", "surrogatepass")) > max_bytes:
        raise PayloadTooLarge(f"Messages must be at most {max_bytes} bytes.")
    try:
        message = json.loads(raw)
    except ValueError:
        raise BadRequest("The message is not valid JSON.") from None
    except RecursionError:
        raise BadRequest("The message is nested too deeply.") from None
    if not isinstance(message, dict):
        raise BadRequest("A message must be a JSON object.")
    if UNSTORABLE_ESCAPE.search(raw) and not storable(message):
        raise BadRequest("The message holds a NUL character or text that is not valid "
                         "Unicode (a lone surrogate).")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise BadRequest("A message needs a string 'type'.")
    check = _CHECKS.get(kind)
    if check is None:
        raise BadRequest(f"Unknown message type {kind[:40]!r}.")
    try:
        fields = check(message)
    except BadRequest as exc:
        raise BadMessage(exc.message, kind) from exc
    fields["type"] = kind
    return fields


def _string(message: dict[str, Any], name: str, max_chars: int, *, empty: bool = False,
            strip: bool = False) -> str:
    value = message.get(name)
    if not isinstance(value, str):
        raise BadRequest(f"'{name}' must be a string.")
    if strip:
        value = value.strip()
    if not empty and not value.strip():
        raise BadRequest(f"'{name}' must not be empty.")
    if len(value) > max_chars:
        raise BadRequest(f"'{name}' must be at most {max_chars} characters.")
    return value


def _int(message: dict[str, Any], name: str, *, optional: bool = False) -> int | None:
    value = message.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**53:
        raise BadRequest(f"'{name}' must be a non-negative whole number.")
    return value


def _auth(m: dict[str, Any]) -> dict[str, Any]:
    return {"token": _string(m, "token", 4096), "job": _int(m, "job", optional=True),
            "resume": _int(m, "resume", optional=True),
            "chat_after": _int(m, "chat_after", optional=True)}


def _empty(m: dict[str, Any]) -> dict[str, Any]:
    return {}


def _client_id(m: dict[str, Any]) -> str | None:
    """A client's own id for a message (``client_id``), by which a resend is known."""
    value = m.get("client_id")
    if value is not None and (not isinstance(value, str) or not SHAPE_ID.fullmatch(value)):
        raise BadRequest("'client_id' is 1 to 64 letters, digits, '_' or '-', or absent.")
    return value


def _chat(m: dict[str, Any]) -> dict[str, Any]:
    return {"text": _string(m, "text", MAX_CHAT_CHARS), "client_id": _client_id(m)}


def _note(m: dict[str, Any]) -> dict[str, Any]:
    # As POST /api/jobs/{id}/notes: stored without the blanks around it.
    return {"text": _string(m, "text", MAX_NOTE_CHARS, strip=True)}


def _sdp(m: dict[str, Any]) -> dict[str, Any]:
    sdp = _string(m, "sdp", MAX_SDP_CHARS)
    if not sdp.startswith("v=0"):
        raise BadRequest("'sdp' is not a session description (it must start with v=0).")
    lines = sdp.splitlines()
    if not any(line.startswith("o=") for line in lines) or not any(
        line.startswith("m=") for line in lines
    ):
        raise BadRequest("'sdp' needs an o= line and at least one m= (media) line.")
    return {"sdp": sdp}


def _offer(m: dict[str, Any]) -> dict[str, Any]:
    restart = m.get("restart", False)
    if not isinstance(restart, bool):
        raise BadRequest("'restart' must be true or false.")
    return {**_sdp(m), "restart": restart}


def _candidate(m: dict[str, Any]) -> dict[str, Any]:
    mid = m.get("sdpMid")
    if mid is not None and (not isinstance(mid, str) or len(mid) > 32):
        raise BadRequest("'sdpMid' must be a short string or null.")
    return {
        "candidate": _string(m, "candidate", MAX_CANDIDATE_CHARS, empty=True),
        "sdpMid": mid,
        "sdpMLineIndex": _int(m, "sdpMLineIndex", optional=True),
    }


def _annotation_add(m: dict[str, Any]) -> dict[str, Any]:
    return {"target": _int(m, "target"), "shape": check_shape(m.get("shape"))}


def _annotation_remove(m: dict[str, Any]) -> dict[str, Any]:
    shape_id = m.get("id")
    if not isinstance(shape_id, str) or not SHAPE_ID.match(shape_id):
        raise BadRequest("'id' must name a shape.")
    return {"target": _int(m, "target"), "id": shape_id}


def _annotation_clear(m: dict[str, Any]) -> dict[str, Any]:
    return {"target": _int(m, "target")}


def _annotation_pointer(m: dict[str, Any]) -> dict[str, Any]:
    color = m.get("color", "#ff3b30")
    if not isinstance(color, str) or not COLOR.match(color):
        raise BadRequest("'color' must look like #rrggbb.")
    return {"target": _int(m, "target"), "x": unit(m.get("x"), "x"),
            "y": unit(m.get("y"), "y"), "color": color.lower()}


def _bool(message: dict[str, Any], name: str) -> bool:
    value = message.get(name)
    if not isinstance(value, bool):
        raise BadRequest(f"'{name}' must be true or false.")
    return value


def _zoom(value: object) -> float:
    zoom = number(value)
    if zoom is None or not 0 < zoom <= MAX_ZOOM:
        raise BadRequest(f"A zoom is a number above 0 and at most {MAX_ZOOM:g}.")
    return zoom


def _media_mute(m: dict[str, Any]) -> dict[str, Any]:
    kind = m.get("kind")
    if kind not in MEDIA_KINDS:
        raise BadRequest("'kind' is audio or video.")
    return {"kind": kind, "muted": _bool(m, "muted")}


def _media_mode(m: dict[str, Any]) -> dict[str, Any]:
    mode, reason, kbps, loss = m.get("mode"), m.get("reason"), m.get("kbps"), m.get("loss")
    if mode not in MEDIA_MODES:
        raise BadRequest(f"'mode' is one of {', '.join(MEDIA_MODES)}.")
    if reason not in MODE_REASONS:
        raise BadRequest(f"'reason' is one of {', '.join(MODE_REASONS)}.")
    if kbps is not None and (not isinstance(kbps, int) or isinstance(kbps, bool)
                             or not 0 <= kbps <= MAX_KBPS):
        raise BadRequest(f"'kbps' is a whole number of kbit/s, 0 to {MAX_KBPS}, or null.")
    share = None if loss is None else number(loss)
    if loss is not None and (share is None or not 0 <= share <= 1):
        raise BadRequest("'loss' is the share of packets lost, 0 to 1, or null.")
    return {"mode": mode, "reason": reason, "kbps": kbps, "loss": share}


def _camera_control(m: dict[str, Any]) -> dict[str, Any]:
    action = m.get("action")
    if action not in CAMERA_ACTIONS:
        raise BadRequest(f"'action' is one of {', '.join(CAMERA_ACTIONS)}.")
    value = m.get("value")
    if action == "switch" and value is not None and value not in FACINGS:
        raise BadRequest("To switch, 'value' is user, environment, or null (the other one).")
    if action == "torch":
        value = _bool(m, "value")
    if action == "zoom":
        value = _zoom(value)
    return {"target": _int(m, "target"), "action": action, "value": value}


def _camera_state(m: dict[str, Any]) -> dict[str, Any]:
    facing, torch, zoom, can = m.get("facing"), m.get("torch"), m.get("zoom"), m.get("can")
    if facing is not None and facing not in FACINGS:
        raise BadRequest("'facing' is user, environment or null.")
    if torch is not None and not isinstance(torch, bool):
        raise BadRequest("'torch' is true, false or null.")
    if not isinstance(can, list) or len(can) > len(CAMERA_ACTIONS) or not all(
        a in CAMERA_ACTIONS for a in can
    ):
        raise BadRequest(f"'can' lists the actions the camera takes: {', '.join(CAMERA_ACTIONS)}.")
    return {"facing": facing, "torch": torch, "zoom": None if zoom is None else _zoom(zoom),
            "can": sorted(set(can), key=CAMERA_ACTIONS.index)}


def _snapshot_request(m: dict[str, Any]) -> dict[str, Any]:
    request = m.get("request")
    if request is not None and (not isinstance(request, str) or not SHAPE_ID.match(request)):
        raise BadRequest("'request' is 1 to 64 letters, digits, '_' or '-', or absent.")
    return {"camera": _int(m, "camera"), "shapes": check_shapes(m.get("shapes", [])),
            "request": request}


def _target(m: dict[str, Any]) -> dict[str, Any]:
    return {"target": _int(m, "target")}


def _freeze(m: dict[str, Any]) -> dict[str, Any]:
    return {"camera": _int(m, "camera")}


_CHECKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "auth": _auth,
    "ping": _empty,
    "leave": _empty,
    "call.end": _empty,
    "chat.message": _chat,
    "note.add": _note,
    "sdp.offer": _offer,
    "sdp.answer": _sdp,
    "ice.candidate": _candidate,
    "annotation.add": _annotation_add,
    "annotation.remove": _annotation_remove,
    "annotation.clear": _annotation_clear,
    "annotation.pointer": _annotation_pointer,
    "media.mute": _media_mute,
    "media.mode": _media_mode,
    "camera.control": _camera_control,
    "camera.state": _camera_state,
    "snapshot.request": _snapshot_request,
    "participant.remove": _target,
    "freeze": _freeze,
    "freeze.end": _empty,
}

CLIENT_TYPES = tuple(_CHECKS)
