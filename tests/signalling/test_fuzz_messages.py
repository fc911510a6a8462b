"""A bounded fuzz of every signalling message type (issue 20's standing fuzz suite).

The types are those of ``videoassist.signalling.protocol`` (``CLIENT_TYPES``), so a new
one is fuzzed as soon as it exists: each starts from its examples in docs/protocol.md
(which tests/test_docs.py holds to every type), sent in a real call by an expert, a
customer or a technician who came by a link, mutated (``tests.support.fuzz``): types,
sizes, unicode, nesting, huge numbers, fields missing or added, other targets, frames
that are not JSON or too large, binary frames; ``auth`` on fresh sockets too, before
any other message. No answer may be an ``internal`` error, no socket closed with 1011,
the log must hold no traceback or ERROR line, and the server must serve on. Whoever a
case put out of the call (``leave``, ``call.end``, ``participant.remove``, a frame
above 1 MiB) joins again. The seed is printed with any failure:
``VIDEOASSIST_FUZZ_SEED=... pytest tests/signalling/test_fuzz_messages.py`` replays it.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import random
from collections import Counter
from typing import Any

import aiohttp
import pytest

from tests.support.docs import json_examples
from tests.support.fuzz import Budget, Mutator, dumps, fuzz_seed
from tests.support.server import Server, ServerFactory, receive
from videoassist.signalling.members import CLOSE_CALL_LOST
from videoassist.signalling.protocol import CLIENT_TYPES

CASES = 3000
BUDGET_S = 12.0
WAIT_S = 10.0
DOC_JOB_ID, DOC_TARGET_ID = 1, 2  # docs/protocol.md's job and target
# The limits are tested elsewhere (tests/test_limits.py): here they would only answer
# rate_limited instead of letting the messages reach what they fuzz.
UNLIMITED = {"call_joins_per_min": 10_000, "ws_rate_per_s": 10_000.0, "ws_rate_burst": 10_000,
             "chat_bytes_per_min": 10**9, "annotation_bytes_per_min": 10**9,
             "sdp_offer_rate_per_s": 10_000.0, "sdp_offer_burst": 10_000,
             "call_max_connections_per_user": 100}


class Party:
    """One participant's socket in the call, read in the background."""

    def __init__(self, name: str, token: str, job_id: int | None) -> None:
        self.name, self.token, self.job_id = name, token, job_id
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.id = 0
        self.messages: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.reader: asyncio.Task[None] | None = None
        self.internal: list[dict[str, Any]] = []
        self.closes: Counter[int | None] = Counter()

    @property
    def alive(self) -> bool:
        return self.reader is not None and not self.reader.done()

    async def join(self, server: Server) -> bool:
        """Join the call; False if the token may no longer join."""
        self.ws = ws = await server.ws()
        auth: dict[str, Any] = {"type": "auth", "token": self.token}
        if self.job_id is not None:
            auth["job"] = self.job_id
        await ws.send_json(auth)
        joined = await receive(ws, WAIT_S)
        if joined["type"] != "joined":
            await ws.close()
            return False
        self.id = joined["you"]["id"]
        self.messages = asyncio.Queue()
        self.reader = asyncio.create_task(self._read(ws))
        return True

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                message = json.loads(msg.data)
                if message.get("type") == "error" and message.get("code") == "internal":
                    self.internal.append(message)
                self.messages.put_nowait(message)
        finally:
            self.closes[ws.close_code] += 1
            self.messages.put_nowait(None)

    async def answer(self) -> list[dict[str, Any]]:
        """What came before the pong that answers the ping sent after a case (or the
        socket's close)."""
        seen = []
        async with asyncio.timeout(WAIT_S):
            while (message := await self.messages.get()) is not None:
                if message["type"] == "pong":
                    break
                seen.append(message)
        return seen

    def drain(self) -> None:
        while not self.messages.empty():
            self.messages.get_nowait()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await self.reader


def bases() -> dict[str, list[dict[str, Any]]]:
    examples: dict[str, list[dict[str, Any]]] = {}
    for _, example in json_examples("protocol.md", "json client"):
        examples.setdefault(example["type"], []).append(example)
    return examples


def substitute(example: dict[str, Any], tokens: dict[str, str], job_id: int,
               ids: list[int], rng: random.Random) -> dict[str, Any]:
    message = copy.deepcopy(example)
    if message.get("token") in tokens:
        message["token"] = tokens[message["token"]]
    if message.get("job") == DOC_JOB_ID:
        message["job"] = job_id
    for name in ("target", "camera"):
        if message.get(name) == DOC_TARGET_ID:
            message[name] = rng.choice(ids)
    return message


async def test_every_message_type_fuzzed_in_a_call_never_internal(
        server_factory: ServerFactory, caplog: pytest.LogCaptureFixture) -> None:
    server = await server_factory(**UNLIMITED)
    examples = bases()
    missing = set(CLIENT_TYPES) - set(examples)
    assert not missing, f"message types with no example in docs/protocol.md to fuzz: {missing}"
    caplog.set_level(logging.INFO)
    seed = fuzz_seed()
    rng = random.Random(seed)
    mutator = Mutator(rng)
    _, staff_token = await server.staff("expert")
    job_id = await server.job(staff_token)

    async def link(role: str) -> str:
        return await server.participant(staff_token, job_id, role)

    parties = [Party("expert", staff_token, job_id),
               Party("customer", await link("customer"), None),
               Party("technician", await link("technician"), None)]
    tokens = {"STAFF_TOKEN": staff_token, "PARTICIPANT_TOKEN": parties[1].token}
    budget = Budget(CASES, BUDGET_S)
    outcomes: Counter[str] = Counter()
    preauth_internal: list[str] = []
    preauth_closes: Counter[int | None] = Counter()
    try:
        while budget.more():
            for party in parties:
                for _ in range(3):  # put out by an earlier case: back in, by a new link
                    if party.alive or await party.join(server):
                        break
                    party.token = await link(party.name)
                assert party.alive, f"VIDEOASSIST_FUZZ_SEED={seed}: {party.name} cannot join"
            kind = rng.choice(CLIENT_TYPES)
            ids = [p.id for p in parties] + [0, 2**40]
            base = substitute(rng.choice(examples[kind]), tokens, job_id, ids, rng)
            if kind == "auth" and rng.random() < 0.5:  # before auth, on a socket of its own
                ws = await server.ws()
                for _ in range(rng.randint(1, 3)):
                    await ws.send_str(mutator.text(base))
                with_answer = await ws.receive(timeout=WAIT_S)
                if with_answer.type == aiohttp.WSMsgType.TEXT:
                    answer = json.loads(with_answer.data)
                    outcomes["auth " + answer.get("code", answer["type"])] += 1
                    if answer.get("code") == "internal":
                        preauth_internal.append(with_answer.data)
                await ws.close()
                preauth_closes[ws.close_code] += 1
                continue
            sender = rng.choice(parties)
            assert sender.ws is not None
            sender.drain()
            try:
                if rng.random() < 0.03:
                    await sender.ws.send_bytes(dumps(base, rng).encode()[: rng.randint(0, 200)])
                else:
                    await sender.ws.send_str(mutator.text(base))
                await sender.ws.send_json({"type": "ping"})
            except ConnectionError:  # closed by this case (above 1 MiB) or the one before
                pass
            for message in await sender.answer():
                if message["type"] == "error":
                    outcomes[f"{kind} {message['code']}"] += 1
            for party in parties:
                if party is not sender:
                    party.drain()
        # Every snapshot or other slow answer has come: one more ping round each.
        for party in parties:
            if party.alive and party.ws is not None:
                await party.ws.send_json({"type": "ping"})
                await party.answer()
        # The server still serves: a new customer joins and is answered.
        ws, _ = await server.join_call(await link("customer"))
        await ws.send_json({"type": "ping"})
        assert (await receive(ws, WAIT_S, skip=("participant.joined", "camera.state",
                                                 "media.tracks", "media.mode")))["type"] == "pong"
        await ws.close()
    finally:
        for party in parties:
            await party.close()
    cases = budget.done
    print(f"{cases} cases; errors: {dict(outcomes.most_common(12))}")
    internal = [m for p in parties for m in p.internal] + preauth_internal
    assert not internal, f"VIDEOASSIST_FUZZ_SEED={seed}: internal errors: {internal[:3]}"
    lost = {p.name: p.closes for p in parties if CLOSE_CALL_LOST in p.closes}
    assert not lost and CLOSE_CALL_LOST not in preauth_closes, (
        f"VIDEOASSIST_FUZZ_SEED={seed}: sockets closed with 1011: {lost} {preauth_closes}")
    tracebacks = [r.getMessage()[:300] for r in caplog.records
                  if r.exc_info is not None or r.levelno >= logging.ERROR]
    assert not tracebacks, (f"VIDEOASSIST_FUZZ_SEED={seed}: {len(tracebacks)} errors logged; "
                            f"first: {tracebacks[:3]}")
    assert cases >= 300, f"only {cases} cases within {BUDGET_S} s"
    assert sum(outcomes.values()) > cases / 4, outcomes  # the mutations were refused, often
    status, _, _ = await server.request("GET", "/readyz")
    assert status == 200
