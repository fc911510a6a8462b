"""Logging set-up for the entry point, and an access log that never writes a query
string (one-time tokens never travel in one, but a mistyped link might).

Every event is one line on stderr, whatever it holds: a traceback, or a newline in a
value someone sent (which could otherwise forge a line), is folded into it. In text
format newlines are written as ``\\n``; in JSON format (``VIDEOASSIST_LOG_FORMAT=json``)
each line is one object: ``time``, ``level``, ``logger``, ``message``, the record's
extra fields, and ``exception`` with the traceback.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import types
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

ACCESS_LOGGER = "videoassist.access"

# What every LogRecord has; anything else on a record came as ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


def _fold(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: MESSAGE``, the traceback on the same line; a worker's lines
    say which: ``TIME LEVEL [worker N] LOGGER: MESSAGE``."""

    def __init__(self, worker: int | None = None) -> None:
        tag = "" if worker is None else f"[worker {worker}] "
        super().__init__(f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return _fold(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a worker's have ``worker``: N."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self._worker = worker

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self._worker is not None:
            entry["worker"] = self._worker
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


FORMATTERS: dict[str, type[TextFormatter] | type[JsonFormatter]] = {
    "text": TextFormatter, "json": JsonFormatter}


def configure(log_format: str = "text", level: int = logging.INFO,
              worker: int | None = None) -> None:
    """One handler on stderr for the whole process; uncaught exceptions and warnings
    go through it too, so that they are one line each as well. ``worker``: this
    process is that worker under the supervisor, and each line says so."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FORMATTERS[log_format](worker))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # aiortc and aioice are chatty at INFO; their warnings still show.
    for name in ("aiortc", "aioice"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(kind: type[BaseException], exc: BaseException,
                  tb: types.TracebackType | None) -> None:
    logging.getLogger("videoassist").critical("uncaught exception", exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    logging.getLogger("videoassist").critical(
        "uncaught exception in thread %s", args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


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
            extra={"method": request.method, "path": request.rel_url.path,
                   "status": response.status, "duration_ms": round(time * 1000, 1)},
        )
