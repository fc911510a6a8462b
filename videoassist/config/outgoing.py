"""What goes out: the notify webhook, e-mail by SMTP, and the event webhooks."""

from __future__ import annotations

import email.errors
import email.headerregistry
import email.utils
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from videoassist.config.values import ENV_PREFIX, POSITIVE, Secret, doc, within
from videoassist.errors import ConfigError

# Where SMTP without TLS may go: a relay on this machine.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True, kw_only=True)
class OutgoingSettings:
    """The notify webhook, SMTP and the event webhooks."""

    notify_url: str = field(
        default="",
        metadata=doc(
            "Webhook receiving {to, text, url} when an invite names a recipient, "
            "for a company's SMS or mail gateway: queued in the database, sealed, and "
            "retried. Empty: off."
        ),
    )
    notify_timeout_s: float = field(
        default=10.0, metadata=doc("Timeout for one attempt at a notify webhook delivery.",
                                    bounds=POSITIVE)
    )
    smtp_host: str = field(
        default="",
        metadata=doc(
            "SMTP server the server sends invites to e-mail addresses through, itself "
            "(the notify webhook then gets phone numbers only). Empty: off."
        ),
    )
    smtp_port: int = field(
        default=587, metadata=doc("Port of the SMTP server (587: submission; 465: TLS).")
    )
    smtp_security: str = field(
        default="starttls",
        metadata=doc(
            "starttls (upgrade the connection, required), tls (TLS from the first byte, "
            "port 465) or none (plain text: a relay on the same machine only). The "
            "server's certificate is always verified."
        ),
    )
    smtp_username: str = field(
        default="", metadata=doc("User name to sign in to the SMTP server; empty: none.")
    )
    smtp_password: Secret | None = field(
        default=None, metadata=doc("Password to sign in to the SMTP server.")
    )
    smtp_from: str = field(
        default="",
        metadata=doc(
            "The invites' From address, e.g. 'Acme Heating <assist@acme.example>'; "
            "required with SMTP_HOST."
        ),
    )
    smtp_ca_file: Path | None = field(
        default=None,
        metadata=doc(
            "CA certificates (PEM) the SMTP server's certificate is verified against, "
            "instead of the system's: a company's own CA."
        ),
    )
    smtp_timeout_s: float = field(
        default=20.0, metadata=doc("Timeout for one attempt at sending an e-mail.")
    )
    webhook_url: str = field(
        default="",
        metadata=doc(
            "URL receiving the server's events (job.created, call.started, call.ended, "
            "snapshot.saved, job.closed) as signed JSON POSTs. Empty: off."
        ),
    )
    webhook_secret: Secret | None = field(
        default=None,
        metadata=doc(
            "Key of the HMAC-SHA256 signature on webhook deliveries. Default: generated "
            "into DATA_DIR/webhook-secret."
        ),
    )
    webhook_timeout_s: float = field(
        default=10.0, metadata=doc("Timeout for one webhook delivery attempt.",
                                    bounds=POSITIVE)
    )
    webhook_max_attempts: int = field(
        default=10, metadata=doc("Attempts at a webhook delivery before it is given up.",
                                  bounds=within(1, 50))
    )
    webhook_retry_base_s: float = field(
        default=30.0,
        metadata=doc("Wait after a delivery's first failed attempt; doubles after each one.",
                      bounds=POSITIVE),
    )
    webhook_retry_max_s: float = field(
        default=3600.0, metadata=doc("Longest wait between two attempts at a delivery.")
    )

    def _check_outgoing(self) -> None:
        if self.notify_url and urlsplit(self.notify_url).scheme not in ("http", "https"):
            raise ConfigError(f"{ENV_PREFIX}NOTIFY_URL must be an http(s) URL")
        parts = urlsplit(self.webhook_url)
        if self.webhook_url and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise ConfigError(f"{ENV_PREFIX}WEBHOOK_URL must be an http(s) URL")
        self._check_smtp()

    def _check_smtp(self) -> None:
        if self.smtp_security not in ("starttls", "tls", "none"):
            raise ConfigError(f"{ENV_PREFIX}SMTP_SECURITY must be starttls, tls or none, "
                              f"got {self.smtp_security!r}")
        if not 1 <= self.smtp_port <= 65535:
            raise ConfigError(f"{ENV_PREFIX}SMTP_PORT must be 1..65535, got {self.smtp_port}")
        if self.smtp_timeout_s <= 0:
            raise ConfigError(f"{ENV_PREFIX}SMTP_TIMEOUT_S must be positive")
        if not self.smtp_host:
            return
        try:
            addresses = email.utils.getaddresses([self.smtp_from])
            sender = (email.headerregistry.Address(addr_spec=addresses[0][1])
                      if len(addresses) == 1 and not any(c in self.smtp_from for c in "\r\n")
                      else None)
        except (ValueError, IndexError, email.errors.HeaderParseError):
            sender = None
        if sender is None or not sender.domain:
            raise ConfigError(f"{ENV_PREFIX}SMTP_FROM must be the invites' sender address "
                              "('Acme Heating <assist@acme.example>'), "
                              f"got {self.smtp_from!r}")
        if self.smtp_password is not None and not self.smtp_username:
            raise ConfigError(f"{ENV_PREFIX}SMTP_PASSWORD is set without SMTP_USERNAME")
        if self.smtp_security == "none" and self.smtp_host not in LOOPBACK_HOSTS:
            raise ConfigError(f"{ENV_PREFIX}SMTP_SECURITY=none sends the live links in plain "
                              f"text: only to a relay on this machine ({', '.join(LOOPBACK_HOSTS)}"
                              f"), got {self.smtp_host!r}; use starttls or tls")
        if self.smtp_username and self.smtp_security == "none":
            raise ConfigError(f"{ENV_PREFIX}SMTP_USERNAME with SMTP_SECURITY=none would send "
                              "the password in plain text: use starttls or tls")
        if self.smtp_ca_file is not None and not self.smtp_ca_file.is_file():
            raise ConfigError(f"{ENV_PREFIX}SMTP_CA_FILE {self.smtp_ca_file} is not a file")
