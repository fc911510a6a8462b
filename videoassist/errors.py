"""The error hierarchy every layer raises.

Each error carries a machine-readable ``code`` and a message that is safe to show
to a client. The HTTP middleware (``videoassist.api.middleware``) and the
signalling connection (``videoassist.api.ws``) are the only two
places that turn these into a response; anything that is not a
``VideoassistError`` is logged with context and answered with a generic 500.

This module imports nothing of the project: every other module may use it.
"""

from __future__ import annotations


class VideoassistError(Exception):
    """Base class: an error whose message may be shown to the client."""

    status = 500
    code = "internal"
    default_message = "Internal error."

    def __init__(self, message: str | None = None, *, retry_after: float | None = None):
        self.message = message or self.default_message
        self.retry_after = retry_after
        super().__init__(self.message)


class BadRequest(VideoassistError):
    status = 400
    code = "bad_request"
    default_message = "The request is malformed."


class Unauthorized(VideoassistError):
    status = 401
    code = "unauthorized"
    default_message = "Sign-in required or the credentials are not valid."


class Forbidden(VideoassistError):
    status = 403
    code = "forbidden"
    default_message = "You are not allowed to do that."


class NotFound(VideoassistError):
    status = 404
    code = "not_found"
    default_message = "Not found."


class Conflict(VideoassistError):
    status = 409
    code = "conflict"
    default_message = "That conflicts with the current state."


class Muted(Conflict):
    """A camera its owner muted (``media.mute``): the server neither forwards nor
    captures it until it is unmuted."""

    default_message = "That camera is muted by its owner; ask them to turn it back on."


class Gone(VideoassistError):
    status = 410
    code = "gone"
    default_message = "This link is no longer valid. Ask for a new one."


class PayloadTooLarge(VideoassistError):
    status = 413
    code = "too_large"
    default_message = "The request is too large."


class TooManyRequests(VideoassistError):
    status = 429
    code = "rate_limited"
    default_message = "Too many attempts. Wait a moment and try again."


class TooManyConnections(TooManyRequests):
    """A join past the connections one join link's token, or one staff user, may hold
    at once."""

    code = "too_many_connections"
    default_message = "Too many connections with this token are open; close one first."


class CallFull(TooManyRequests):
    """A join to a call that holds as many participants as it may."""

    code = "call_full"
    default_message = "This call is full."


class Unavailable(VideoassistError):
    status = 503
    code = "unavailable"
    default_message = "The service is not available right now."


class Draining(Unavailable):
    """The server is stopping: it lets calls in progress end and takes no new ones."""

    code = "draining"
    default_message = ("This server is restarting and takes no new calls. "
                       "Try again in a minute.")


class ConfigError(Exception):
    """A setting is missing or malformed; raised at start-up, never to a client."""
