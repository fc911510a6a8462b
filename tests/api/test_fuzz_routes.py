"""A bounded fuzz of every HTTP route (issue 20's standing fuzz suite).

The routes are read from the app's router, so a new one is fuzzed as soon as it is
documented: each starts from its request examples in docs/api.md (which
tests/test_docs.py holds to every route), signed in as the example is (an admin, an
expert, an API key with scopes) or, now and then, as someone else (a technician, a
customer's participant token, a made-up key, no one). Its path parameters, query
string, body and Content-Type are then mutated (``tests.support.fuzz``). Every answer
must be below 500 and never an ``internal`` error, the log must hold no traceback or
ERROR line, and the server must serve on; on SQLite and on PostgreSQL, whose text
refuses what SQLite stores (a NUL). The seed is printed with any failure:
``VIDEOASSIST_FUZZ_SEED=... pytest tests/api/test_fuzz_routes.py`` replays it.
"""

from __future__ import annotations

import io
import json
import logging
import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from aiohttp import web

from tests.support.docs import HttpExample, http_examples
from tests.support.fuzz import PATH_VALUES, STRINGS, Budget, Mutator, fuzz_seed
from tests.support.server import Server, ServerFactory
from tests.support.snapshots import still_snapshot
from videoassist.actors import Actor
from videoassist.config import Secret
from videoassist.domain import apikeys

CASES = 1500  # on each database
BUDGET_S = 8.0
# Routes not fuzzed here, and where they are.
NOT_FUZZED = {("GET", "/ws"): "tests/signalling/test_fuzz_messages.py (each message type)"}
# Routes whose every case costs a password hash or a JPEG: fewer cases.
WEIGHTS = {("POST", "/api/session"): 0.3, ("POST", "/api/password"): 0.3,
           ("POST", "/api/snapshots/{id}/versions"): 0.5,
           ("GET", "/api/snapshots/{id}/image"): 0.5, ("GET", "/api/jobs/{id}/export"): 0.5}
ID_IN_PATH = re.compile(r"^/api/(jobs|users|snapshots|keys|calls)/(\d+)(?=/|$)")
PARAM = re.compile(r"\{[^}]+\}")
METRICS_TOKEN = "metrics-token-for-the-fuzz"
CONTENT_TYPES = ("text/plain", "application/json; charset=latin-1",
                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                 "application/jsonx", "")


@dataclass
class Route:
    method: str
    path: str  # canonical: /api/jobs/{id}
    pattern: re.Pattern[str]
    examples: list[HttpExample]


def routes_of(app: web.Application) -> list[Route]:
    """Every route of the app but static files and HEAD, with its api.md examples."""
    found = []
    for route in app.router.routes():
        resource = route.resource
        if route.method == "HEAD" or resource is None or isinstance(resource, web.StaticResource):
            continue
        canonical = resource.canonical
        pattern = re.compile("^" + "[^/]+".join(
            re.escape(part) for part in PARAM.split(canonical)) + "$")
        found.append(Route(route.method, canonical, pattern, []))
    for example in http_examples():
        path = example.path.split("?", 1)[0]
        for route in found:
            if route.method == example.method and route.pattern.match(path):
                route.examples.append(example)
    return found


@dataclass
class World:
    """What the fuzz signs in as, and the real ids the examples' ids stand for."""

    tokens: dict[str, str]  # the examples' placeholders
    others: list[str | None]  # other callers, tried now and then
    ids: dict[tuple[str, int], int]
    join_links: list[str]
    password_links: list[str]


async def world(server: Server) -> World:
    admin, admin_token = await server.staff("admin")
    expert, expert_token = await server.staff("expert")
    _, technician_token = await server.staff("technician")
    other = await server.add_user("technician", password=None)
    job_id = await server.job(expert_token)
    victim_job = await server.job(expert_token, "A job to close and erase")
    snapshot_id, call_id = await still_snapshot(server, job_id, expert, size=(180, 320))
    _, api_key = await apikeys.create(server.store, "CRM", ["jobs:create", "jobs:read"],
                                      Actor.user(admin.id))
    _, read_api_key = await apikeys.create(server.store, "BI", ["jobs:read"], Actor.user(admin.id))
    by_admin = Actor.user(admin.id)
    _, analytics_key = await apikeys.create(server.store, "Sheets", ["analytics:read"], by_admin)
    live_key, _ = await apikeys.create(server.store, "Old", ["jobs:read"], Actor.user(admin.id))
    participant = await server.participant(expert_token, job_id)
    return World(
        tokens={"STAFF_TOKEN": expert_token, "ADMIN_TOKEN": admin_token, "API_KEY": api_key,
                "READ_API_KEY": read_api_key, "METRICS_TOKEN": METRICS_TOKEN},
        others=[admin_token, expert_token, technician_token, participant, analytics_key,
                api_key, None, "vak_" + "x" * 40, "not-a-token", admin_token[:-3]],
        ids={("jobs", 1): job_id, ("jobs", 2): victim_job, ("snapshots", 1): snapshot_id,
             ("users", 1): admin.id, ("users", 3): other.id, ("keys", 2): live_key.id,
             ("calls", 1): call_id},
        join_links=[await server.invite(expert_token, job_id) for _ in range(3)],
        password_links=[await server.password_link(other) for _ in range(2)],
    )


def real_path(path: str, ids: dict[tuple[str, int], int]) -> str:
    match = ID_IN_PATH.match(path)
    if match is None or (match[1], int(match[2])) not in ids:
        return path  # an id the example means to be unknown
    return f"/api/{match[1]}/{ids[match[1], int(match[2])]}{path[match.end():]}"


def mutated_path(path: str, route: Route, rng: random.Random) -> str:
    """The path with each parameter kept or replaced by one that names no caller."""
    if "{" not in route.path or rng.random() < 0.7:
        return path
    template = route.path.split("/")
    parts = path.split("/")
    return "/".join(rng.choice(PATH_VALUES) if t.startswith("{") else p
                    for t, p in zip(template, parts, strict=True))


def mutated_query(query: str, rng: random.Random) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    op = rng.randrange(6)
    if op == 0 or not pairs:
        pairs.append((rng.choice(("limit", "offset", "status", "q", "x", "from", "before",
                                  "format", "since", "state")), rng.choice(STRINGS)))
    elif op == 1:
        i = rng.randrange(len(pairs))
        pairs[i] = (pairs[i][0], rng.choice(STRINGS))
    elif op == 2:
        del pairs[rng.randrange(len(pairs))]
    elif op == 3:
        pairs.append(rng.choice(pairs))
    elif op == 4:
        return query + rng.choice(("&&", "&=x", "&%ZZ=1", "&limit", "&" + "q=" * 200))
    else:
        i = rng.randrange(len(pairs))
        pairs[i] = (pairs[i][0], str(rng.choice((-1, 0, 2**63, 10**40, 1e308))))
    return urlencode(pairs, errors="surrogatepass")  # a lone surrogate: bytes not UTF-8


def substitute(body: str, world: World, rng: random.Random) -> str:
    if "JOIN_LINK_TOKEN" in body:
        body = body.replace("JOIN_LINK_TOKEN", rng.choice(world.join_links))
    if "PASSWORD_LINK_TOKEN" in body:
        body = body.replace("PASSWORD_LINK_TOKEN", rng.choice(world.password_links))
    return body


async def send(server: Server, method: str, path: str, headers: dict[str, str],
               data: bytes | None) -> tuple[int, Any]:
    """One request: (status, the answer's JSON, or None)."""
    payload = io.BytesIO(data) if data is not None else None  # a large one too, unwarned
    async with server.http.request(method, server.url + path, headers=headers,
                                   data=payload) as response:
        body = await response.read()
    try:
        return response.status, json.loads(body)
    except ValueError:
        return response.status, None


# PostgreSQL refuses text SQLite stores (a NUL character): both are fuzzed.
@pytest.mark.parametrize("server_backend", ["sqlite", "postgresql"])
async def test_every_route_fuzzed_answers_below_500_without_traceback(
        server_factory: ServerFactory, caplog: pytest.LogCaptureFixture) -> None:
    server = await server_factory(metrics_token=Secret(METRICS_TOKEN))
    routes = routes_of(server.app)
    undocumented = [f"{r.method} {r.path}" for r in routes
                    if not r.examples and (r.method, r.path) not in NOT_FUZZED]
    assert not undocumented, f"routes neither fuzzed (no api.md example) nor exempt: {undocumented}"
    routes = [r for r in routes if (r.method, r.path) not in NOT_FUZZED]
    weights = [WEIGHTS.get((r.method, r.path), 1.0) for r in routes]
    caplog.set_level(logging.INFO)
    seed = fuzz_seed()
    rng = random.Random(seed)
    mutator = Mutator(rng)
    world_ = await world(server)
    budget = Budget(CASES, BUDGET_S)
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    past_auth: Counter[str] = Counter()
    while budget.more():
        route = rng.choices(routes, weights)[0]
        example = rng.choice(route.examples)
        path, _, query = example.path.partition("?")
        path = mutated_path(real_path(path, world_.ids), route, rng)
        if query and rng.random() < 0.6:
            query = mutated_query(query, rng)
        headers = dict(example.headers)
        placeholder = headers.get("Authorization", " ").split(" ", 1)[1]
        caller = world_.tokens.get(placeholder, placeholder) if placeholder else None
        if rng.random() < 0.15:
            caller = rng.choice(world_.others)
        headers.pop("Authorization", None)
        if caller is not None:
            headers["Authorization"] = f"Bearer {caller}"
        data: bytes | None = None
        if example.body:
            body = substitute(example.body, world_, rng)
            data = (mutator.text(json.loads(body), raw=0.15) if body.startswith("{")
                    else body + rng.choice(STRINGS)).encode("utf-8", "surrogatepass")
            if rng.random() < 0.03:
                data = data.replace(b'"', b'"\xff', 1)  # not UTF-8
        elif route.method != "GET" and rng.random() < 0.2:
            data = mutator.text({"x": 1}).encode()
            headers["Content-Type"] = "application/json"
        if data is not None and rng.random() < 0.05:
            headers["Content-Type"] = rng.choice(CONTENT_TYPES)
        url = path + ("?" + query if query else "")
        status, answer = await send(server, route.method, url, headers, data)
        statuses[status] += 1
        if status not in (401, 403):
            past_auth[f"{route.method} {route.path}"] += 1
        code = answer.get("error", {}).get("code") if isinstance(answer, dict) else None
        if status >= 500 or code == "internal":
            failures.append(f"{route.method} {url[:200]!r} {(data or b'')[:300]!r}: {status} "
                            f"{str(answer)[:200]}")
    cases = budget.done
    print(f"{cases} cases, statuses {dict(sorted(statuses.items()))}")
    assert not failures, (f"VIDEOASSIST_FUZZ_SEED={seed}: {len(failures)} of {cases} cases "
                          f"answered 5xx or internal; first: {failures[:5]}")
    tracebacks = [r.getMessage()[:300] for r in caplog.records
                  if r.exc_info is not None or r.levelno >= logging.ERROR]
    assert not tracebacks, (f"VIDEOASSIST_FUZZ_SEED={seed}: {len(tracebacks)} errors logged; "
                            f"first: {tracebacks[:3]}")
    assert cases >= 200, f"only {cases} cases within {BUDGET_S} s"
    # The fuzz reached past sign-in on most routes (some examples are all about being refused).
    reached = {f"{r.method} {r.path}" for r in routes} - set(past_auth)
    assert len(reached) <= 3, f"VIDEOASSIST_FUZZ_SEED={seed}: never past auth: {reached}"
    status, _, _ = await server.request("GET", "/readyz")
    assert status == 200
    status, _, _ = await server.request("GET", "/api/session",
                                        token=world_.tokens["STAFF_TOKEN"])
    assert status == 200, "the fuzz signed its own expert out"

