"""The docs are a contract: these tests fail when docs/ and the code drift apart.

- configuration.md names every setting the code has, with its type and default;
- every ``json client`` example of protocol.md is sent by a real client through the
  real server and gets the documented answer (``sdp`` values are replaced by real ones
  from an aiortc peer), and every message the server sends during that replay has the
  shape of its documented ``json server`` example;
- every ``http`` example of api.md is replayed against the real server and gets the
  documented status and body keys, and every route the app registers has its section;
- ui.md lists exactly the testing handles present in the web client.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import re
import struct
import typing
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from tests.support.clips import video_track
from tests.support.docs import DOCS, Block, fenced_blocks, json_examples, keys_match
from tests.support.server import Server, ServerFactory, leave, receive
from tests.support.snapshots import still_snapshot
from videoassist.actors import Actor
from videoassist.appkeys import HUB
from videoassist.config import Secret, Settings, documentation
from videoassist.domain import apikeys
from videoassist.media import aiortc_hooks
from videoassist.signalling import members, stills
from videoassist.signalling.protocol import CLIENT_TYPES, PROTOCOL_VERSION

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 2.0

# Placeholders the docs use, mapped to real values by the replays.
DOC_JOB_ID = 1
DOC_TARGET_ID = 2  # protocol.md: the customer's participant id
DOC_USER_IDS = {1: "admin", 2: "staff", 3: "other"}  # api.md: user ids in paths
DOC_KEY_ID = 2  # api.md: a live API key
# api.md: customers' links the server sent: one withdrawn, one sent again.
DOC_INVITE_IDS = {2: "withdrawn", 3: "resent"}
DOC_CALL_ID = 1  # api.md: an ended call the expert (STAFF_TOKEN) was in


def still_jpeg(width: int, height: int) -> bytes:
    """A real JPEG of that size."""
    image = np.full((height, width, 3), 90, np.uint8)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return bytes(encoded.tobytes())


# -- configuration.md ------------------------------------------------------------------

CONFIG_ROW = re.compile(r"^\| `(VIDEOASSIST_[A-Z0-9_]+)` \|([^|]*)\|([^|]*)\|", re.M)
TYPE_WORDS = {Path: "path", str: "string", int: "integer", float: "number", bool: "boolean"}


def _type_word(hint: Any) -> str:
    if typing.get_origin(hint) is tuple:
        return "list"
    if Secret in typing.get_args(hint):
        return "secret"
    optional = [a for a in typing.get_args(hint) if a is not type(None)]
    return TYPE_WORDS[optional[0] if len(optional) == 1 else hint]  # a path or none


def test_every_setting_is_documented_and_every_documented_setting_exists() -> None:
    in_code = set(documentation())
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    in_doc = set(re.findall(r"VIDEOASSIST_[A-Z0-9_]*[A-Z0-9]", text))
    assert in_code - in_doc == set(), "settings missing from docs/configuration.md"
    assert in_doc - in_code == set(), "docs/configuration.md names settings the code lacks"


def test_no_doc_names_a_setting_the_code_lacks() -> None:
    in_code = set(documentation())
    for path in [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]:
        names = set(re.findall(r"VIDEOASSIST_[A-Z0-9_]*[A-Z0-9]", path.read_text("utf-8")))
        assert names - in_code == set(), f"{path.name} names settings the code lacks"


def test_the_settings_table_gives_each_type_and_default() -> None:
    rows = CONFIG_ROW.findall((DOCS / "configuration.md").read_text(encoding="utf-8"))
    table = {name: (kind.strip(), default.strip()) for name, kind, default in rows}
    assert len(table) == len(rows), "a setting has two rows in the table"
    hints = typing.get_type_hints(Settings)
    for f in dataclasses.fields(Settings):
        name = "VIDEOASSIST_" + f.name.upper()
        assert name in table, f"{name} has no row in the settings table"
        kind, default = table[name]
        assert kind == _type_word(hints[f.name]), f"{name}: type {kind!r}"
        literal = re.fullmatch(r"`([^`]*)`", default)
        if f.default in (None, "", ()):
            assert literal is None, f"{name}: the code's default is empty, the doc's {default}"
            continue
        assert literal is not None, f"{name}: default {default!r} is not a `literal`"
        value = literal[1]
        converted: Any
        if hints[f.name] is bool:
            converted = {"true": True, "false": False}[value]
        else:
            converted = hints[f.name](value)
        assert converted == f.default, f"{name}: documented default {value}, code {f.default!r}"


# -- protocol.md -----------------------------------------------------------------------


def test_protocol_examples_cover_every_client_message_type() -> None:
    client = json_examples("protocol.md", "json client")
    server = json_examples("protocol.md", "json server")
    assert client and server
    for block, example in client + server:
        assert isinstance(example.get("type"), str), f"{block.where('protocol.md')}: no type"
    documented = {example["type"] for _, example in client}
    assert set(CLIENT_TYPES) - documented == set(), "client messages without an example"
    assert documented - set(CLIENT_TYPES) == set(), "examples of unknown client messages"
    joined = [e for _, e in server if e["type"] == "joined"]
    assert joined and all(e["protocol"] == PROTOCOL_VERSION for e in joined)


def test_protocol_close_codes_are_those_of_the_code() -> None:
    text = (DOCS / "protocol.md").read_text(encoding="utf-8")
    section = text.split("## Close codes", 1)[1]
    documented = {int(c) for c in re.findall(r"^\| (\d{4}) \|", section, re.M)}
    in_code = {v for k, v in vars(members).items() if k.startswith("CLOSE_") and isinstance(v, int)
               and k != "CLOSE_TIMEOUT_S"}
    in_code.add(int(aiohttp.WSCloseCode.MESSAGE_TOO_BIG))  # aiohttp's own, above 1 MiB
    assert documented == in_code


class Replay:
    """Reads a socket's messages, keeping every one for the shape checks."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def next(self, ws: aiohttp.ClientWebSocketResponse, kind: str,
                   where: str) -> dict[str, Any]:
        """The next message of this type; an error on the way fails, unless awaited."""
        while True:
            message = await receive(ws, timeout=WAIT_S)
            self.seen.append(message)
            if message["type"] == "error" and kind != "error":
                pytest.fail(f"{where}: the server answered {message}")
            if message["type"] == kind:
                return message

    async def quiet(self, ws: aiohttp.ClientWebSocketResponse, where: str) -> None:
        """Nothing but a pong answers a ping sent now: no error is pending."""
        await ws.send_json({"type": "ping"})
        await self.next(ws, "pong", where)


class Media:
    """Real aiortc peers for the media examples: the customer publishes, the expert views."""

    def __init__(self) -> None:
        self.customer: RTCPeerConnection | None = None
        self.expert: RTCPeerConnection | None = None
        self.server_offer: dict[str, Any] | None = None

    @staticmethod
    def peer() -> RTCPeerConnection:
        return RTCPeerConnection(RTCConfiguration(iceServers=[]))

    async def close(self) -> None:
        for pc in (self.customer, self.expert):
            if pc is not None:
                await pc.close()


@dataclasses.dataclass
class Call:
    """An expert and a customer in a job's call, and what the replay saw of it."""

    server: Server
    staff_token: str
    participant_token: str
    job_id: int
    expert: aiohttp.ClientWebSocketResponse
    customer: aiohttp.ClientWebSocketResponse
    expert_id: int
    customer_id: int
    replay: Replay
    media: Media

    def substitute(self, example: dict[str, Any], where: str) -> dict[str, Any]:
        """The example with its placeholders replaced by this call's tokens and ids."""
        message = copy.deepcopy(example)
        tokens = {"STAFF_TOKEN": self.staff_token, "PARTICIPANT_TOKEN": self.participant_token}
        if "token" in message:
            assert message["token"] in tokens, f"{where}: token {message['token']!r}"
            message["token"] = tokens[message["token"]]
        if "job" in message:
            assert message["job"] == DOC_JOB_ID, f"{where}: examples join job {DOC_JOB_ID}"
            message["job"] = self.job_id
        if "resume" in message:  # nobody's: the replay's own connections stay (a resume
            message["resume"] = 0  # is tested in tests/media/test_recovery.py; a staff
            # example's earlier participant, away, is taken back without it)
        for name in ("target", "camera"):
            if name in message:
                assert message[name] == DOC_TARGET_ID, f"{where}: examples {name} {DOC_TARGET_ID}"
                message[name] = self.customer_id
        return message

    async def publish(self) -> None:
        """The customer offers a camera (set-up, not an example): a track to view."""
        pc = self.media.customer = self.media.peer()
        track = video_track()  # real frames, for snapshots
        sender = pc.addTransceiver(track, direction="sendonly").sender
        aiortc_hooks.on_keyframe_request(sender, track.restart)  # as an encoder would
        await pc.setLocalDescription(await pc.createOffer())
        await self.customer.send_json({"type": "sdp.offer", "sdp": pc.localDescription.sdp})
        answer = await self.replay.next(self.customer, "sdp.answer", "the customer's offer")
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))

    async def send(self, message: dict[str, Any], where: str) -> None:
        """Send one client example as its sender would; check the documented answer."""
        kind, replay, expert, customer = message["type"], self.replay, self.expert, self.customer
        if kind == "auth":
            ws = await self.server.ws()
            await ws.send_json(message)
            answer = await replay.next(ws, "joined", where)
            assert answer["job"]["id"] == self.job_id, where
            assert answer["protocol"] == PROTOCOL_VERSION, where
            if answer["resumed"]:  # the same person's participant, away: back
                back = await replay.next(expert, "participant.back", where)
                assert back["participant"] == answer["you"], where
            # Its socket closes without `leave`, as a lost connection does: away.
            await ws.close()
            away = await replay.next(expert, "participant.away", where)
            assert away["participant"] == answer["you"], where
            assert (away["away_until"] - away["away_since"]
                    == self.server.settings.call_away_s), where
        elif kind == "ping":
            await expert.send_json(message)
            await replay.next(expert, "pong", where)
        elif kind == "leave":
            ws, answer = await self.server.join_call(self.staff_token, self.job_id)
            replay.seen.append(answer)
            await ws.send_json(message)
            closing = await ws.receive(timeout=WAIT_S)
            assert closing.type == aiohttp.WSMsgType.CLOSE, (where, closing)
            assert ws.close_code == 1000, where
            left = await replay.next(customer, "participant.left", where)
            while left["participant"]["id"] != answer["you"]["id"]:
                left = await replay.next(customer, "participant.left", where)
            assert left["participant"]["left_at"] is not None, where
        elif kind == "call.end":
            await self.end_call(message, where)
        elif kind == "participant.remove":
            await self.remove_participant(message, where)
        elif kind == "chat.message":
            await expert.send_json(message)
            for ws in (expert, customer):
                got = await replay.next(ws, "chat.message", where)
                assert got["message"]["text"] == message["text"], where
                assert got["message"]["participant_id"] == self.expert_id, where
        elif kind == "note.add":  # the expert writes a note; the customer is not told
            await expert.send_json(message)
            added = await replay.next(expert, "note.added", where)
            notes = await self.server.store.jobs.notes(self.job_id)
            assert added["note"] == notes[-1].public(), where
            assert added["note"]["text"] == message["text"].strip(), where
            before = len(replay.seen)
            await replay.quiet(customer, where)
            assert "note.added" not in {m["type"] for m in replay.seen[before:]}, where
        elif kind == "annotation.add" and message["shape"].get("pinned"):
            await self.pinned(message, where)
        elif kind.startswith("annotation."):
            await expert.send_json(message)
            relayed = await replay.next(customer, kind, where)
            assert relayed == {**message, "from": self.expert_id}, where
            await replay.quiet(expert, where)
        elif kind == "sdp.offer":
            await self.offer(message, where)
        elif kind == "sdp.answer":
            media = self.media
            assert media.expert is not None and media.server_offer is not None, (
                f"{where}: replayed only after an sdp.offer example drew the server's offer")
            await media.expert.setRemoteDescription(
                RTCSessionDescription(media.server_offer["sdp"], "offer"))
            await media.expert.setLocalDescription(await media.expert.createAnswer())
            await expert.send_json({**message, "sdp": media.expert.localDescription.sdp})
            media.server_offer = None
            await replay.quiet(expert, where)
        elif kind == "ice.candidate":
            assert self.media.expert is not None, f"{where}: replayed after an sdp.offer example"
            await expert.send_json(message)
            await replay.quiet(expert, where)
        elif kind == "media.mute":  # the customer, who publishes, mutes; the expert hears
            assert self.media.expert is not None, f"{where}: replayed after an sdp.offer example"
            for state in (message, {**message, "muted": not message["muted"]}):
                # then back as it was (set-up): later examples snapshot the camera
                await customer.send_json(state)
                tracks = await replay.next(expert, "media.tracks", where)
                assert tracks["participant"] == self.customer_id, where
                assert [t["muted"] for t in tracks["tracks"]
                        if t["kind"] == message["kind"]] == [state["muted"]], (where, tracks)
            await replay.quiet(customer, where)
        elif kind == "media.mode":  # the customer's link degrades (or recovers)
            await customer.send_json(message)
            relayed = await replay.next(expert, kind, where)
            assert relayed == {**message, "participant": self.customer_id,
                               "since": relayed["since"]}, (where, relayed)
            if message["mode"] == "stills":
                await self.still(where)
            await replay.quiet(customer, where)
        elif kind == "camera.control":  # the expert steers the customer's camera
            await expert.send_json(message)
            relayed = await replay.next(customer, kind, where)
            expected = {k: v for k, v in message.items() if k != "target"}
            assert relayed == {**expected, "from": self.expert_id}, (where, relayed)
            await replay.quiet(expert, where)
        elif kind == "camera.state":  # the customer reports its camera to the others
            await customer.send_json(message)
            relayed = await replay.next(expert, kind, where)
            assert relayed == {**message, "from": self.customer_id}, where
            await replay.quiet(customer, where)
        elif kind == "snapshot.request":  # the expert snapshots the customer's camera
            assert self.media.customer is not None, f"{where}: replayed after an sdp.offer"
            await expert.send_json(message)
            for ws in (expert, customer):
                saved = await replay.next(ws, "snapshot.saved", where)
                assert saved.get("request") == message.get("request"), (where, saved)
            stored = await self.server.store.snapshots.get(saved["snapshot"]["id"])
            assert (stored.job_id, stored.camera.participant_id, stored.author.participant_id) \
                == (self.job_id, self.customer_id, self.expert_id), where
            assert [s["id"] for s in stored.shapes] == [
                s["id"] for s in message.get("shapes", [])], where
        elif kind == "freeze":  # the expert freezes the customer's camera for both
            assert self.media.customer is not None, f"{where}: replayed after an sdp.offer"
            [(block, documented)] = json_examples("protocol.md", "json frozen server")
            await expert.send_json(message)
            for ws in (expert, customer):
                frame = await ws.receive(timeout=WAIT_S)
                assert frame.type == aiohttp.WSMsgType.BINARY, (where, frame.type, frame.data)
                (length,) = struct.unpack_from(">H", frame.data)
                header = json.loads(frame.data[2:2 + length])
                assert keys_match(header, documented), (block.where("protocol.md"), header)
                assert (header["camera"], header["by"]) == (self.customer_id, self.expert_id)
                assert frame.data[2 + length:2 + length + 2] == b"\xff\xd8", where  # a JPEG
        elif kind == "freeze.end":
            await expert.send_json(message)
            for ws in (expert, customer):
                ended = await replay.next(ws, "freeze.ended", where)
                assert ended == {"type": "freeze.ended", "camera": self.customer_id,
                                 "by": self.expert_id}, (where, ended)
        else:
            pytest.fail(f"{where}: no replay rule for {kind!r}; add one to this test")

    async def still(self, where: str) -> None:
        """The customer in stills mode sends the documented still header with a real
        JPEG: the expert gets it whole, with the documented header's keys, and the
        customer its still.relayed."""
        [(block, header)] = json_examples("protocol.md", "json still client")
        [(_, documented)] = json_examples("protocol.md", "json still server")
        picture = still_jpeg(header["width"], header["height"])
        await self.customer.send_bytes(stills.pack(header, picture))
        frame = await self.expert.receive(timeout=WAIT_S)
        assert frame.type == aiohttp.WSMsgType.BINARY, (where, frame.type, frame.data)
        (length,) = struct.unpack_from(">H", frame.data)
        relayed = json.loads(frame.data[2:2 + length])
        assert frame.data[2 + length:] == picture, where
        assert keys_match(relayed, documented), (block.where("protocol.md"), relayed)
        assert relayed["from"] == self.customer_id and relayed["seq"] == header["seq"], where
        ack = await self.replay.next(self.customer, "still.relayed", where)
        assert ack == {"type": "still.relayed", "seq": header["seq"], "viewers": 1,
                       "next_in_s": 0}, where

    async def pinned(self, message: dict[str, Any], where: str) -> None:
        """The expert pins a shape on the customer's camera: relayed, and then followed
        (``annotation.track`` to both); the harness removes it, which stops the
        tracking, and nothing more comes."""
        if self.media.customer is None:
            await self.publish()
        await self.expert.send_json(message)
        relayed = await self.replay.next(self.customer, "annotation.add", where)
        assert relayed == {**message, "from": self.expert_id}, where
        for ws in (self.expert, self.customer):
            track = await self.replay.next(ws, "annotation.track", where)
            assert track["target"] == self.customer_id, (where, track)
            assert [s["id"] for s in track["shapes"]] == [message["shape"]["id"]], where
        await self.expert.send_json({"type": "annotation.remove", "target": self.customer_id,
                                     "id": message["shape"]["id"]})
        await self.replay.next(self.customer, "annotation.remove", where)
        await self.replay.quiet(self.expert, where)
        await self.replay.quiet(self.customer, where)

    async def end_call(self, message: dict[str, Any], where: str) -> None:
        """Staff end another job's call (this one goes on for the next examples): both
        of its participants get the `call_ended` notice and a close."""
        server, replay = self.server, self.replay
        job_id = await server.job(self.staff_token, "Gas smell in the cellar")
        staff, joined = await server.join_call(self.staff_token, job_id)
        customer, customer_joined = await server.join_call(
            await server.participant(self.staff_token, job_id))
        replay.seen += [joined, customer_joined]
        await replay.next(staff, "participant.joined", where)
        await staff.send_json(message)
        for ws in (staff, customer):
            notice = await replay.next(ws, "error", where)
            assert notice["code"] == "call_ended", (where, notice)
            closing = await ws.receive(timeout=WAIT_S)
            assert closing.type == aiohttp.WSMsgType.CLOSE, (where, closing)
            assert (ws.close_code, closing.extra) == (1000, "call_ended"), where
        async with asyncio.timeout(WAIT_S):
            while job_id in server.app[HUB].rooms:
                await asyncio.sleep(0.02)
        assert (await server.store.calls.get(joined["call"]["id"])).ended_at is not None, where

    async def remove_participant(self, message: dict[str, Any], where: str) -> None:
        """Staff remove the customer of another job's call (this one goes on for the
        next examples): the customer gets the `removed` notice and a close, the expert
        sees it leave, and its token no longer joins."""
        server, replay = self.server, self.replay
        job_id = await server.job(self.staff_token, "Radiator cold upstairs")
        token = await server.participant(self.staff_token, job_id)
        staff, joined = await server.join_call(self.staff_token, job_id)
        customer, customer_joined = await server.join_call(token)
        replay.seen += [joined, customer_joined]
        await replay.next(staff, "participant.joined", where)
        await staff.send_json({**message, "target": customer_joined["you"]["id"]})
        notice = await replay.next(customer, "error", where)
        assert notice["code"] == "removed", (where, notice)
        closing = await customer.receive(timeout=WAIT_S)
        assert closing.type == aiohttp.WSMsgType.CLOSE, (where, closing)
        assert (closing.data, closing.extra) == (4401, "removed"), where
        left = await replay.next(staff, "participant.left", where)
        assert left["participant"]["id"] == customer_joined["you"]["id"], where
        await leave(staff)
        ws = await server.ws()
        await ws.send_json({"type": "auth", "token": token})
        refused = await replay.next(ws, "error", where)
        assert refused["code"] == "unauthorized", (where, refused)
        await ws.close()

    async def offer(self, message: dict[str, Any], where: str) -> None:
        """The expert, a viewer, offers once the customer publishes: the server answers,
        then offers the customer's track, named after the customer."""
        media = self.media
        if media.customer is None:
            await self.publish()
        if media.expert is None or message.get("restart"):  # a new peer connection
            if media.expert is not None:
                await media.expert.close()
            media.expert = media.peer()
            media.expert.addTransceiver("video", direction="recvonly")
        await media.expert.setLocalDescription(await media.expert.createOffer())
        await self.expert.send_json({**message, "sdp": media.expert.localDescription.sdp})
        answer = await self.replay.next(self.expert, "sdp.answer", where)
        await media.expert.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        media.server_offer = await self.replay.next(self.expert, "sdp.offer", where)
        customer = self.customer_id
        track = rf"^a=msid:p{customer} p{customer}-video-\d+\r?$"
        assert re.search(track, media.server_offer["sdp"], re.M), (
            f"{where}: the server's offer names no stream p{customer}, track p{customer}-video-N")


async def test_protocol_examples_replay_through_the_real_server(server: Server) -> None:
    client = json_examples("protocol.md", "json client")
    documented = [example for _, example in json_examples("protocol.md", "json server")]
    _, staff_token = await server.staff("expert")
    job_id = await server.job(staff_token)
    participant_token = await server.participant(staff_token, job_id)
    expert, joined = await server.join_call(staff_token, job_id)
    customer, customer_joined = await server.join_call(participant_token)
    call = Call(server, staff_token, participant_token, job_id, expert, customer,
                joined["you"]["id"], customer_joined["you"]["id"], Replay(), Media())
    call.replay.seen += [joined, customer_joined]
    try:
        for block, example in client:
            where = block.where("protocol.md")
            assert all(isinstance(v, str) and v.startswith("v=0")
                       for k, v in example.items() if k == "sdp"), where
            await call.send(call.substitute(example, where), where)
        # protocol.md's errors in a call carry `ref` whenever the message's type is known:
        # one that passed its checks, and one of a known type that failed them.
        await expert.send_json({"type": "annotation.clear", "target": 2**40})
        error = await call.replay.next(expert, "error", "an unknown target")
        assert (error["code"], error.get("ref")) == ("not_found", "annotation.clear"), error
        await expert.send_json({"type": "chat.message", "text": " "})
        error = await call.replay.next(expert, "error", "an empty chat message")
        assert (error["code"], error.get("ref")) == ("bad_request", "chat.message"), error
        await expert.send_str("{not json")
        error = await call.replay.next(expert, "error", "a message that is not JSON")
        assert error["code"] == "bad_request" and "ref" not in error, error
        # Every broadcast has been read: participants' comings and goings included.
        await call.replay.quiet(customer, "the customer's last messages")
    finally:
        await call.media.close()
        await expert.close()
        await customer.close()

    sent_types = {m["type"] for m in call.replay.seen}
    documented_types = {d["type"] for d in documented}
    assert documented_types - sent_types == set(), "documented but never sent by the server"
    assert sent_types - documented_types == set(), "sent by the server but not documented"
    for message in call.replay.seen:
        examples = [d for d in documented if d["type"] == message["type"]]
        assert any(keys_match(message, d) for d in examples), (
            f"the server sent {message}, unlike every documented {message['type']!r}"
        )


# -- api.md ----------------------------------------------------------------------------

HEADING = re.compile(r"^### (GET|POST|PUT|PATCH|DELETE) (/\S*)$", re.M)
RESPONSE = re.compile(r"^(json|html|binary|text|css) response (\d{3})$")
ID_IN_PATH = re.compile(r"^/api/(jobs|users|snapshots|keys|calls|invites)/(\d+)(?=/|\?|$)")


@dataclasses.dataclass(frozen=True)
class Exchange:
    request: Block
    method: str
    path: str
    headers: dict[str, str]
    body: str
    response: Block
    kind: str
    status: int


def api_exchanges() -> list[Exchange]:
    blocks = fenced_blocks("api.md")
    exchanges = []
    for i, block in enumerate(blocks):
        if block.info != "http":
            continue
        where = block.where("api.md")
        assert i + 1 < len(blocks), f"{where}: no response block"
        response = blocks[i + 1]
        shape = RESPONSE.match(response.info)
        assert shape, f"{where}: followed by {response.info!r}, not a response block"
        head, _, body = block.body.partition("\n\n")
        first, *header_lines = head.splitlines()
        method, path = first.split(" ")
        headers = dict(line.split(": ", 1) for line in header_lines)
        exchanges.append(Exchange(block, method, path, headers, body.strip(), response,
                                  shape[1], int(shape[2])))
    for i, block in enumerate(blocks):
        if RESPONSE.match(block.info):
            assert i > 0 and blocks[i - 1].info == "http", (
                f"{block.where('api.md')}: a response without its request"
            )
    return exchanges


def test_every_route_has_its_section_in_the_api_doc(server: Server) -> None:
    routes = {
        (route.method, route.resource.canonical)
        for route in server.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
        and not isinstance(route.resource, web.StaticResource)
    }
    sections = set(HEADING.findall((DOCS / "api.md").read_text(encoding="utf-8")))
    assert routes - sections == set(), "routes missing from docs/api.md"
    assert sections - routes == set(), "docs/api.md documents routes the server lacks"


METRICS_TOKEN = "metrics-token-for-the-examples"
SAMPLE = re.compile(r"^([a-z_]+(?:\{[^}]*\})?) \S+$")


async def test_api_examples_replay_against_the_real_server(
        server_factory: ServerFactory) -> None:
    exchanges = api_exchanges()
    assert exchanges
    # An SMTP server for the resend example to send through (nothing listens there: the
    # sending, in the background, fails, and is given up when the server stops).
    server = await server_factory(metrics_token=Secret(METRICS_TOKEN), smtp_host="127.0.0.1",
                                  smtp_port=9, smtp_from="Acme Heating <assist@acme.example>")
    admin = await server.add_user("admin", username="admin")
    admin_token = await server.sign_in(admin.username)
    staff, staff_token = await server.staff("expert")
    other = await server.add_user("technician", password=None)
    job_id = await server.job(staff_token)
    other_job_id = await server.job(staff_token, "Gas smell in the cellar")
    snapshot_id, call_id = await still_snapshot(server, job_id, staff)
    users = {"admin": admin.id, "staff": staff.id, "other": other.id}
    _, api_key = await apikeys.create(server.store, "CRM", ["jobs:create", "jobs:read"],
                                      Actor.user(admin.id))
    _, read_api_key = await apikeys.create(server.store, "BI", ["jobs:read"], Actor.user(admin.id))
    live_key, _ = await apikeys.create(server.store, "ServiceNow", ["jobs:read"],
                                       Actor.user(admin.id))
    # The links the withdraw and resend examples name, as if the server had e-mailed them.
    made: dict[str, int] = {}
    for what in DOC_INVITE_IDS.values():
        status, link, _ = await server.request(
            "POST", f"/api/jobs/{job_id}/invites", token=staff_token,
            json={"role": "customer", "name": "Mr Keller"})
        assert status == 201, link
        await server.store.invites.set_sent_to(link["id"], "keller@example.com")
        made[what] = link["id"]
    tokens = {"STAFF_TOKEN": staff_token, "ADMIN_TOKEN": admin_token, "API_KEY": api_key,
              "READ_API_KEY": read_api_key, "METRICS_TOKEN": METRICS_TOKEN}

    def real_path(path: str) -> str:
        match = ID_IN_PATH.match(path)
        if match is None:
            return path
        kind, number = match[1], int(match[2])
        if kind == "jobs" and number == DOC_JOB_ID:
            real = job_id
        elif kind == "jobs" and number == DOC_JOB_ID + 1:
            real = other_job_id
        elif kind == "snapshots" and number == 1:
            real = snapshot_id
        elif kind == "users" and number in DOC_USER_IDS:
            real = users[DOC_USER_IDS[number]]
        elif kind == "keys" and number == DOC_KEY_ID:
            real = live_key.id
        elif kind == "calls" and number == DOC_CALL_ID:
            real = call_id
        elif kind == "invites" and number in DOC_INVITE_IDS:
            real = made[DOC_INVITE_IDS[number]]
        else:
            return path  # an id the examples mean to be unknown
        return f"/api/{kind}/{real}{path[match.end():]}"

    for ex in exchanges:
        where = ex.request.where("api.md")
        headers = dict(ex.headers)
        if "Authorization" in headers:
            scheme, _, placeholder = headers["Authorization"].partition(" ")
            assert scheme == "Bearer", where
            if not placeholder.startswith("vak_"):  # an API key the examples mean to be unknown
                assert placeholder in tokens, where
                headers["Authorization"] = f"Bearer {tokens[placeholder]}"
        body = ex.body
        if '"JOIN_LINK_TOKEN"' in body:
            body = body.replace("JOIN_LINK_TOKEN", await server.invite(staff_token, job_id))
        if '"PASSWORD_LINK_TOKEN"' in body:
            body = body.replace("PASSWORD_LINK_TOKEN", await server.password_link(other))
        in_call: list[aiohttp.ClientWebSocketResponse] = []
        if ex.kind == "text":  # the metrics example shows an expert and a customer in a call
            in_call = [(await server.join_call(staff_token, job_id))[0],
                       (await server.join_call(await server.participant(staff_token, job_id)))[0]]
        status, answer, answer_headers = await server.request(
            ex.method, real_path(ex.path), headers=headers,
            data=body.encode() if body else None,
        )
        for ws in in_call:
            await leave(ws)
        async with asyncio.timeout(WAIT_S):
            while job_id in server.app[HUB].rooms and in_call:
                await asyncio.sleep(0.02)
        assert status == ex.status, f"{where}: {ex.method} {ex.path} answered {status} {answer}"
        if ex.kind == "html":
            assert answer_headers["Content-Type"].startswith("text/html"), where
            assert answer.lstrip().lower().startswith(ex.response.body.strip().lower()), where
            continue
        if ex.kind == "css":  # the brand's stylesheet, exactly
            assert answer_headers["Content-Type"].startswith("text/css"), where
            assert answer == ex.response.body.strip() + "\n", where
            continue
        if ex.kind == "text":  # metrics: every documented family, with its help and type
            assert answer_headers["Content-Type"].startswith("text/plain"), where
            lines = answer.splitlines()
            for line in ex.response.body.strip().splitlines():
                if line.startswith("#"):
                    assert line in lines, (where, line)
                    continue
                sample = SAMPLE.match(line)
                assert sample, (where, line)
                assert any(real.startswith(f"{sample[1]} ") for real in lines), (where, line)
            continue
        if ex.kind == "binary":  # the documented headers, exactly
            for line in ex.response.body.strip().splitlines():
                name, value = line.split(": ", 1)
                value = value.replace("JOB_ID", str(job_id))
                assert answer_headers.get(name) == value, (where, name, answer_headers.get(name))
            continue
        if ex.status == 204:
            assert not answer and not ex.response.body.strip(), where
            continue
        try:
            documented = json.loads(ex.response.body)
        except ValueError as exc:
            pytest.fail(f"{ex.response.where('api.md')}: not valid JSON: {exc}")
        assert isinstance(answer, dict), f"{where}: answered {answer!r}"
        assert set(answer) == set(documented), (
            f"{where}: keys {sorted(answer)}, documented {sorted(documented)}"
        )
        if "error" in documented:
            assert answer["error"] == documented["error"], where


# -- ui.md -----------------------------------------------------------------------------

HANDLE = re.compile(r"""data-(action|region)=["']([a-z][a-z0-9-]*)["']""")
# Elements made in JS: ``node.dataset.action = "user-disable"``.
DATASET_HANDLE = re.compile(r"""\.dataset\.(action|region) = ["']([a-z][a-z0-9-]*)["']""")


def test_ui_doc_lists_exactly_the_handles_in_the_web_client() -> None:
    in_web: set[tuple[str, str]] = set()
    for path in [*(ROOT / "web" / "templates").glob("*.html"),
                 *(ROOT / "web" / "static" / "js").glob("*.js")]:
        text = path.read_text(encoding="utf-8")
        in_web |= set(HANDLE.findall(text)) | set(DATASET_HANDLE.findall(text))
    assert in_web, "no handles found in web/"
    in_doc = set(HANDLE.findall((DOCS / "ui.md").read_text(encoding="utf-8")))
    assert in_web - in_doc == set(), "handles missing from docs/ui.md"
    assert in_doc - in_web == set(), "docs/ui.md lists handles the web client lacks"


def test_every_file_docs_architecture_names_is_there() -> None:
    """docs/architecture.md sends the reader to files: each one it names in backticks
    (``media/session.py``, ``api/``, ``web/static/js/``...) is in the package, the
    browser client or the tests, so that a move without the doc fails here."""
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([a-z_/.-]+(?:\.py|\.js|\.md|/))`", text))
    assert len(named) > 30, named
    roots = [ROOT / "videoassist", ROOT, ROOT / "web" / "static" / "js", DOCS]
    missing = sorted(name for name in named
                     if not any((root / name).exists() for root in roots))
    assert missing == [], missing
