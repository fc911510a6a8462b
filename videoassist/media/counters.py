"""Running totals of the media plane since the server started, for metrics.

Plain integers: the hot path adds to them once per frame (never per RTP packet, and
never through a metrics library), and a scrape reads them. They live on the router,
so they outlive the sessions, publications and tracks that feed them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("audio", "video")
# The upper bounds (seconds) of the tracking delay's histogram buckets: from a frame's
# arrival to where its pinned shapes are going out (issue 23's target: 50 ms at p95).
TRACKING_DELAY_BUCKETS = (0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.2, 0.5,
                          1.0)


@dataclass
class Flow:
    """Encoded frames of one kind: one audio frame is one Opus packet, one video frame
    the one or more RTP packets aiortc cuts it into."""

    frames: int = 0
    bytes: int = 0
    dropped: int = 0  # frames a viewer's queue dropped (slow viewer, waiting for a keyframe)


@dataclass
class MediaCounters:
    received: dict[str, Flow] = field(default_factory=lambda: {k: Flow() for k in KINDS})
    forwarded: dict[str, Flow] = field(default_factory=lambda: {k: Flow() for k in KINDS})
    keyframe_requests: int = 0   # sent to publishers (PLI), after coalescing
    skipped_frames: int = 0      # video frames given up on: a packet lost, not resent in time
    transcoded_streams: int = 0  # viewers given re-encoded video (no shared codec)
    peer_connections: int = 0    # RTCPeerConnections opened with clients
    connect_timeouts: int = 0    # of those, closed unconnected CONNECT_TIMEOUT_S after the offer
    ports_refused: int = 0       # of those, closed: every port of MEDIA_PORTS was in use
    candidates_refused: int = 0  # remote ICE candidates the candidate policy kept out
    media_restarts: int = 0      # sessions replaced by one on a new peer connection
    tracked_pictures: int = 0    # pictures the pinned shapes were followed in (issue 23)
    untracked_pictures: int = 0  # decoded but not tracked: the tracking thread behind
    # The tracking delay, by TRACKING_DELAY_BUCKETS (the last: above them), and its sum.
    tracking_delays: list[int] = field(
        default_factory=lambda: [0] * (len(TRACKING_DELAY_BUCKETS) + 1))
    tracking_delay_sum: float = 0.0

    def tracking_delay(self, seconds: float) -> None:
        """One tracked picture's delay, from its frame's arrival to its report."""
        self.tracked_pictures += 1
        self.tracking_delay_sum += seconds
        self.tracking_delays[next((i for i, bound in enumerate(TRACKING_DELAY_BUCKETS)
                                   if seconds <= bound), len(TRACKING_DELAY_BUCKETS))] += 1
