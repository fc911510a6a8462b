"""The notify webhook: hands a join link to the company's SMS or mail gateway.

``Notifier.send_invite`` queues ``{"to", "text", "url"}`` in the database, in the
webhook deliveries' queue (``storage.webhooks``, channel ``NOTIFY``); the server's
webhook worker (``webhooks.Webhooks``) POSTs it as JSON to ``VIDEOASSIST_NOTIFY_URL``,
on whichever node claims it, retried with backoff (``MAX_ATTEMPTS``, ``RETRY_BASE_S``,
``RETRY_MAX_S``), every attempt recorded. A restart loses nothing, and a link made by
the command line is sent by the running server.

The URL holds a live one-time token, which the database otherwise keeps only as a
hash: the body is sealed at rest (AES-256-GCM, ``auth.sealing``) under a key derived
from the snapshot key (``sealing_key``), which is not in the database, with the
delivery's id as associated data, so a sealed body moved to another row does not
open; it is emptied once the delivery is finished. Before every attempt the link is
looked up (``to_send``): withdrawn, used, expired, or its job closed, it is not sent,
and the delivery is given up. The body and the URL go only to the configured gateway
(a redirect is a failed attempt, never followed) and are never written to a log.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable

from cryptography.exceptions import InvalidTag

from videoassist.auth.sealing import derive_key, seal, unseal
from videoassist.errors import NotFound
from videoassist.storage import Store
from videoassist.storage.records import Delivery, Invite
from videoassist.storage.webhooks import NOTIFY

logger = logging.getLogger(__name__)

TYPE = "invite.notify"  # the deliveries' type, in the queue
# A few quick attempts: 1, 2, 4 and 8 s apart (a gateway restarting), then given up.
MAX_ATTEMPTS = 5
RETRY_BASE_S = 1.0
RETRY_MAX_S = 15.0
KEY_INFO = b"videoassist notify"

# Why a notify delivery was given up without being sent (its last attempt's error).
WITHDRAWN = "link withdrawn"
USED = "link used"
EXPIRED = "link expired"
CLOSED = "job closed"
UNREADABLE = "sealed under another key"


def sealing_key(snapshot_key: bytes) -> bytes:
    """The key notify bodies are sealed with, derived from the snapshot key-encryption
    key (``keyfiles.snapshot_key``: every node of a fleet has the same)."""
    return derive_key(snapshot_key, KEY_INFO)


def _context(delivery_uuid: str) -> bytes:
    return f"videoassist notify delivery {delivery_uuid}".encode()


class Notifier:
    """The queueing half of the notify webhook; ``queued`` wakes this process's worker
    (the command line has none: the server notices what it committed)."""

    def __init__(self, store: Store, url: str, key: bytes, clock: Callable[[], float],
                 queued: Callable[[], None] = lambda: None) -> None:
        self._store = store
        self._url = url
        self._key = key
        self._clock = clock
        self._queued = queued

    @property
    def enabled(self) -> bool:
        return bool(self._url)

    async def send_invite(self, to: str, job_title: str, company: str, url: str,
                          invite: Invite) -> bool:
        """Queue the link ``url`` of ``invite`` for ``to``; False when no notify webhook
        is configured. A failure to queue raises: the link was not handed on."""
        if not self.enabled:
            return False
        text = f"{company}: tap the link to show us the problem with '{job_title}' on camera."
        body = json.dumps({"to": to, "text": text, "url": url},
                          separators=(",", ":")).encode()
        delivery_id = str(uuid.uuid4())
        await self._store.webhooks.add(
            delivery_id, TYPE, invite.job_id, seal(self._key, body, _context(delivery_id)),
            self._clock(), channel=NOTIFY, invite_id=invite.id)
        logger.info("[invite %d] queued for the notify webhook (delivery %s)", invite.id,
                    delivery_id)
        self._queued()
        return True


async def to_send(store: Store, key: bytes, delivery: Delivery, now: float) -> bytes | str:
    """A notify delivery's body, opened, to POST now; or why it must not go (the
    delivery is then given up, unsent): its link withdrawn, used or expired, its job
    closed, or the body sealed under another key than this server's."""
    invite = None if delivery.invite_id is None else await store.invites.get(
        delivery.invite_id)
    if invite is None or invite.revoked_at is not None:
        return WITHDRAWN
    if invite.used_at is not None:
        return USED
    if invite.expires_at <= now:
        return EXPIRED
    if invite.job_id is not None:
        try:
            job = await store.jobs.get(invite.job_id)
        except NotFound:
            return WITHDRAWN
        if job.status != "open":
            return CLOSED
    try:
        return unseal(key, delivery.body, _context(delivery.uuid))
    except (InvalidTag, ValueError):
        logger.error("[invite %d] its notify delivery %s does not open: sealed under "
                     "another snapshot key than this server's", invite.id, delivery.uuid)
        return UNREADABLE
