"""Prometheus metrics of one server (``GET /metrics``), all named ``videoassist_*``.

One registry per application, never the library's global one. Two kinds of source:

- events counted as they happen, through the library (WebSocket connections opened,
  errors, snapshot latency): rare enough per second for that;
- live state and the media plane's running totals, read when Prometheus scrapes
  (calls and participants now, peer connections and their connect timeouts, forwarded
  frames and bytes, keyframe requests, skipped frames, re-encoded streams): the media
  path adds plain integers per frame (``videoassist.media.counters``) and this module
  never touches it. So is the CPU time of the event loop's thread, from the kernel's
  clock for that thread: its rate is how busy the loop is, where all signalling and
  forwarding run (the process's CPU also counts decoder and executor threads).

Labels are from small fixed sets (roles, media kinds, error codes, connection states,
HTTP statuses): never a name, a job title, an address or an id.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.process_collector import ProcessCollector

from videoassist.media.counters import KINDS, TRACKING_DELAY_BUCKETS, MediaCounters

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Seconds from a snapshot.request to the snapshot stored: 150 ms is the target.
SNAPSHOT_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
# Seconds the event loop wakes late (``loop.watch_lag``): a few ms is normal; at 0.1 s
# a call's packets wait visibly; from 1 s the log says so.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Calls(Protocol):
    """What the metrics read of calls in progress (``signalling.hub.Hub``)."""

    calls_started: int
    joined: dict[str, int]

    @property
    def rooms(self) -> Mapping[int, object]: ...

    def participants_by_role(self) -> dict[str, int]: ...


class Media(Protocol):
    """What the metrics read of the media plane (``media.router.MediaRouter``)."""

    counters: MediaCounters

    def connection_states(self) -> dict[str, int]: ...


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.websocket_connections = Gauge(
            "videoassist_websocket_connections", "Signalling WebSockets open now.", registry=r)
        self.websocket_opened = Counter(
            "videoassist_websocket_connections_opened",
            "Signalling WebSockets opened (handshake accepted).", registry=r)
        self.websocket_closes = Counter(
            "videoassist_websocket_closes",
            "Signalling WebSockets closed, by the reason the server gave (client: the "
            "client closed or vanished).", ["reason"], registry=r)
        self.websocket_errors = Counter(
            "videoassist_websocket_errors",
            "Signalling error messages answering a client's message or refusing its "
            "auth, by code (docs/protocol.md).",
            ["code"], registry=r)
        self.http_errors = Counter(
            "videoassist_http_errors",
            "HTTP error responses, by status and error code.", ["status", "code"], registry=r)
        self.unhandled_errors = Counter(
            "videoassist_unhandled_errors",
            "Exceptions no handler expected (bugs; each one is logged), by where they "
            "happened.", ["where"], registry=r)
        self.snapshot_seconds = Histogram(
            "videoassist_snapshot_seconds",
            "Seconds from a snapshot.request to the snapshot stored.",
            buckets=SNAPSHOT_BUCKETS, registry=r)
        self.event_loop_lag = Histogram(
            "videoassist_event_loop_lag_seconds",
            "How late the event loop wakes from a 0.25 s sleep, measured every tick: "
            "the time it could run nothing (long work of its own, a blocking call, or "
            "a machine without a free core).",
            buckets=LAG_BUCKETS, registry=r)
        self.change_notifications = Counter(
            "videoassist_change_notifications",
            "Change notifications the database sent this node (PostgreSQL), by the table "
            "of the row that changed.", ["table"], registry=r)
        self.change_listener_up = Gauge(
            "videoassist_change_listener_up",
            "1 while this node's notification connection to the database is up "
            "(PostgreSQL), else 0 (SQLite, or lost: the poll covers).", registry=r)
        self.change_listener_failures = Counter(
            "videoassist_change_listener_failures",
            "The notification connection lost ('lost'), or a try to open it that failed "
            "('connect').", ["reason"], registry=r)
        ProcessCollector(namespace="videoassist", registry=r)
        for reason in ("lost", "connect"):
            self.change_listener_failures.labels(reason)
        for where in ("http", "websocket", "snapshot", "freeze"):
            self.unhandled_errors.labels(where)  # present at 0 from the start

    def watch(self, calls: Calls, media: Media, draining: list[bool]) -> None:
        """Read the live state from now on (once the hub and the media plane exist).
        Called on the event loop's thread, whose CPU time it reports from then on."""
        self.registry.register(_Live(calls, media, draining, threading.get_ident()))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _Live:
    """Reads calls and the media plane at scrape time."""

    def __init__(self, calls: Calls, media: Media, draining: list[bool],
                 loop_thread: int) -> None:
        self._calls = calls
        self._media = media
        self._draining = draining
        # The CPU-time clock of the loop's thread, readable from any thread (Linux).
        self._loop_clock = time.pthread_getcpuclockid(loop_thread)

    def collect(self) -> Iterator[Metric]:
        calls, counters = self._calls, self._media.counters
        yield CounterMetricFamily("videoassist_event_loop_cpu_seconds",
                                  "CPU seconds of the thread that runs the event loop, "
                                  "user and system: its rate is the share of the time the "
                                  "loop was busy.",
                                  value=time.clock_gettime(self._loop_clock))
        yield GaugeMetricFamily("videoassist_draining",
                                "1 while the server drains before stopping, else 0.",
                                value=int(self._draining[0]))
        yield GaugeMetricFamily("videoassist_calls", "Calls in progress.",
                                value=len(calls.rooms))
        yield CounterMetricFamily("videoassist_calls_started",
                                  "Calls started (a job's first participant joined).",
                                  value=calls.calls_started)
        participants = GaugeMetricFamily("videoassist_participants",
                                         "Connections in calls now, by role.",
                                         labels=["role"])
        now = calls.participants_by_role()
        joined = CounterMetricFamily("videoassist_participants_joined",
                                     "Joins to calls, by role.", labels=["role"])
        for role in sorted(set(now) | set(calls.joined)):
            participants.add_metric([role], now.get(role, 0))
            joined.add_metric([role], calls.joined.get(role, 0))
        yield participants
        yield joined

        states = GaugeMetricFamily("videoassist_peer_connections",
                                   "Media peer connections with clients now, by state.",
                                   labels=["state"])
        for state, count in sorted(self._media.connection_states().items()):
            states.add_metric([state], count)
        yield states
        yield CounterMetricFamily("videoassist_peer_connections_opened",
                                  "Media peer connections opened with clients.",
                                  value=counters.peer_connections)
        yield CounterMetricFamily("videoassist_peer_connections_timed_out",
                                  "Media peer connections closed because they were not "
                                  "connected in time after the client's first offer.",
                                  value=counters.connect_timeouts)
        yield CounterMetricFamily("videoassist_peer_connections_refused",
                                  "Media peer connections refused because every port of "
                                  "VIDEOASSIST_MEDIA_PORTS was in use.",
                                  value=counters.ports_refused)
        yield CounterMetricFamily("videoassist_peer_connections_restarted",
                                  "Media sessions replaced by a new one, on a client's new "
                                  "peer connection (docs/protocol.md, Coming back).",
                                  value=counters.media_restarts)
        yield CounterMetricFamily("videoassist_ice_candidates_refused",
                                  "Clients' ICE candidates the server's ICE agent was kept "
                                  "from (VIDEOASSIST_ICE_ALLOWED_PEERS).",
                                  value=counters.candidates_refused)
        flows = {
            "received_frames": ("Encoded frames received from publishers.",
                                counters.received, "frames"),
            "received_bytes": ("Bytes of encoded frames received from publishers.",
                               counters.received, "bytes"),
            "forwarded_frames": ("Encoded frames forwarded to viewers without re-encoding "
                                 "(an audio frame is one RTP packet, a video frame one or "
                                 "more).", counters.forwarded, "frames"),
            "forwarded_bytes": ("Bytes of encoded frames forwarded to viewers.",
                                counters.forwarded, "bytes"),
            "forwarded_dropped_frames": ("Frames a slow viewer's queue dropped.",
                                         counters.forwarded, "dropped"),
        }
        for name, (text, by_kind, attribute) in flows.items():
            family = CounterMetricFamily(f"videoassist_{name}", text, labels=["kind"])
            for kind in KINDS:
                family.add_metric([kind], getattr(by_kind[kind], attribute))
            yield family
        yield CounterMetricFamily("videoassist_keyframe_requests",
                                  "Keyframe requests (PLI) sent to publishers.",
                                  value=counters.keyframe_requests)
        yield CounterMetricFamily("videoassist_skipped_frames",
                                  "Video frames the server gave up on: a lost packet was "
                                  "not retransmitted in time. Their viewers wait for the "
                                  "next keyframe, which is requested.",
                                  value=counters.skipped_frames)
        yield CounterMetricFamily("videoassist_untracked_pictures",
                                  "Frames of videos with pinned shapes decoded while the "
                                  "call's tracking thread was behind, and not tracked.",
                                  value=counters.untracked_pictures)
        cumulative = list(itertools.accumulate(counters.tracking_delays))
        yield HistogramMetricFamily(
            "videoassist_tracking_delay_seconds",
            "From a video frame's arrival to where its pinned shapes are being sent "
            "(one per tracked picture).",
            buckets=[*((str(b), c) for b, c in zip(TRACKING_DELAY_BUCKETS, cumulative,
                                                   strict=False)),
                     ("+Inf", cumulative[-1])],
            sum_value=counters.tracking_delay_sum)
        yield CounterMetricFamily("videoassist_transcoded_streams",
                                  "Viewers given re-encoded video because they share no "
                                  "codec with the publisher (the fallback).",
                                  value=counters.transcoded_streams)
