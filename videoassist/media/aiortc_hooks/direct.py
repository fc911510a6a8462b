"""Receiving datagrams without the queue hop.

``receive_directly``: aioice's ``Connection.data_received`` puts every datagram in an
``asyncio.Queue`` (``_queue``) that the DTLS transport's task reads one at a time
(``_recv_next`` awaiting ``ice.recv()``): a task wake-up per packet. An instance
attribute of that name takes SRTP/SRTCP datagrams once the transport has its
``_rx_srtp`` and handles them at once, as ``_recv_next`` would (its counts
``__rx_bytes``/``__rx_packets``, ``_handle_rtp_data``/``_handle_rtcp_data``), stepping
the handler's coroutine by hand: it finishes without suspending unless it sends
through TURN, and then it goes on as a task, the datagrams behind it waiting their
turn. DTLS records (and anything while the queue is not empty) go through the queue
and the transport's task as before. It also takes the pair's
``StunProtocol.datagram_received`` (an instance attribute too), which tries to parse
every datagram as STUN and hands it on when that fails (a raised ValueError, 5 µs): a
datagram whose first byte says RTP or RTCP (128 to 191, RFC 7983; STUN's is 0 to 3)
goes to ``data_received`` without the try. A tapped receiver's common RTP packet goes
to its ``_FastReceive`` (``fast_receive``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pylibsrtp
from aioice import Connection as IceConnection
from aioice.ice import StunProtocol
from aiortc import rtp
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcicetransport import RTCIceTransport

from videoassist.media.aiortc_hooks.extensions import _MAP_IDS
from videoassist.media.aiortc_hooks.fast_receive import _FAST
from videoassist.media.aiortc_hooks.internals import _names
from videoassist.media.aiortc_hooks.sender import _udp_path

logger = logging.getLogger(__name__)

_DTLS_RX_BYTES = "_RTCDtlsTransport__rx_bytes"
_DTLS_RX_PACKETS = "_RTCDtlsTransport__rx_packets"
_NTP_EPOCH_MS = 2_208_988_800_000  # 1900-01-01 to 1970-01-01


def _receive_problems() -> list[str]:
    """What ``receive_directly`` relies on in aiortc and aioice."""
    problems = []
    for owner, method, name in [
            (RTCDtlsTransport, "__init__", _DTLS_RX_BYTES),
            (RTCDtlsTransport, "__init__", _DTLS_RX_PACKETS),
            (RTCDtlsTransport, "_recv_next", "_recv"),
            (RTCDtlsTransport, "_recv_next", "_rx_srtp"),
            (RTCDtlsTransport, "_recv_next", "unprotect"),
            (RTCDtlsTransport, "_recv_next", "unprotect_rtcp"),
            (RTCDtlsTransport, "_recv_next", "_handle_rtp_data"),
            (RTCDtlsTransport, "_recv_next", "_handle_rtcp_data"),
            (RTCIceTransport, "__init__", "_connection"),
            (IceConnection, "data_received", "_queue"),
            (IceConnection, "recvfrom", "_queue"),
            (StunProtocol, "datagram_received", "data_received"),
            (StunProtocol, "datagram_received", "parse_message"),
            (StunProtocol, "datagram_received", "local_candidate")]:
        if name not in _names(getattr(owner, method, None)):
            problems.append(f"{owner.__name__}.{method} no longer uses {name}")
    return problems


class _Resumed:
    """The rest of a coroutine stepped by hand that suspended on ``yielded``, to await
    in a task (which then waits for what the coroutine waits for, as ``await`` would)."""

    def __init__(self, coro: Any, yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Any:
        coro, value = self._coro, self._yielded
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # passed on to the coroutine
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


class _DirectReceiver:
    """Takes the place of aioice's ``Connection.data_received`` (see the module
    docstring, ``receive_directly``)."""

    def __init__(self, dtls: Any, connection: Any) -> None:
        self._dtls = dtls
        self._queue: asyncio.Queue[Any] = connection._queue
        self._queued: Callable[[bytes, int], None] = connection.data_received
        # While a handler is suspended (it went on as a task), the datagrams behind it.
        self._pending: list[bytes] | None = None
        self._task: asyncio.Task[None] | None = None
        self.direct = 0  # datagrams handled here (tests)
        self.at_once = 0  # RTP packets a tapped receiver's _FastReceive took (tests)
        self.demux: _Demux | None = None

    def __call__(self, data: bytes, component: int) -> None:
        dtls = self._dtls
        if (not data or not 127 < data[0] < 192 or dtls._rx_srtp is None
                or dtls._state != DtlsState.CONNECTED):
            self._queued(data, component)
        elif self._pending is not None:
            self._pending.append(data)
        elif not self._queue.empty():  # what came earlier goes first
            self._queued(data, component)
        else:
            self.direct += 1
            if rtp.is_rtcp(data):
                self._step(self._handle(data))
            else:
                self._rtp(data)

    def _step(self, coro: Any) -> None:
        """Run a handler's coroutine here; if it suspends, it goes on as a task and the
        datagrams behind it wait their turn."""
        try:
            yielded = coro.send(None)
        except StopIteration:
            return
        except Exception:
            logger.exception("handling a datagram failed")
            return
        self._pending = []
        self._task = asyncio.get_running_loop().create_task(self._finish(coro, yielded))

    def _count(self, data: bytes) -> int:
        """Count a datagram as ``_recv_next`` does; its arrival time as
        ``clock.current_ms()`` gives it (ms since 1900), without its datetimes."""
        dtls = self._dtls
        setattr(dtls, _DTLS_RX_BYTES, getattr(dtls, _DTLS_RX_BYTES) + len(data))
        setattr(dtls, _DTLS_RX_PACKETS, getattr(dtls, _DTLS_RX_PACKETS) + 1)
        return int(time.time() * 1000) + _NTP_EPOCH_MS

    def _rtp(self, data: bytes) -> None:
        """An SRTP datagram: a tapped receiver's common packet at once
        (``_FastReceive``), anything else through the transport's ``_handle_rtp_data``."""
        dtls = self._dtls
        arrival_time_ms = self._count(data)
        try:
            plain = dtls._rx_srtp.unprotect(data)
        except pylibsrtp.Error as exc:
            logger.debug("SRTP unprotect failed: %s", exc)
            return
        try:
            if self._at_once(plain, arrival_time_ms):
                return
        except Exception:
            logger.exception("handling an RTP packet failed")
            return
        self._step(dtls._handle_rtp_data(plain, arrival_time_ms=arrival_time_ms))

    def _at_once(self, plain: bytes, arrival_time_ms: int) -> bool:
        if len(plain) < 12 or plain[0] >> 6 != 2:
            return False
        ssrc = int.from_bytes(plain[8:12], "big")
        dtls = self._dtls
        router = dtls._rtp_router
        receiver = router.ssrc_table.get(ssrc)  # as RtpRouter.route_rtp, known SSRCs
        if receiver is None:
            return False
        handler = receiver.__dict__.get(_FAST)
        if (handler is None
                or receiver not in router.payload_type_table.get(plain[1] & 0x7F, ())):
            return False
        ids = getattr(dtls._rtp_header_extensions_map, _MAP_IDS)
        handled: bool = handler(plain, arrival_time_ms, ssrc, ids.abs_send_time)
        if handled:
            self.at_once += 1
        return handled

    async def _handle(self, data: bytes) -> None:
        """``RTCDtlsTransport._recv_next`` for one SRTP or SRTCP datagram."""
        dtls = self._dtls
        arrival_time_ms = self._count(data)
        try:
            if rtp.is_rtcp(data):
                await dtls._handle_rtcp_data(dtls._rx_srtp.unprotect_rtcp(data))
            else:
                await dtls._handle_rtp_data(dtls._rx_srtp.unprotect(data),
                                            arrival_time_ms=arrival_time_ms)
        except pylibsrtp.Error as exc:
            logger.debug("SRTP unprotect failed: %s", exc)

    async def _finish(self, coro: Any, yielded: Any) -> None:
        try:
            try:
                await _Resumed(coro, yielded)
            except Exception:
                logger.exception("handling a datagram failed")
            while self._pending:
                data = self._pending.pop(0)
                self.direct += 1
                try:
                    await self._handle(data)
                except Exception:
                    logger.exception("handling a datagram failed")
        finally:
            self._pending = None
            self._task = None


class _Demux:
    """Takes the place of the ICE pair's ``StunProtocol.datagram_received`` (see the
    module docstring, ``receive_directly``)."""

    def __init__(self, protocol: Any, connection: Any) -> None:
        self._stun: Callable[[bytes, Any], None] = protocol.datagram_received
        self._connection = connection
        self._component: int = protocol.local_candidate.component
        self.media = 0  # datagrams handed on without the STUN parse (tests)

    def __call__(self, data: bytes, addr: Any) -> None:
        if data and 127 < data[0] < 192:
            self.media += 1
            self._connection.data_received(data, self._component)
        else:
            self._stun(data, addr)


def receive_directly(dtls: RTCDtlsTransport) -> _DirectReceiver | None:
    """Hand this connected DTLS transport its SRTP and SRTCP datagrams straight from
    aioice's protocol, without the queue and its task (see the module docstring).
    Only over a plain UDP ICE pair (through TURN, handling a packet may wait on the
    relay: the queue as before); None then. Call again: the same receiver."""
    connection: Any = dtls.transport._connection
    installed = connection.__dict__.get("data_received")
    if isinstance(installed, _DirectReceiver):
        return installed
    if _udp_path(dtls) is None:
        return None
    receiver = _DirectReceiver(dtls, connection)
    connection.data_received = receiver
    protocol = connection._nominated[1].protocol
    receiver.demux = protocol.datagram_received = _Demux(protocol, connection)
    return receiver
