"""Reading and checking JSON request bodies."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from videoassist.domain.accounts import NAME_MAX_LEN, check_name
from videoassist.errors import BadRequest, PayloadTooLarge
from videoassist.storage.records import storable

MAX_BODY_BYTES = 64 * 1024


async def read_json(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or a clear 400/413."""
    if request.content_type != "application/json":
        raise BadRequest("Send JSON with Content-Type: application/json.")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The body must be at most {MAX_BODY_BYTES} bytes.")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The body must be at most {MAX_BODY_BYTES} bytes.")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("The body is not valid JSON.") from None
    except RecursionError:
        raise BadRequest("The body is nested too deeply.") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    if not storable(body):
        raise BadRequest("The body holds a NUL character or text that is not valid Unicode "
                         "(a lone surrogate).")
    return body


def text_field(
    body: dict[str, Any], name: str, *, max_len: int, required: bool = True
) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is required.")
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string.")
    value = value.strip()
    if required and not value:
        raise BadRequest(f"{name} must not be empty.")
    if len(value) > max_len:
        raise BadRequest(f"{name} must be at most {max_len} characters.")
    return value or None


def int_param(raw: str, name: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 15:  # not "²" or "٣"
        raise BadRequest(f"{name} must be a positive whole number.")
    return int(raw)


def name_field(body: dict[str, Any], name: str) -> str | None:
    """A person's name as others will see it (``accounts.check_name``): None when
    absent, null or empty (no name)."""
    value = text_field(body, name, max_len=NAME_MAX_LEN, required=False)
    return None if value is None else check_name(value, name)
