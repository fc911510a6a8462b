#!/usr/bin/env python3
"""Where the server's CPU goes while it forwards: ``scripts/bench.py relay`` with
py-spy sampling the server over the measured window, each sample filed under a step
of a packet's way through the server (docs/performance.md, "Where a forwarded
packet's CPU goes").

    python scripts/packet_profile.py --py-spy /tmp/spy/bin/py-spy --streams 6 --out run

py-spy is not in the lock: install it in a throwaway environment
(``python3 -m venv /tmp/spy && /tmp/spy/bin/pip install py-spy``). It samples from
outside the process (``--nonblocking``, ``--gil``: only a thread holding the GIL,
which is the event loop's or, rarely, the database's), so the server runs at its own
speed, unlike under ``bench.py --profile``'s cProfile, which doubles its CPU. Writes
RUN.json (the benchmark's report), RUN.spy (py-spy's raw stacks) and prints the table;
``--classify RUN.spy`` prints the table of an earlier run.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# (step, substrings of a sample's stack, any of which files it there), tried in order
# within the part of the way that the sample's stack shows (sending, receiving).
SENDING = [
    ("SRTP protect", ["protect ("]),
    ("UDP send (DTLS, ICE, socket)", ["_send_rtp", "send_data", "sendto", "PacketSender.send (",
                                      "send_udp ("]),
    ("RTP packets: objects, headers", ["serialize", "RtpPacket.__init__", "HeaderExtensions",
                                       "current_ntp_time", "rtp.py", "_forwarded (",
                                       "_extensions", "_with_send_time", "ntp_now"]),
    ("VP8: packetize (aiortc) or renumber (ours)", ["pack (", "_packetize", "renumber_vp8",
                                                    "vpx.py"]),
    ("our tracks and queues, frame out", [".recv (", "forward.py", "slot.py", "queues.py"]),
]
RECEIVING = [
    ("SRTP unprotect", ["unprotect"]),
    ("RTP parse", ["RtpPacket.parse", "unpack_header_extensions", "HeaderExtensionsMap.get"]),
    ("bandwidth estimate (REMB)", ["rate.py", "EstimateRelay", "_send_rtcp"]),
    ("NACK generator", ["NackGenerator"]),
    ("RTCP receiver statistics", ["StreamStatistics"]),
    ("VP8 depayload", ["depayload", "vpx.py"]),
    ("jitter buffer, frame reassembly, fan-out to viewers' queues",
     ["PromptJitterBuffer", "PromptFrame", "_TapQueue", "jitterbuffer.py", "publication.py",
      "forward.py", "frames.py"]),
    ("datagram queue to the DTLS task", ["_recv (", "recvfrom", "queues.py", "Connection.recv"]),
]


def classify(stack: str) -> str:
    frames = stack.split(";")
    if any(k in stack for k in ("_run_rtcp", "_handle_rtcp_data", "_handle_rtcp_packet",
                                "_retransmit")):
        return "RTCP: reports, feedback, retransmissions"
    # PacketSender.send_now: a frame sent from the publication's fan-out, inside the
    # receive path's stack, is sending all the same.
    if "._run_rtp (" in stack or "send_now (" in stack:
        return "send: " + next((name for name, keys in SENDING
                                if any(k in stack for k in keys)), "sender loop")
    # _DirectReceiver: aiortc_hooks.receive_directly's datagrams, handled in aioice's
    # datagram_received without the queue.
    if ("_recv_next" in stack or "RTCDtlsTransport.__run" in stack
            or "_DirectReceiver" in stack):
        if ("_handle_rtp_packet" not in stack and "_handle_rtp_data" not in stack
                and any(k in stack for k in ("_recv (", "recvfrom", "queues.py"))):
            return "event loop: datagram queue to the DTLS task"
        return "receive: " + next((name for name, keys in RECEIVING
                                   if any(k in stack for k in keys)),
                                  "receiver and DTLS transport, the rest")
    # _Demux: receive_directly's stand-in for aioice's datagram_received.
    if "datagram_received" in stack or "_read_ready" in stack or "_Demux" in stack:
        return "event loop: datagram in (aioice)"
    leaf = frames[-1]
    # uvloop's loop is C: its samples show the frame that started it (Runner.run).
    if any(k in leaf for k in ("_run_once", "Handle._run", "select", "run_forever",
                                "Runner.run (", "run_until_complete")):
        return "event loop: scheduling (and, for uvloop, all its C)"
    return "other: signalling, HTTP, database, timers"


def packets_per_frame() -> float:
    """RTP packets a publisher sends per video frame: the benchmark's clip as aiortc's
    VP8 packetizer cuts it (the server forwards those payloads, or cut them the same
    way before), and 50 Opus packets a second at 30 frames a second."""
    sys.path.insert(0, str(ROOT / "scripts"))
    sys.path.insert(0, str(ROOT))
    from aiortc.codecs.vpx import Vp8Encoder
    from loadgen.media import load_video_clip

    clip = load_video_clip()
    video = sum(len(Vp8Encoder._packetize(frame, 0)) for frame in clip) / len(clip)
    return video + 50 / 30


def us_per_packet(result: dict[str, Any]) -> float:
    """Server CPU per packet received and forwarded (one viewer a call): its CPU over
    the window, over what the publishers sent less what the server's sockets dropped.
    With several viewers a call, the benchmark's own ``server_cpu_ms_per_packet`` (per
    packet delivered to a viewer)."""
    if result.get("viewers", 1) > 1:
        return float(result["server_cpu_ms_per_packet"]) * 1000
    sent = (result["streams"] * result["publisher_fps"] * result["seconds"]
            * packets_per_frame())
    return float(result["server_cpu_cores"] * result["seconds"] * 1e6
                 / (sent - result["server_udp_drops"]))


def table(spy: Path, us: float | None = None) -> str:
    """Each step's share of the samples, and with ``us`` (µs a packet) its µs."""
    counts: collections.Counter[str] = collections.Counter()
    for line in spy.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            counts[classify(stack)] += int(count)
    total = sum(counts.values())
    lines = ["| step | share of samples | µs a packet |", "|---|---:|---:|"]
    lines += [f"| {name} | {count / total:.1%} | "
              f"{'' if us is None else f'{us * count / total:.0f}'} |"
              for name, count in sorted(counts.items(), key=lambda item: -item[1])]
    lines.append(f"| all ({total} samples) | 100% | {'' if us is None else f'{us:.0f}'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--py-spy", type=Path, help="the py-spy executable")
    parser.add_argument("--streams", type=int, default=6)
    parser.add_argument("--viewers", type=int, default=1,
                        help="viewers in each call (the benchmark's --viewers)")
    parser.add_argument("--native", action="store_true",
                        help="py-spy's --native: C frames too (uvloop, libsrtp, the "
                             "garbage collector), printed as their own table")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--rate", type=int, default=100, help="samples a second")
    parser.add_argument("--join-every", type=float, default=1000.0,
                        help="the benchmark's late viewers (default 1000 s: one, in the "
                             "warm-up; set-up is not forwarding)")
    parser.add_argument("--out", type=Path, default=Path("packet-profile"),
                        help="writes OUT.json and OUT.spy")
    parser.add_argument("--classify", type=Path, metavar="SPY",
                        help="only print the table of an earlier run's OUT.spy")
    args = parser.parse_args()
    if args.classify:
        report = args.classify.with_suffix(".json")
        us = us_per_packet(json.loads(report.read_text())) if report.is_file() else None
        print(table(args.classify, us))
        return 0
    if args.py_spy is None:
        parser.error("--py-spy is needed to run")
    report, spy = args.out.with_suffix(".json"), args.out.with_suffix(".spy")
    err = args.out.with_suffix(".err")
    with report.open("w") as out, err.open("w") as progress:
        bench = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "bench.py"), "relay", "--mode", "forward",
             "--streams", str(args.streams), "--viewers", str(args.viewers),
             "--seconds", str(args.seconds),
             "--join-every", str(args.join_every), "--json"],
            stdout=out, stderr=progress)
        deadline = time.monotonic() + 300
        while "measuring" not in err.read_text() and time.monotonic() < deadline:
            if bench.poll() is not None:
                sys.exit(f"the benchmark ended: {err.read_text()[-2000:]}")
            time.sleep(0.2)
        server = subprocess.run(["pgrep", "-P", str(bench.pid), "-f", "videoassist serve"],
                                capture_output=True, text=True, check=True).stdout.split()[0]
        subprocess.run([str(args.py_spy), "record", "-p", server, "-d", str(args.seconds),
                        "-r", str(args.rate), "--gil", "-f", "raw",
                        # --native unwinds C stacks, which needs the process paused
                        # for each sample: without it, py-spy reads it as it runs.
                        *(["--native"] if args.native else ["--nonblocking"]),
                        "-o", str(spy)], check=True, capture_output=True)
        if bench.wait() != 0:
            sys.exit(f"the benchmark failed: {err.read_text()[-2000:]}")
    result = json.loads(report.read_text())
    us = us_per_packet(result)
    print(f"server {result['server_cpu_cores']} cores, {result['streams']} streams, "
          f"{result['server_udp_drops']} datagrams dropped by the server, "
          f"{us:.0f} µs a packet received and forwarded")
    print(table(spy, us))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
