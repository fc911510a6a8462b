"""Invites by e-mail, sent by the server itself over SMTP (``VIDEOASSIST_SMTP_*``).

One message per invite, plain text, from ``smtp_from``: the company, the job, the link,
how long it works. Each attempt opens its own connection in a thread (``smtplib``: the
standard library's client, blocking), upgraded with STARTTLS (``smtp_security``
``starttls``, the default, and required: a server that does not offer it fails the
attempt) or TLS from the first byte (``tls``); the server's certificate is always
verified, against ``smtp_ca_file`` if set. Failed attempts are retried, in memory,
after ``RETRY_DELAYS_S``, but for those trying again cannot mend (a 5xx reply, a
certificate not trusted, no STARTTLS). The link holds a live one-time
token: it is never written to a log, and a failure is logged by its kind alone.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import smtplib
import ssl
from email.message import EmailMessage

from videoassist.config import Settings
from videoassist.errors import BadRequest

logger = logging.getLogger(__name__)

RETRY_DELAYS_S = (1.0, 4.0, 15.0)


# One address, plain: a dot-atom local part and a domain of at least two labels, in
# ASCII (an address with other letters needs SMTPUTF8, which not every relay takes).
# Nothing else: no display name, comment, space, comma or line break, so nothing
# typed can add a header or a recipient.
_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")


def email_address(to: str) -> str:
    """``to`` checked as one plain e-mail address (``name@example.com``); 400
    otherwise."""
    if len(to) > 254 or not _ADDRESS.fullmatch(to):
        raise BadRequest(f"{to!r} is not an e-mail address (name@example.com, in letters "
                         "a to z, digits and . _ + -).")
    return to


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return bool(self._settings.smtp_host)

    def send_invite(self, to: str, job_title: str, company: str, url: str,
                    ttl_s: float, invite_id: int, name: str | None) -> bool:
        """Send in the background; False when no SMTP server is configured. ``to`` has
        been checked (``email_address``); ``ttl_s``: how long the link works."""
        if not self.enabled:
            return False
        message = self.invite_message(to, job_title, company, url, ttl_s, name)
        task = asyncio.create_task(self._deliver(message, invite_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def invite_message(self, to: str, job_title: str, company: str, url: str,
                       ttl_s: float, name: str | None) -> EmailMessage:
        settings = self._settings
        minutes = max(1, round(ttl_s / 60))
        message = EmailMessage()
        message["From"] = settings.smtp_from
        message["To"] = to
        # One line whatever the setting holds: a header takes no line break.
        message["Subject"] = f"{' '.join(company.split())}: show us the problem on camera"
        message["Date"] = email.utils.formatdate(localtime=False)
        domain = email.utils.parseaddr(settings.smtp_from)[1].rpartition("@")[2]
        message["Message-ID"] = email.utils.make_msgid(domain=domain or None)
        hello = f"Hello {name},\n\n" if name else "Hello,\n\n"
        message.set_content(
            f"{hello}{company} would like to see the problem with \"{job_title}\".\n\n"
            "Open this link on your phone to start a video call with them (no app to "
            "install):\n\n"
            f"{url}\n\n"
            f"The link works once, for the next {_duration(minutes)}. Nothing of the call "
            "is kept on your phone.\n")
        return message

    async def _deliver(self, message: EmailMessage, invite_id: int) -> None:
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS_S), start=1):
            await asyncio.sleep(delay)
            try:
                await asyncio.to_thread(self._send_once, message)
            except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
                if _permanent(exc):
                    logger.error("[invite %d] e-mail not sent, and not tried again: %s",
                                 invite_id, _why(exc))
                    return
                logger.warning("[invite %d] e-mail not sent (attempt %d): %s", invite_id,
                               attempt, _why(exc))
                continue
            logger.info("[invite %d] e-mail accepted by the SMTP server (attempt %d)",
                        invite_id, attempt)
            return
        logger.error("[invite %d] e-mail given up after %d attempts", invite_id,
                     len(RETRY_DELAYS_S) + 1)

    def _send_once(self, message: EmailMessage) -> None:
        settings = self._settings
        context = ssl.create_default_context(
            cafile=None if settings.smtp_ca_file is None else str(settings.smtp_ca_file))
        timeout = settings.smtp_timeout_s
        client: smtplib.SMTP
        if settings.smtp_security == "tls":
            client = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=timeout,
                                      context=context)
        else:
            client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
        with client:
            client.ehlo()
            if settings.smtp_security == "starttls":
                client.starttls(context=context)  # raises if the server does not offer it
                client.ehlo()
            if settings.smtp_username:
                password = "" if settings.smtp_password is None else (
                    settings.smtp_password.reveal())
                client.login(settings.smtp_username, password)
            client.send_message(message)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _duration(minutes: int) -> str:
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(minutes / 60)
    return f"{hours} hours" if hours < 48 else f"{round(hours / 24)} days"


def _permanent(exc: BaseException) -> bool:
    """A failure that trying again cannot mend: the SMTP server refused for good (a
    5xx reply: the password, the sender, the address), or its certificate is not one
    this server trusts, or it offers no STARTTLS. A lost connection, a timeout or a
    4xx reply may pass."""
    if isinstance(exc, ssl.SSLCertVerificationError | smtplib.SMTPNotSupportedError):
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    code = getattr(exc, "smtp_code", None)
    return isinstance(code, int) and code >= 500


def _why(exc: BaseException) -> str:
    """A failure by its kind, and the SMTP server's code where it answered one: never
    the message, which may quote what was sent."""
    code = getattr(exc, "smtp_code", None)
    return f"{type(exc).__name__}" + (f" {code}" if isinstance(code, int) else "")
