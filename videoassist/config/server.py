"""Where the server keeps its data and how long, where it listens, how it logs and
drains, and how it runs as a node of a fleet."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from videoassist.config.values import ENV_PREFIX, POSITIVE, Secret, doc, within
from videoassist.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """Data, listening, running and the fleet."""

    data_dir: Path = field(
        default=Path("data"),
        metadata=doc("Directory for the SQLite database and generated key files."),
    )
    database_url: Secret | None = field(
        default=None,
        metadata=doc(
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE: keep the data in this PostgreSQL "
            "database instead of SQLite in DATA_DIR. Empty: SQLite."
        ),
    )
    database_listen_url: Secret | None = field(
        default=None,
        metadata=doc(
            "postgresql://... of the same database, for the one connection per node that "
            "LISTENs for changes (users disabled, jobs closed, links withdrawn) when "
            "DATABASE_URL goes through a pooler that cannot carry LISTEN (PgBouncer in "
            "transaction mode). Empty: DATABASE_URL."
        ),
    )
    retention_days: int = field(
        default=0,
        metadata=doc(
            "Days to keep a job's snapshots, chat and events (a job may override it); "
            "0: keep them until the job is deleted.",
            bounds=within(0, 100 * 365, "0 (keep) or 1..36500 days")
        ),
    )
    retention_check_s: float = field(
        default=3600.0, metadata=doc("How often the server purges what retention has expired.",
                                      bounds=POSITIVE)
    )
    host: str = field(default="127.0.0.1", metadata=doc("Address the HTTP server binds."))
    port: int = field(default=8080, metadata=doc("TCP port the HTTP server binds (0: any free).",
                                                  bounds=within(0, 65535)))
    workers: int = field(
        default=0,
        metadata=doc(
            "Worker processes serving: each a whole server holding its own calls, all on "
            "HOST:PORT. 0: one per core this process may run on; 1: one process, no "
            "supervisor.",
            bounds=within(0, 1024, "0 (one per core) or 1..1024")
        ),
    )
    public_url: str = field(
        default="",
        metadata=doc(
            "URL people reach the server at, used in links. Default: http://HOST:PORT."
        ),
    )
    allowed_origins: tuple[str, ...] = field(
        default=(),
        metadata=doc("Origins allowed to open the signalling WebSocket. Default: public URL's."),
    )
    http_idle_timeout_s: float = field(
        default=75.0,
        metadata=doc(
            "Seconds a connection has to send a whole request head after it opens or "
            "after its last response before it is closed (idle, or slow headers).",
            bounds=within(1, 3600)
        ),
    )
    access_log: bool = field(
        default=True, metadata=doc("Write an access log line per request (path, no query).")
    )
    log_format: str = field(
        default="text",
        metadata=doc(
            "text: one line per event, as TIME LEVEL LOGGER: MESSAGE; json: one JSON object "
            "per line (time, level, logger, message, extra fields, exception). Either way "
            "a traceback stays on its event's line."
        ),
    )
    drain_timeout_s: float = field(
        default=3600.0,
        metadata=doc(
            "On SIGTERM or SIGINT the server drains: /readyz answers 503, new joins are "
            "refused, calls in progress go on. It exits when the last one ends, or after "
            "this many seconds, closing those left (0: at once). Give the service manager "
            "a longer stop timeout.",
            bounds=within(0, 7 * 24 * 3600, "0..604800 seconds")
        ),
    )
    metrics_token: Secret | None = field(
        default=None,
        metadata=doc(
            "Bearer token GET /metrics requires. Empty: /metrics answers anyone who reaches "
            "the port (keep it off the public proxy)."
        ),
    )
    node_timeout_s: float = field(
        default=30.0,
        metadata=doc(
            "A node (server process) not heard from for this long is taken for dead: the "
            "other nodes on the database end its calls, and the next join places them "
            "again. Nodes heartbeat every second.",
            bounds=within(2, 3600, "2..3600 seconds")
        ),
    )
    internal_host: str = field(
        default="127.0.0.1",
        metadata=doc(
            "Address of this node's internal listener, where the installation's other "
            "nodes carry WebSockets to the calls it holds: one they reach, never public."
        ),
    )
    internal_port: int = field(
        default=0, metadata=doc("TCP port of the internal listener (0: any free).",
                                 bounds=within(0, 65535))
    )
    node_secret: Secret | None = field(
        default=None,
        metadata=doc(
            "What nodes show each other on their internal listeners; the same on every "
            "node of a fleet. Default: generated into DATA_DIR/node-secret."
        ),
    )

    def _check_urls(self) -> None:
        """The public URL (default: http://HOST:PORT) and the origins (default: its
        own), checked and written as compared: without a trailing slash."""
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

    def _check_server(self) -> None:
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"{ENV_PREFIX}LOG_FORMAT must be text or json, "
                              f"got {self.log_format!r}")
        if self.metrics_token is not None and len(self.metrics_token.reveal()) < 16:
            raise ConfigError(f"{ENV_PREFIX}METRICS_TOKEN must be at least 16 characters")
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

    @property
    def public_origin(self) -> str:
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def worker_count(self) -> int:
        """How many workers serve: ``workers``, or one per core this process may use."""
        return self.workers or len(os.sched_getaffinity(0))

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
