"""Settings: one frozen object, filled from defaults, a TOML file and ``VIDEOASSIST_*``.

Precedence, lowest first: the defaults below, the TOML file given with
``--config`` (keys are the field names), environment variables
(``VIDEOASSIST_`` + the field name in upper case), command-line flags.
Bad values fail loudly at start-up with the variable's name. Every field is
documented in ``docs/configuration.md``; a test keeps the two in step.
"""

from __future__ import annotations

import dataclasses
import difflib
import email.errors
import email.headerregistry
import email.utils
import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from videoassist.errors import ConfigError

ENV_PREFIX = "VIDEOASSIST_"
# The fewest media ports a serving process takes: one peer connection per participant
# (audio and video bundled on one port), and a call has two.
MEDIA_PORTS_MIN = 2
# An IP address or an interface name (Linux: at most 15 characters).
MEDIA_ADDRESS = re.compile(r"[0-9A-Fa-f.:]+|[A-Za-z0-9_.@-]{1,15}")


class Secret:
    """A string that never shows its value in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Bounds:
    """The values a number setting may take, stated once beside it: checked at start-up,
    and said in the error (``words``, else from the numbers)."""

    low: float | None = None  # the least allowed
    high: float | None = None  # the most allowed
    above: float | None = None  # every value above this, not this ("positive": 0)
    words: str | None = None  # how to say it where the numbers alone do not

    def holds(self, value: float) -> bool:
        return ((self.low is None or value >= self.low)
                and (self.high is None or value <= self.high)
                and (self.above is None or value > self.above))

    def say(self) -> str:
        if self.words is not None:
            return self.words
        if self.above == 0 and self.low is None and self.high is None:
            return "positive"
        if self.high is None:
            return f"at least {say_number(self.low)}"
        return f"{say_number(self.low)}..{say_number(self.high)}"


def say_number(value: float | None) -> str:
    return "?" if value is None else str(int(value)) if float(value).is_integer() else str(value)


POSITIVE = Bounds(above=0)


def _range(low: float, high: float | None, words: str | None = None) -> Bounds:
    return Bounds(low=low, high=high, words=words)


def _doc(text: str, bounds: Bounds | None = None) -> dict[str, Any]:
    return {"doc": text, "bounds": bounds}


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every setting of a videoassist server. See docs/configuration.md."""

    data_dir: Path = field(
        default=Path("data"),
        metadata=_doc("Directory for the SQLite database and generated key files."),
    )
    database_url: Secret | None = field(
        default=None,
        metadata=_doc(
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE: keep the data in this PostgreSQL "
            "database instead of SQLite in DATA_DIR. Empty: SQLite."
        ),
    )
    database_listen_url: Secret | None = field(
        default=None,
        metadata=_doc(
            "postgresql://... of the same database, for the one connection per node that "
            "LISTENs for changes (users disabled, jobs closed, links withdrawn) when "
            "DATABASE_URL goes through a pooler that cannot carry LISTEN (PgBouncer in "
            "transaction mode). Empty: DATABASE_URL."
        ),
    )
    host: str = field(default="127.0.0.1", metadata=_doc("Address the HTTP server binds."))
    port: int = field(default=8080, metadata=_doc("TCP port the HTTP server binds (0: any free).",
                                                  bounds=_range(0, 65535)))
    workers: int = field(
        default=0,
        metadata=_doc(
            "Worker processes serving: each a whole server holding its own calls, all on "
            "HOST:PORT. 0: one per core this process may run on; 1: one process, no "
            "supervisor.",
            bounds=_range(0, 1024, "0 (one per core) or 1..1024")
        ),
    )
    public_url: str = field(
        default="",
        metadata=_doc(
            "URL people reach the server at, used in links. Default: http://HOST:PORT."
        ),
    )
    allowed_origins: tuple[str, ...] = field(
        default=(),
        metadata=_doc("Origins allowed to open the signalling WebSocket. Default: public URL's."),
    )
    company_name: str = field(
        default="videoassist", metadata=_doc("Name shown to customers on the join page.")
    )
    brand_color: str = field(
        default="#0a58ca",
        metadata=_doc(
            "Accent colour of every page (buttons, links, the focus of a choice), #rrggbb; "
            "white text on it must be readable (contrast 4.5:1, WCAG AA)."
        ),
    )
    brand_logo: Path | None = field(
        default=None,
        metadata=_doc(
            "The company's logo (PNG, JPEG, WebP or SVG, at most 512 KiB), shown beside its "
            "name at the top of every page. Default: the name alone."
        ),
    )
    session_ttl_s: int = field(default=12 * 3600, metadata=_doc("Staff session token lifetime.",
                                                                bounds=POSITIVE))
    invite_ttl_s: int = field(
        default=900,
        metadata=_doc("Default lifetime of a join link: short, because a link opened but "
                      "not used stays in the browser's history (docs/security.md)."),
    )
    invite_max_ttl_s: int = field(
        default=24 * 3600, metadata=_doc("Longest lifetime a join link may be given.",
                                         bounds=_range(1, 24 * 3600))
    )
    participant_ttl_s: int = field(
        default=4 * 3600,
        metadata=_doc("Lifetime of the token a redeemed join link gives (one call's length).",
                      bounds=POSITIVE),
    )
    password_link_ttl_s: int = field(
        default=3600, metadata=_doc("Lifetime of a set-password link (first admin, resets).",
                                    bounds=_range(1, 24 * 3600))
    )
    jwt_keys: Secret | None = field(
        default=None,
        metadata=_doc(
            "Token signing keys as KID:KEY[,KID:KEY]; the first signs, all verify. "
            "Keys are at least 32 bytes. Default: generated into DATA_DIR/jwt-keys.json."
        ),
    )
    token_leeway_s: int = field(
        default=10, metadata=_doc("Clock skew allowed when checking token times (at most 30).",
                                  bounds=_range(0, 30))
    )
    turn_urls: tuple[str, ...] = field(
        default=(), metadata=_doc("TURN URLs handed to clients (turn:/turns:), comma-separated.")
    )
    turn_secret: Secret | None = field(
        default=None,
        metadata=_doc(
            "coturn static-auth-secret. Default: generated into DATA_DIR/turn-secret "
            "on first run."
        ),
    )
    turn_ttl_s: int = field(default=600, metadata=_doc("TURN credential lifetime (at most 600).",
                                                       bounds=_range(1, 600)))
    media_transcode: str = field(
        default="when-needed",
        metadata=_doc(
            "when-needed: forward encoded media, re-encode only for a viewer that shares "
            "no codec with the publisher; always: re-encode for every viewer (comparison)."
        ),
    )
    media_ports: str = field(
        default="",
        metadata=_doc(
            "UDP ports of the server's media, FIRST-LAST (40000-40999), split into equal "
            "slices, one per worker. Empty: ports the kernel picks (its ephemeral range)."
        ),
    )
    media_addresses: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "Addresses and interface names the server offers media on, comma-separated. "
            "Empty: every address but 127.0.0.1, ::1 and link-local IPv6 (aioice's)."
        ),
    )
    media_announced_address: str = field(
        default="",
        metadata=_doc(
            "Address the server's candidates announce in place of the machine's own, behind "
            "a 1:1 NAT (a cloud machine's public address); its sockets stay where they are. "
            "Empty: the machine's own."
        ),
    )
    media_turn: bool = field(
        default=True,
        metadata=_doc(
            "The server's own side of the media also relays through the first TURN URL. "
            "false: only its own addresses (TURN as a tier of its own, which must reach "
            "them); clients still get TURN credentials."
        ),
    )
    ice_allowed_peers: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "Address ranges (CIDR, comma-separated) the server's ICE agent may send to "
            "although turn/turnserver.conf's deny list covers them (private, loopback, "
            "link-local, CGNAT...): a LAN deployment without TURN names its LAN here. "
            "Empty: clients' candidates in those ranges are ignored. Names (mDNS .local), "
            "unspecified and multicast addresses are always ignored."
        ),
    )
    ice_max_candidates: int = field(
        default=32,
        metadata=_doc(
            "Distinct ICE candidates (address and port) one client's peer connection may "
            "give, in its descriptions and ice.candidate together; beyond: bad_request.",
            bounds=_range(1, 1000)
        ),
    )
    sdp_max_m_lines: int = field(
        default=16,
        metadata=_doc(
            "m-lines a client's offer may hold beyond the server's own sending "
            "transceivers (its camera, microphone, screen...); beyond: bad_request.",
            bounds=_range(1, 256)
        ),
    )
    sdp_offer_rate_per_s: float = field(
        default=0.5, metadata=_doc("Sustained sdp.offer messages per second per connection.",
                                   bounds=POSITIVE)
    )
    sdp_offer_burst: int = field(
        default=5,
        metadata=_doc("sdp.offer messages a connection may send at once; beyond: "
                      "rate_limited.",
                      bounds=POSITIVE),
    )
    snapshot_key: Secret | None = field(
        default=None,
        metadata=_doc(
            "Key-encryption key for snapshots: 32 bytes, base64. It wraps each job's data "
            "key and is never stored in the database. Default: generated into "
            "DATA_DIR/snapshot-key on first run. Back it up apart from the database."
        ),
    )
    snapshot_jpeg_quality: int = field(
        default=90, metadata=_doc("JPEG quality of stored snapshots (50..100).",
                                  bounds=_range(50, 100))
    )
    label_fonts: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "Font files snapshot labels are drawn in, PATH or PATH#FACE, comma-separated; "
            "each character in the first that has it. Default: Debian's Noto fonts."
        ),
    )
    retention_days: int = field(
        default=0,
        metadata=_doc(
            "Days to keep a job's snapshots, chat and events (a job may override it); "
            "0: keep them until the job is deleted.",
            bounds=_range(0, 100 * 365, "0 (keep) or 1..36500 days")
        ),
    )
    retention_check_s: float = field(
        default=3600.0, metadata=_doc("How often the server purges what retention has expired.",
                                      bounds=POSITIVE)
    )
    notify_url: str = field(
        default="",
        metadata=_doc(
            "Webhook receiving {to, text, url} when an invite names a recipient, "
            "for a company's SMS or mail gateway. Empty: off."
        ),
    )
    notify_timeout_s: float = field(
        default=10.0, metadata=_doc("Timeout for one notify webhook delivery.",
                                    bounds=POSITIVE)
    )
    smtp_host: str = field(
        default="",
        metadata=_doc(
            "SMTP server the server sends invites to e-mail addresses through, itself "
            "(the notify webhook then gets phone numbers only). Empty: off."
        ),
    )
    smtp_port: int = field(
        default=587, metadata=_doc("Port of the SMTP server (587: submission; 465: TLS).")
    )
    smtp_security: str = field(
        default="starttls",
        metadata=_doc(
            "starttls (upgrade the connection, required), tls (TLS from the first byte, "
            "port 465) or none (plain text: a relay on the same machine only). The "
            "server's certificate is always verified."
        ),
    )
    smtp_username: str = field(
        default="", metadata=_doc("User name to sign in to the SMTP server; empty: none.")
    )
    smtp_password: Secret | None = field(
        default=None, metadata=_doc("Password to sign in to the SMTP server.")
    )
    smtp_from: str = field(
        default="",
        metadata=_doc(
            "The invites' From address, e.g. 'Acme Heating <assist@acme.example>'; "
            "required with SMTP_HOST."
        ),
    )
    smtp_ca_file: Path | None = field(
        default=None,
        metadata=_doc(
            "CA certificates (PEM) the SMTP server's certificate is verified against, "
            "instead of the system's: a company's own CA."
        ),
    )
    smtp_timeout_s: float = field(
        default=20.0, metadata=_doc("Timeout for one attempt at sending an e-mail.")
    )
    webhook_url: str = field(
        default="",
        metadata=_doc(
            "URL receiving the server's events (job.created, call.started, call.ended, "
            "snapshot.saved, job.closed) as signed JSON POSTs. Empty: off."
        ),
    )
    webhook_secret: Secret | None = field(
        default=None,
        metadata=_doc(
            "Key of the HMAC-SHA256 signature on webhook deliveries. Default: generated "
            "into DATA_DIR/webhook-secret."
        ),
    )
    webhook_timeout_s: float = field(
        default=10.0, metadata=_doc("Timeout for one webhook delivery attempt.",
                                    bounds=POSITIVE)
    )
    webhook_max_attempts: int = field(
        default=10, metadata=_doc("Attempts at a webhook delivery before it is given up.",
                                  bounds=_range(1, 50))
    )
    webhook_retry_base_s: float = field(
        default=30.0,
        metadata=_doc("Wait after a delivery's first failed attempt; doubles after each one.",
                      bounds=POSITIVE),
    )
    webhook_retry_max_s: float = field(
        default=3600.0, metadata=_doc("Longest wait between two attempts at a delivery.")
    )
    signin_max_failures: int = field(
        default=5, metadata=_doc("Failed sign-ins per username within the window before 429.",
                                 bounds=POSITIVE)
    )
    signin_max_failures_per_client: int = field(
        default=20, metadata=_doc("Failed sign-ins per client address within the window.",
                                  bounds=POSITIVE)
    )
    signin_window_s: int = field(
        default=300, metadata=_doc("Window over which failed sign-ins are counted.",
                                   bounds=POSITIVE)
    )
    audit_refusals_window_s: float = field(
        default=60.0,
        metadata=_doc(
            "Window over which a client's refusals without signing in (an unknown or "
            "revoked API key, a sign-in refused with 429) are one audit row and a count.",
            bounds=_range(1, 86400)
        ),
    )
    audit_refusals_max_clients: int = field(
        default=20,
        metadata=_doc(
            "Clients whose refusals get audit rows of their own in a window; the others' "
            "are counted together under client:*.",
            bounds=_range(1, 10000)
        ),
    )
    trust_forwarded_for: bool = field(
        default=False,
        metadata=_doc(
            "Take the client address from X-Forwarded-For (only behind a reverse proxy "
            "that sets it)."
        ),
    )
    ws_auth_timeout_s: float = field(
        default=5.0, metadata=_doc("Seconds a new WebSocket has to send its auth message.",
                                   bounds=POSITIVE)
    )
    ws_preauth_max_messages: int = field(
        default=5,
        metadata=_doc("Messages other than a good auth a new WebSocket may send before "
                      "it is closed (4400).",
                      bounds=_range(0, 1000)),
    )
    ws_max_message_bytes: int = field(
        default=64 * 1024, metadata=_doc("Largest signalling message accepted.",
                                         bounds=_range(1024, 1024 * 1024))
    )
    still_max_bytes: int = field(
        default=256 * 1024,
        metadata=_doc("Largest camera still (binary frame: header and JPEG) a participant "
                      "may send in stills mode.",
                      bounds=_range(4096, 1024 * 1024 - 1024)),
    )
    still_min_interval_s: float = field(
        default=0.5,
        metadata=_doc("Seconds between two stills of one sender on average: two may come "
                      "at once, then one each interval; a still past that is refused.",
                      bounds=_range(0, 60, "0..60 seconds")),
    )
    ws_heartbeat_s: float = field(
        default=15.0, metadata=_doc("WebSocket ping interval; a peer missing a pong is closed.",
                                    bounds=POSITIVE)
    )
    ws_rate_per_s: float = field(
        default=30.0, metadata=_doc("Sustained signalling messages per second per connection.",
                                    bounds=POSITIVE)
    )
    ws_rate_burst: int = field(
        default=120, metadata=_doc("Signalling messages a connection may send in a burst.",
                                   bounds=POSITIVE)
    )
    ws_outbox_messages: int = field(
        default=256,
        metadata=_doc("Messages waiting to be written to one client at most; when full, "
                      "superseded ones (pointer moves...) are dropped, and a client still "
                      "that far behind is closed (4409).",
                      bounds=_range(8, 100_000)),
    )
    call_max_connections_per_link: int = field(
        default=3,
        metadata=_doc("Connections to its call one join link's participant token may "
                      "hold at once; the next is refused (4429).",
                      bounds=_range(1, 100)),
    )
    call_max_connections_per_user: int = field(
        default=4,
        metadata=_doc("Connections to calls one staff user may hold at once, over every "
                      "call; the next is refused (4429).",
                      bounds=_range(1, 1000)),
    )
    call_max_participants: int = field(
        default=16,
        metadata=_doc("Participants (connections) one call holds at once; the next join "
                      "is refused (4429 call_full).",
                      bounds=_range(2, 1000)),
    )
    call_joins_per_min: int = field(
        default=30,
        metadata=_doc("Joins to calls one join link's token or one staff user may make "
                      "a minute (a minute's worth at once); the next is refused (4429).",
                      bounds=_range(1, 10_000)),
    )
    call_away_s: float = field(
        default=120.0,
        metadata=_doc("Seconds a participant whose connection was lost (not ended on "
                      "purpose) stays in its call, away, for the same person to come "
                      "back to; then it leaves. 0: it leaves at once.",
                      bounds=_range(0, 3600, "0..3600 seconds")),
    )
    chat_bytes_per_min: int = field(
        default=32 * 1024,
        metadata=_doc("Bytes of chat messages one sender may send to a call a minute, "
                      "over all its connections; past it they are refused.",
                      bounds=_range(10_000, None)),
    )
    annotation_bytes_per_min: int = field(
        default=1024 * 1024,
        metadata=_doc("Bytes of annotation messages one sender may send to a call a "
                      "minute, over all its connections; past it they are refused.",
                      bounds=_range(10_000, None)),
    )
    revocation_poll_s: float = field(
        default=0.25,
        metadata=_doc(
            "How often the server looks at the database for changes made by the CLI or "
            "another process to who may stay in a call (users disabled or signed out, "
            "links withdrawn, jobs closed): 0..1 on SQLite. On PostgreSQL the database "
            "notifies every node of them at once and this poll is a safety net, up to "
            "3600 (while a node hears no notifications it polls every 0.25 s)."
        ),
    )
    http_idle_timeout_s: float = field(
        default=75.0,
        metadata=_doc(
            "Seconds a connection has to send a whole request head after it opens or "
            "after its last response before it is closed (idle, or slow headers).",
            bounds=_range(1, 3600)
        ),
    )
    access_log: bool = field(
        default=True, metadata=_doc("Write an access log line per request (path, no query).")
    )
    log_format: str = field(
        default="text",
        metadata=_doc(
            "text: one line per event, as TIME LEVEL LOGGER: MESSAGE; json: one JSON object "
            "per line (time, level, logger, message, extra fields, exception). Either way "
            "a traceback stays on its event's line."
        ),
    )
    drain_timeout_s: float = field(
        default=3600.0,
        metadata=_doc(
            "On SIGTERM or SIGINT the server drains: /readyz answers 503, new joins are "
            "refused, calls in progress go on. It exits when the last one ends, or after "
            "this many seconds, closing those left (0: at once). Give the service manager "
            "a longer stop timeout.",
            bounds=_range(0, 7 * 24 * 3600, "0..604800 seconds")
        ),
    )
    metrics_token: Secret | None = field(
        default=None,
        metadata=_doc(
            "Bearer token GET /metrics requires. Empty: /metrics answers anyone who reaches "
            "the port (keep it off the public proxy)."
        ),
    )
    node_timeout_s: float = field(
        default=30.0,
        metadata=_doc(
            "A node (server process) not heard from for this long is taken for dead: the "
            "other nodes on the database end its calls, and the next join places them "
            "again. Nodes heartbeat every second.",
            bounds=_range(2, 3600, "2..3600 seconds")
        ),
    )
    internal_host: str = field(
        default="127.0.0.1",
        metadata=_doc(
            "Address of this node's internal listener, where the installation's other "
            "nodes carry WebSockets to the calls it holds: one they reach, never public."
        ),
    )
    internal_port: int = field(
        default=0, metadata=_doc("TCP port of the internal listener (0: any free).",
                                 bounds=_range(0, 65535))
    )
    node_secret: Secret | None = field(
        default=None,
        metadata=_doc(
            "What nodes show each other on their internal listeners; the same on every "
            "node of a fleet. Default: generated into DATA_DIR/node-secret."
        ),
    )

    def __post_init__(self) -> None:
        if not self.public_url:
            object.__setattr__(self, "public_url", f"http://{self.host}:{self.port}")
        object.__setattr__(self, "public_url", self.public_url.rstrip("/"))
        parts = urlsplit(self.public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"{ENV_PREFIX}PUBLIC_URL must be an http(s) URL, got {self.public_url!r}"
            )
        if not self.allowed_origins:
            object.__setattr__(self, "allowed_origins", (self.public_origin,))
        for origin in self.allowed_origins:
            o = urlsplit(origin)
            if o.scheme not in ("http", "https") or not o.netloc or o.path not in ("", "/"):
                raise ConfigError(f"{ENV_PREFIX}ALLOWED_ORIGINS: {origin!r} is not an origin")
        object.__setattr__(
            self, "allowed_origins", tuple(o.rstrip("/") for o in self.allowed_origins)
        )
        for spec in dataclasses.fields(self):
            bounds: Bounds | None = spec.metadata.get("bounds")
            if bounds is not None and not bounds.holds(getattr(self, spec.name)):
                raise ConfigError(f"{ENV_PREFIX}{spec.name.upper()} must be {bounds.say()}, "
                                  f"got {getattr(self, spec.name)!r}")
        # What depends on another setting.
        checks: list[tuple[str, bool, str]] = [
            ("invite_ttl_s", 0 < self.invite_ttl_s <= self.invite_max_ttl_s,
             "positive and at most INVITE_MAX_TTL_S"),
            ("webhook_retry_max_s", self.webhook_retry_max_s >= self.webhook_retry_base_s,
             "at least WEBHOOK_RETRY_BASE_S"),
            ("revocation_poll_s", 0 < self.revocation_poll_s <= 1, "0..1 (disable within 1 s)")
            if self.database_url is None else
            ("revocation_poll_s", 0 < self.revocation_poll_s <= 3600,
             "0..3600 (on PostgreSQL: the safety net under the notifications)"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(
                    f"{ENV_PREFIX}{name.upper()} must be {expected}, got {getattr(self, name)!r}"
                )
        for url in self.turn_urls:
            if not url.startswith(("turn:", "turns:", "stun:")):
                raise ConfigError(
                    f"{ENV_PREFIX}TURN_URLS: {url!r} is not a turn:, turns: or stun: URL"
                )
        if self.media_transcode not in ("when-needed", "always"):
            raise ConfigError(
                f"{ENV_PREFIX}MEDIA_TRANSCODE must be when-needed or always, "
                f"got {self.media_transcode!r}"
            )
        self._check_media()
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"{ENV_PREFIX}LOG_FORMAT must be text or json, "
                              f"got {self.log_format!r}")
        if self.metrics_token is not None and len(self.metrics_token.reveal()) < 16:
            raise ConfigError(f"{ENV_PREFIX}METRICS_TOKEN must be at least 16 characters")
        if self.notify_url and urlsplit(self.notify_url).scheme not in ("http", "https"):
            raise ConfigError(f"{ENV_PREFIX}NOTIFY_URL must be an http(s) URL")
        self._check_smtp()
        self._check_brand()
        if self.database_url is not None:
            db = urlsplit(self.database_url.reveal())
            if db.scheme not in ("postgresql", "postgres") or not db.path.strip("/"):
                # The value may hold a password: the message never shows it.
                raise ConfigError(f"{ENV_PREFIX}DATABASE_URL must be a postgresql:// URL "
                                  "naming a database (postgresql://USER:PASSWORD@HOST:PORT/"
                                  "DATABASE)")
        if self.internal_host in ("", "0.0.0.0", "::", "*"):  # noqa: S104 (refused)
            raise ConfigError(f"{ENV_PREFIX}INTERNAL_HOST must be the address other nodes "
                              f"reach this one at, not a wildcard: got {self.internal_host!r}")
        if self.node_secret is not None and len(self.node_secret.reveal()) < 16:
            raise ConfigError(f"{ENV_PREFIX}NODE_SECRET must be at least 16 characters")
        if self.database_listen_url is not None:
            db = urlsplit(self.database_listen_url.reveal())
            if self.database_url is None:
                raise ConfigError(f"{ENV_PREFIX}DATABASE_LISTEN_URL is for PostgreSQL: "
                                  f"set {ENV_PREFIX}DATABASE_URL too")
            if db.scheme not in ("postgresql", "postgres") or not db.path.strip("/"):
                raise ConfigError(f"{ENV_PREFIX}DATABASE_LISTEN_URL must be a postgresql:// "
                                  "URL naming the database")
        parts = urlsplit(self.webhook_url)
        if self.webhook_url and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise ConfigError(f"{ENV_PREFIX}WEBHOOK_URL must be an http(s) URL")

    def _check_media(self) -> None:
        _ = self.media_port_range  # raises on a bad range
        for item in self.ice_allowed_peers:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ConfigError(f"{ENV_PREFIX}ICE_ALLOWED_PEERS: {item!r} is not an address "
                                  "or a CIDR range (10.0.0.0/8, fd00::/8)") from None
        for item in self.media_addresses:
            if _is_unspecified(item):
                raise ConfigError(f"{ENV_PREFIX}MEDIA_ADDRESSES: {item!r} is every address, "
                                  "which no client can be given: name the addresses")
            if not MEDIA_ADDRESS.fullmatch(item):
                raise ConfigError(f"{ENV_PREFIX}MEDIA_ADDRESSES: {item!r} is neither an address "
                                  "of this machine nor an interface name")
        if self.media_announced_address:
            try:
                announced = ipaddress.ip_address(self.media_announced_address)
            except ValueError:
                raise ConfigError(f"{ENV_PREFIX}MEDIA_ANNOUNCED_ADDRESS must be an IP address, "
                                  f"got {self.media_announced_address!r}") from None
            if announced.is_unspecified:
                raise ConfigError(f"{ENV_PREFIX}MEDIA_ANNOUNCED_ADDRESS must be an address "
                                  f"clients can reach, got {self.media_announced_address!r}")

    @property
    def media_port_range(self) -> tuple[int, int] | None:
        """``media_ports`` as (first, last), both included; None: ephemeral ports."""
        if not self.media_ports:
            return None
        match = re.fullmatch(r"\s*(\d{1,5})\s*-\s*(\d{1,5})\s*", self.media_ports)
        if match is None:
            raise ConfigError(f"{ENV_PREFIX}MEDIA_PORTS must be FIRST-LAST (40000-40999), "
                              f"got {self.media_ports!r}")
        first, last = int(match[1]), int(match[2])
        if not 1024 <= first <= last <= 65535:
            raise ConfigError(f"{ENV_PREFIX}MEDIA_PORTS must lie within 1024..65535, first "
                              f"port first, got {self.media_ports!r}")
        if last - first + 1 < MEDIA_PORTS_MIN:
            raise ConfigError(f"{ENV_PREFIX}MEDIA_PORTS must hold at least {MEDIA_PORTS_MIN} "
                              f"ports (a call of two), got {self.media_ports!r}")
        return first, last

    @property
    def public_origin(self) -> str:
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def worker_count(self) -> int:
        """How many workers serve: ``workers``, or one per core this process may use."""
        return self.workers or len(os.sched_getaffinity(0))

    def _check_brand(self) -> None:
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", self.brand_color):
            raise ConfigError(f"{ENV_PREFIX}BRAND_COLOR must be a colour as #rrggbb, got "
                              f"{self.brand_color!r}")
        contrast = contrast_with_white(self.brand_color)
        if contrast < MIN_CONTRAST:
            raise ConfigError(f"{ENV_PREFIX}BRAND_COLOR {self.brand_color} is too light for "
                              f"the white text on its buttons (contrast {contrast:.2f}:1, "
                              f"at least {MIN_CONTRAST}:1 is readable): take a darker shade")
        if self.brand_logo is not None:
            if self.brand_logo.suffix.lower() not in LOGO_TYPES:
                raise ConfigError(f"{ENV_PREFIX}BRAND_LOGO must be a "
                                  f"{', '.join(sorted(LOGO_TYPES))} file, got {self.brand_logo}")
            try:
                size = self.brand_logo.stat().st_size
            except OSError as exc:
                raise ConfigError(f"{ENV_PREFIX}BRAND_LOGO {self.brand_logo} cannot be read "
                                  f"({exc.strerror})") from None
            if size > LOGO_MAX_BYTES:
                raise ConfigError(f"{ENV_PREFIX}BRAND_LOGO {self.brand_logo} is {size} bytes, "
                                  f"more than {LOGO_MAX_BYTES}")

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

    @property
    def database_path(self) -> Path:
        """The SQLite database file (used when ``database_url`` is not set)."""
        return self.data_dir / "videoassist.sqlite3"

    @property
    def database(self) -> Path | str:
        """Where the data is: the PostgreSQL URL if one is set, else the SQLite file
        (what ``Store.open`` takes)."""
        if self.database_url is not None:
            return self.database_url.reveal()
        return self.database_path

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


# The brand: its colour carries white text at least this readably (WCAG AA, normal
# text); its logo, of these types and at most this large.
MIN_CONTRAST = 4.5
LOGO_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
              ".webp": "image/webp", ".svg": "image/svg+xml"}
LOGO_MAX_BYTES = 512 * 1024


def contrast_with_white(color: str) -> float:
    """The WCAG 2 contrast ratio of white against ``color`` (#rrggbb)."""
    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    luminance = 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
    return 1.05 / (luminance + 0.05)


# Where SMTP without TLS may go: a relay on this machine.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def _is_unspecified(item: str) -> bool:
    try:
        return ipaddress.ip_address(item).is_unspecified
    except ValueError:
        return False


def documentation() -> dict[str, str]:
    """Each setting's environment variable and its one-line description."""
    return {ENV_PREFIX + f.name.upper(): f.metadata["doc"] for f in dataclasses.fields(Settings)}


def _convert(name: str, hint: Any, raw: Any) -> Any:
    """Turn a raw TOML or environment value into the field's type, or fail loudly."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        if raw is None or raw == "":
            return None
        return _convert(name, inner[0], raw)
    try:
        if hint is Secret:
            if not isinstance(raw, str):
                raise TypeError("expected a string")
            return Secret(raw)
        if hint is bool:
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if hint is int:
            if isinstance(raw, bool):
                raise TypeError("expected an integer")
            return int(raw)
        if hint is float:
            if isinstance(raw, bool):
                raise TypeError("expected a number")
            return float(raw)
        if hint is Path:
            return Path(str(raw))
        if hint is str:
            if not isinstance(raw, str):
                raise TypeError("expected a string")
            return raw
        if origin is tuple:
            items = raw if isinstance(raw, list) else str(raw).split(",")
            return tuple(str(i).strip() for i in items if str(i).strip())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}: {raw!r} is not valid ({exc})") from None
    raise AssertionError(f"no conversion for {hint!r}")


def load_settings(
    environ: Mapping[str, str],
    config_file: Path | None = None,
    **overrides: Any,
) -> Settings:
    """Settings from a TOML file, then ``VIDEOASSIST_*`` variables, then ``overrides``."""
    hints = typing.get_type_hints(Settings)
    names = {f.name for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
        for key, raw in data.items():
            if key not in names:
                raise ConfigError(f"config file {config_file}: unknown setting {key!r}")
            values[key] = _convert(key, hints[key], raw)
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {ENV_PREFIX}{close[0].upper()}?)" if close else ""
            raise ConfigError(f"unknown setting {key}{hint}")
        values[name] = _convert(name, hints[name], raw)
    for name, value in overrides.items():
        if value is not None:
            values[name] = value
    return Settings(**values)
