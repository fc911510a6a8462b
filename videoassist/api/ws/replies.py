"""The ``error`` messages of the signalling connection, each counted by its code
(``videoassist_websocket_errors_total``). This package is the one place signalling
errors become ``error`` messages."""

from __future__ import annotations

from typing import Any

from videoassist.errors import VideoassistError
from videoassist.metrics import Metrics


class Replies:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def error(self, exc: VideoassistError, ref: object = None) -> dict[str, Any]:
        """An ``error`` message answering ``exc``, naming the message type it answers
        (``ref``) when there is one."""
        self.metrics.websocket_errors.labels(exc.code).inc()
        message: dict[str, Any] = {"type": "error", "code": exc.code,
                                   "message": exc.message}
        if isinstance(ref, str):
            message["ref"] = ref[:40]
        return message

    def snapshot_error(self, exc: VideoassistError, request: str | None) -> dict[str, Any]:
        """An error about a snapshot, naming the client's request id when it gave one."""
        message = self.error(exc, "snapshot.request")
        if request is not None:
            message["request"] = request
        return message

    def refusal(self, reason: str, message: str) -> dict[str, Any]:
        """The ``error`` message a connection is closed with before it joined."""
        self.metrics.websocket_errors.labels(reason).inc()
        return {"type": "error", "code": reason, "message": message}
