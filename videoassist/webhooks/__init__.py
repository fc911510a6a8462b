"""Outgoing webhooks: the server's events, signed, persisted and retried.

``Webhooks.emit`` queues an event in the database; a background worker POSTs it to
the configured URL, signed with HMAC-SHA256, and retries with exponential backoff.
Another process (the CLI) queues with an ``Outbox``; the server's worker sends it.
The same worker delivers the notify webhook's join links (``NotifyGateway``).
The format is specified in ``docs/api.md`` (Webhooks).
"""

from videoassist.webhooks.emitter import NotifyGateway, Outbox, RetryPolicy, Webhooks
from videoassist.webhooks.events import EVENT_TYPES, CallWebhooks

__all__ = ["EVENT_TYPES", "CallWebhooks", "NotifyGateway", "Outbox", "RetryPolicy",
           "Webhooks"]
