"""Sending a join link to the person it is for: which addresses are taken, and which
channel each kind takes.

An e-mail address goes by e-mail through the server's own SMTP server
(``videoassist.mail``) where one is set, else, like a phone number, to the notify
webhook (``videoassist.notify``: a company's SMS or mail gateway) where that is set;
otherwise the link is not sent, and the caller says so. Sending happens in the
background (an e-mail from this process; the notify webhook from the database's queue,
by whichever node claims it): the answer says how it was handed on, not that it
arrived.
"""

from __future__ import annotations

import re
from typing import Literal

from videoassist.errors import BadRequest
from videoassist.mail import Mailer, email_address
from videoassist.notify import Notifier
from videoassist.storage.records import Invite

Kind = Literal["email", "sms"]
Channel = Literal["smtp", "webhook"]

# A phone number as people type it: "+44 7700 900123", "(030) 123-4567".
PHONE = re.compile(r"\+?[0-9 ().-]{6,32}")
PHONE_MIN_DIGITS = 6


def recipient(to: str) -> tuple[Kind, str]:
    """``to`` as ("email", address) or ("sms", number); 400 if it is neither."""
    if "@" in to:
        return "email", email_address(to)
    if not PHONE.fullmatch(to) or sum(c.isdigit() for c in to) < PHONE_MIN_DIGITS:
        raise BadRequest("'to' must be a phone number (digits, spaces, + - ( ) .) or an "
                         "e-mail address.")
    return "sms", to


class Senders:
    def __init__(self, notifier: Notifier, mailer: Mailer, company: str) -> None:
        self._notifier = notifier
        self._mailer = mailer
        self._company = company

    def channels(self) -> dict[Kind, Channel | None]:
        """How a link goes to each kind of address (``sending`` in the session)."""
        webhook: Channel | None = "webhook" if self._notifier.enabled else None
        return {"email": "smtp" if self._mailer.enabled else webhook, "sms": webhook}

    def channel_for(self, to: str) -> Channel | None:
        """The channel a link to ``to`` (checked by ``recipient``) would take; None: no
        channel for its kind."""
        return self.channels()[recipient(to)[0]]

    async def send(self, to: str, job_title: str, url: str, invite: Invite
                   ) -> Channel | None:
        """Send the link ``url`` of ``invite`` to ``to`` in the background: the channel
        it went by, or None (not sent)."""
        kind, address = recipient(to)
        channel = self.channels()[kind]
        if channel == "smtp":
            self._mailer.send_invite(address, job_title, self._company, url,
                                     invite.expires_at - invite.created_at, invite.id,
                                     invite.name)
        elif channel == "webhook":
            await self._notifier.send_invite(address, job_title, self._company, url, invite)
        return channel

    async def close(self) -> None:
        await self._mailer.close()
