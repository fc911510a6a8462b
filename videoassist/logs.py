"""Logging set-up for the entry point, and an access log that never writes a query
string (one-time tokens never travel in one, but a mistyped link might)."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

ACCESS_LOGGER = "videoassist.access"


def configure(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiortc and aioice are chatty at INFO; their warnings still show.
    for name in ("aiortc", "aioice"):
        logging.getLogger(name).setLevel(logging.WARNING)


class AccessLogger(AbstractAccessLogger):
    """``ADDR METHOD PATH STATUS BYTES MS``: the path only, no query, no headers."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %d %d %.1fms",
            request.remote,
            request.method,
            request.rel_url.path,
            response.status,
            response.body_length,
            time * 1000,
        )
