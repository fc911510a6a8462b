"""The tapped receiver's jitter buffer: ``tap_receiver`` swaps the receiver's
``__jitter_buffer`` for a ``PromptJitterBuffer``, which hands over a video frame as
soon as its last packet (RTP marker bit) is in, and audio packet by packet. aiortc's
own waits for the next frame's first packet (one frame interval, 33 ms at 30 fps) and
holds four audio packets (80 ms): right before a decoder, too slow for a relay whose
viewers have jitter buffers of their own. Ours also gives up on a video frame that a
lost packet has held back for ``RETRANSMISSION_WAIT_S`` (aiortc's waits until its 512
packets overflow, seconds at a phone's bitrate), and hands over at once every frame
that is complete, not one per packet received; the tap reports frames given up on
(``on_skip``). A retransmission that comes after its frame was given up on is dropped
(``LATE_PACKETS``), where aiortc's buffer would empty itself."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add, uint16_gt

# How long a video frame may wait for a lost packet's retransmission. aiortc asks for
# one (NACK) as soon as a later packet shows the gap, once, and a publisher resends it
# from its history: it is here one round trip later, well within this on a fixed or
# 4G line (RTT 20-100 ms) with room for the publisher's pacer. A viewer cannot ask the
# server for what the server never got, so this is the only chance of a retransmission;
# past it, waiting costs more than the keyframe that replaces the frames.
RETRANSMISSION_WAIT_S = 0.15
# A packet this far behind the oldest one kept is a retransmission that came after
# its frame was given up on: dropped. aiortc's own buffer takes a packet over 100
# behind as the stream starting again and empties itself (losing the keyframe that
# was on its way); at 250 packets a second a retransmission on a 400 ms round trip is
# that late. Further back than this is still treated as a restart.
LATE_PACKETS = 500


class PromptFrame(JitterFrame):
    """A frame as ``PromptJitterBuffer`` hands it over. The receiver maps only the
    returned frame's timestamp (to start at 0, unwrapped): the tap maps the others the
    same way, from ``rtp_timestamp``."""

    def __init__(self, data: bytes, timestamp: int, skipped: int = 0,
                 payloads: tuple[bytes, ...] = ()) -> None:
        super().__init__(data=data, timestamp=timestamp)
        self.rtp_timestamp = timestamp
        self.skipped = skipped  # frames given up on just before this one
        self.following: list[PromptFrame] = []  # complete too, handed over after it
        self.payloads = payloads  # the RTP payloads it came in, in order (no padding)


class PromptJitterBuffer(JitterBuffer):
    """aiortc's buffer (ordering, capacity, PLI on overflow), with frames handed over
    as soon as they are complete: a video frame at its marker bit, audio at once.

    A video frame that a gap (a lost packet) holds back for ``wait_s``, measured from
    the first packet after the gap, is given up on, with anything else incomplete up to
    the next frame start: a packet whose predecessor is here and ends a frame. The next
    frame handed over counts them in ``skipped``; it may not decode without them.

    ``add`` (inherited) stores the packet and asks ``_remove_frame`` for a frame; it
    drops packets itself when it overflows or meets a packet far out of order, which
    shows as the oldest packet moving without us (counted as one frame given up).
    """

    def __init__(self, capacity: int, prefetch: int = 0, is_video: bool = False,
                 wait_s: float = RETRANSMISSION_WAIT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(capacity, prefetch, is_video)
        self._wait_s = wait_s
        self._clock = clock
        self._arrived = [0.0] * capacity  # when each stored packet came
        self._newest: int | None = None   # the highest sequence number stored
        self._expected_origin: int | None = None  # where our last call left _origin
        self._origin_is_start = True      # _origin is known to begin a frame
        self._skipped = 0                 # given up on, not yet told with a frame
        self._held_by_gap = False         # see _complete_frame

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        origin = self._origin
        if origin is not None and 0 < uint16_add(origin, -packet.sequence_number) <= LATE_PACKETS:
            return False, None  # too late (see LATE_PACKETS)
        return super().add(packet)

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        origin = self._origin
        if origin is None:
            return None
        if not self._is_video:  # one Opus packet is one frame; a gap is not waited for
            packet = self._packets[sequence_number % self._capacity]
            if packet is None:
                return None
            self.remove(uint16_add(sequence_number, -origin) + 1)
            return PromptFrame(packet._data, packet.timestamp,  # type: ignore[attr-defined]
                               payloads=(packet.payload,))
        self._arrived[sequence_number % self._capacity] = self._clock()
        moved = self._expected_origin is not None and origin != self._expected_origin
        if moved:  # aiortc's add dropped packets: we cannot tell where a frame starts
            self._skipped += 1
            self._origin_is_start = False
        if moved or self._newest is None or uint16_gt(sequence_number, self._newest):
            self._newest = sequence_number
        frames: list[PromptFrame] = []
        while True:
            frame = self._complete_frame()
            if frame is None and not (self._held_by_gap and self._give_up()):
                break
            if frame is not None:
                frames.append(frame)
        self._expected_origin = self._origin
        if not frames:
            return None
        frames[0].following = frames[1:]
        return frames[0]

    def _slot(self, offset: int) -> Any:
        """The packet ``offset`` places after the oldest, or None."""
        assert self._origin is not None
        return self._packets[(self._origin + offset) % self._capacity]

    def _arrival(self, offset: int) -> float:
        assert self._origin is not None
        return self._arrived[(self._origin + offset) % self._capacity]

    def _ahead(self) -> int:
        """How many places from the oldest packet to the newest; -1 when empty."""
        assert self._origin is not None and self._newest is not None
        ahead = uint16_add(self._newest, -self._origin)
        return ahead if ahead < self._capacity else -1

    def _complete_frame(self) -> PromptFrame | None:
        """Take the oldest frame if it is all here (and known to start where it does).

        When not, ``_held_by_gap`` says whether ``_give_up`` has anything to look at:
        a missing packet with others after it, or no known frame start. Packets in
        order, the common case, never need it, and this runs for every packet."""
        self._held_by_gap = True
        if not self._origin_is_start:
            return None
        packets: list[Any] = []
        stored, capacity, origin = self._packets, self._capacity, self._origin
        assert origin is not None
        for offset in range(capacity):
            packet = stored[(origin + offset) % capacity]
            if packet is None:  # a gap, or the frame's end is not here yet
                self._held_by_gap = offset < self._ahead()
                return None
            if packets and packet.timestamp != packets[0].timestamp:
                break  # the next frame began: this one is complete though unmarked
            packets.append(packet)
            if packet.marker:
                break
        else:
            return None
        self.remove(len(packets))
        frame = PromptFrame(b"".join([p._data for p in packets]), packets[0].timestamp,
                            self._skipped, tuple([p.payload for p in packets if p.payload]))
        self._skipped = 0
        return frame

    def _give_up(self) -> bool:
        """Drop the oldest frame if a gap has held it back too long; True if dropped."""
        ahead = self._ahead()
        if ahead < 0:
            return False
        first = 1  # where a frame start may be, as an offset from the oldest packet
        if self._origin_is_start:
            gap = next((offset for offset in range(ahead) if self._slot(offset) is None),
                       None)
            if gap is None:  # no gap: the frame's end is still on its way
                return False
            revealed = next((offset for offset in range(gap + 1, ahead + 1)
                             if self._slot(offset) is not None), None)
            if revealed is None or self._clock() - self._arrival(revealed) < self._wait_s:
                return False
            first = gap + 1
        start = next((offset for offset in range(first, ahead + 1)
                      if self._starts_frame(offset)), None)
        if start is None:  # wait for a frame start to come
            return False
        timestamps = {packet.timestamp for packet in map(self._slot, range(start))
                      if packet is not None}
        self._skipped += max(1, len(timestamps))
        self.remove(start)
        self._origin_is_start = True
        return True

    def _starts_frame(self, offset: int) -> bool:
        packet, before = self._slot(offset), self._slot(offset - 1)
        return (packet is not None and before is not None
                and (bool(before.marker) or before.timestamp != packet.timestamp))
