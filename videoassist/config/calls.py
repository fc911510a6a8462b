"""The signalling socket and the calls: the way in, message sizes and rates, stills,
how many may join and how often, how long someone lost stays away, and how soon a
change made elsewhere reaches a call."""

from __future__ import annotations

from dataclasses import dataclass, field

from videoassist.config.values import POSITIVE, doc, within


@dataclass(frozen=True, kw_only=True)
class CallSettings:
    """The signalling socket and the calls."""

    ws_auth_timeout_s: float = field(
        default=5.0, metadata=doc("Seconds a new WebSocket has to send its auth message.",
                                   bounds=POSITIVE)
    )
    ws_preauth_max_messages: int = field(
        default=5,
        metadata=doc("Messages other than a good auth a new WebSocket may send before "
                      "it is closed (4400).",
                      bounds=within(0, 1000)),
    )
    ws_max_message_bytes: int = field(
        default=64 * 1024, metadata=doc("Largest signalling message accepted.",
                                         bounds=within(1024, 1024 * 1024))
    )
    still_max_bytes: int = field(
        default=256 * 1024,
        metadata=doc("Largest camera still (binary frame: header and JPEG) a participant "
                      "may send in stills mode.",
                      bounds=within(4096, 1024 * 1024 - 1024)),
    )
    still_min_interval_s: float = field(
        default=0.5,
        metadata=doc("Seconds between two stills of one sender on average: two may come "
                      "at once, then one each interval; a still past that is refused.",
                      bounds=within(0, 60, "0..60 seconds")),
    )
    ws_heartbeat_s: float = field(
        default=15.0, metadata=doc("WebSocket ping interval; a peer missing a pong is closed.",
                                    bounds=POSITIVE)
    )
    ws_rate_per_s: float = field(
        default=30.0, metadata=doc("Sustained signalling messages per second per connection.",
                                    bounds=POSITIVE)
    )
    ws_rate_burst: int = field(
        default=120, metadata=doc("Signalling messages a connection may send in a burst.",
                                   bounds=POSITIVE)
    )
    ws_outbox_messages: int = field(
        default=256,
        metadata=doc("Messages waiting to be written to one client at most; when full, "
                      "superseded ones (pointer moves...) are dropped, and a client still "
                      "that far behind is closed (4409).",
                      bounds=within(8, 100_000)),
    )
    call_max_connections_per_link: int = field(
        default=3,
        metadata=doc("Connections to its call one join link's participant token may "
                      "hold at once; the next is refused (4429).",
                      bounds=within(1, 100)),
    )
    call_max_connections_per_user: int = field(
        default=4,
        metadata=doc("Connections to calls one staff user may hold at once, over every "
                      "call; the next is refused (4429).",
                      bounds=within(1, 1000)),
    )
    call_max_participants: int = field(
        default=16,
        metadata=doc("Participants (connections) one call holds at once; the next join "
                      "is refused (4429 call_full).",
                      bounds=within(2, 1000)),
    )
    call_joins_per_min: int = field(
        default=30,
        metadata=doc("Joins to calls one join link's token or one staff user may make "
                      "a minute (a minute's worth at once); the next is refused (4429).",
                      bounds=within(1, 10_000)),
    )
    call_away_s: float = field(
        default=120.0,
        metadata=doc("Seconds a participant whose connection was lost (not ended on "
                      "purpose) stays in its call, away, for the same person to come "
                      "back to; then it leaves. 0: it leaves at once.",
                      bounds=within(0, 3600, "0..3600 seconds")),
    )
    chat_bytes_per_min: int = field(
        default=32 * 1024,
        metadata=doc("Bytes of chat messages one sender may send to a call a minute, "
                      "over all its connections; past it they are refused.",
                      bounds=within(10_000, None)),
    )
    annotation_bytes_per_min: int = field(
        default=1024 * 1024,
        metadata=doc("Bytes of annotation messages one sender may send to a call a "
                      "minute, over all its connections; past it they are refused.",
                      bounds=within(10_000, None)),
    )
    revocation_poll_s: float = field(
        default=0.25,
        metadata=doc(
            "How often the server looks at the database for changes made by the CLI or "
            "another process to who may stay in a call (users disabled or signed out, "
            "links withdrawn, jobs closed): 0..1 on SQLite. On PostgreSQL the database "
            "notifies every node of them at once and this poll is a safety net, up to "
            "3600 (while a node hears no notifications it polls every 0.25 s)."
        ),
    )
