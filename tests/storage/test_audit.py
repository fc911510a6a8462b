"""The audit log's hash chain, on SQLite and PostgreSQL: its canonical form, appends
from several processes and connections at once, the append-only triggers, databases
from before the chain, and what verify finds after a hand edit of the database
(triggers dropped first, as an attacker would)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from pathlib import Path

import pytest

from tests.support.audit import old_database, old_postgresql_database
from tests.support.databases import Target, drop_trigger, raw_execute, raw_fetchall
from videoassist.storage import Store
from videoassist.storage.audit import AuditFilter
from videoassist.storage.chain import GENESIS, Verdict, canonical, row_hash
from videoassist.storage.db import is_postgresql_url, migrations
from videoassist.storage.errors import IntegrityError

ROOT = Path(__file__).resolve().parents[2]

# The worked example of docs/security.md: a row, its canonical JSON, its hash.
EXAMPLE_ROW = {"id": 1, "created_at": 1767258000.0, "actor": "client:203.0.113.7",
               "action": "signin.failed", "target": "username:Zoë",
               "detail": {"reason": "credentials"}}
EXAMPLE_CANONICAL = ('{"action":"signin.failed","actor":"client:203.0.113.7",'
                     '"created_at":1767258000.0,"detail":{"reason":"credentials"},"id":1,'
                     '"target":"username:Zo\\u00eb"}')
EXAMPLE_HASH = hashlib.sha256((GENESIS + EXAMPLE_CANONICAL).encode("ascii")).hexdigest()


async def verify(database: Target) -> Verdict:
    store = await Store.open(database, migrate=False)
    try:
        return await store.audit.verify()
    finally:
        await store.close()


async def filled(database: Target, count: int = 10) -> None:
    store = await Store.open(database)
    try:
        for n in range(count):
            await store.audit.record(f"user:{n}", "test.event", f"job:{n}", n=n)
    finally:
        await store.close()


def test_the_canonical_form_is_the_documented_one() -> None:
    assert canonical(EXAMPLE_ROW).decode() == EXAMPLE_CANONICAL
    assert row_hash(GENESIS, EXAMPLE_ROW) == EXAMPLE_HASH
    security = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    assert EXAMPLE_CANONICAL in security and EXAMPLE_HASH in security
    # Floats as the shortest repr that reads back the same; whole ones keep '.0'.
    assert canonical({"t": 0.1 + 0.2, "u": 5.0, "n": 5}) == (
        b'{"n":5,"t":0.30000000000000004,"u":5.0}')
    assert canonical({"s": "\ud800\n\u2603"}) == b'{"s":"\\ud800\\n\\u2603"}'


async def test_what_is_hashed_is_what_is_stored_and_read_back(database: Target) -> None:
    # A clock giving ints (the database stores doubles: 1000 comes back as 1000.0), text
    # that cannot be stored as such (a lone surrogate), and floats with many digits.
    ticks = iter([1000, 1767258000.1234567, 1e-7 + 1767258000])
    store = await Store.open(database, clock=lambda: next(ticks))
    try:
        await store.audit.record("client:1", "signin.failed", "username:a\ud800")
        await store.audit.record("user:1", "test.event", None, ratio=1 / 3, text="Zoë ☃")
        await store.audit.record("user:1", "test.event", "x", nested={"b": [1, 2.5], "a": None})
        verdict = await store.audit.verify()
        [third, second, first] = await store.audit.page(
            AuditFilter(),
            None, 10)
    finally:
        await store.close()
    assert verdict.intact and verdict.rows == 3, verdict
    assert first.created_at == 1000.0 and first.target == "username:a\\ud800"
    assert second.detail == {"ratio": 1 / 3, "text": "Zoë ☃"}
    assert (first.prev_hash, second.prev_hash, third.prev_hash) == (GENESIS, first.hash,
                                                                   second.hash)
    assert third.hash == verdict.head_hash and verdict.head_id == 3


async def test_the_database_refuses_changes_deletions_and_forks(database: Target) -> None:
    await filled(database, 3)
    store = await Store.open(database, migrate=False)
    try:
        refused = ["UPDATE audit_log SET detail = '{}' WHERE id = 2",
                   "UPDATE audit_log SET hash = NULL WHERE id = 3",
                   "DELETE FROM audit_log WHERE id = 3",
                   "DELETE FROM audit_log"]
        if is_postgresql_url(database):
            refused.append("TRUNCATE audit_log")  # fires no row trigger
        for statement in refused:
            with pytest.raises(IntegrityError, match="append-only"):
                await store.db.execute(statement)
        [(head,)] = await store.db.fetchall("SELECT hash FROM audit_log WHERE id = 3")
        inserts = [
            (4, "0" * 64, "f" * 64),  # a fork: not the last row's hash
            (5, head, "f" * 64),  # a gap
            (3, head, "f" * 64),  # an id taken
            (None, head, "f" * 64),  # no id: SQLite would choose it
            (4, head, None),  # no hash
        ]
        for row_id, prev, digest in inserts:
            with pytest.raises(IntegrityError, match="extend the hash chain"):
                await store.db.execute(
                    "INSERT INTO audit_log (id, created_at, actor, action, detail, prev_hash,"
                    " hash) VALUES (?, 0, 'x', 'y', '{}', ?, ?)", (row_id, prev, digest))
    finally:
        await store.close()
    assert (await verify(database)).intact


APPENDER = """
import asyncio, sys
from videoassist.storage import Store

async def main():
    store = await Store.open(sys.argv[1])
    try:
        print("ready", flush=True)
        sys.stdin.readline()  # go
        for n in range(int(sys.argv[2])):
            await store.audit.record(f"process:{sys.argv[3]}", "test.append", None, n=n)
    finally:
        await store.close()

asyncio.run(main())
"""


async def test_processes_appending_at_once_never_fork_the_chain(database: Target) -> None:
    """Two other processes and two connections of this one append to the same database
    at once (the server and CLI commands do); every append lands, in one chain."""
    await filled(database, 1)
    each = 150
    processes = [await asyncio.create_subprocess_exec(
        sys.executable, "-c", APPENDER, str(database), str(each), str(n),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE) for n in (1, 2)]
    stores = [await Store.open(database) for _ in range(2)]
    try:
        for p in processes:  # all four start together
            assert p.stdout is not None and p.stdin is not None
            assert await asyncio.wait_for(p.stdout.readline(), 30) == b"ready\n"
        for p in processes:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            await p.stdin.drain()
        async def append(store: Store, name: str) -> None:
            for n in range(each):
                await store.audit.record(f"store:{name}", "test.append", None, n=n)

        await asyncio.wait_for(asyncio.gather(append(stores[0], "a"), append(stores[1], "b")),
                               60)
        codes = [await asyncio.wait_for(p.wait(), 60) for p in processes]
        assert codes == [0, 0]
        verdict = await stores[0].audit.verify()
        entries = list(reversed(await stores[0].audit.page(AuditFilter(), None, 1000)))
        actors = [e.actor for e in entries]
    finally:
        for store in stores:
            await store.close()
    assert verdict.intact, verdict
    assert verdict.rows == 1 + 4 * each
    assert {a: actors.count(a) for a in set(actors)} == {
        "user:0": 1, "store:a": each, "store:b": each, "process:1": each, "process:2": each}
    # They really ran at once: each writer was appending while another one was.
    spans = {a: (min(e.created_at for e in entries if e.actor == a),
                 max(e.created_at for e in entries if e.actor == a))
             for a in set(actors) - {"user:0"}}
    for actor, (start, end) in spans.items():
        assert any(s < end and start < e for other, (s, e) in spans.items()
                   if other != actor), spans


async def test_200_appends_at_once_from_several_connections_make_one_chain(
        database: Target) -> None:
    """Every append is its own task, four stores (on PostgreSQL, pools of several
    connections each) all at once: each one lands, in one chain that verifies."""
    stores = [await Store.open(database) for _ in range(4)]
    try:
        results = await asyncio.wait_for(asyncio.gather(*(
            stores[n % 4].audit.record(f"store:{n % 4}", "test.append", None, n=n)
            for n in range(200)), return_exceptions=True), 60)
        failed = [repr(r) for r in results if r is not None]
        assert failed == [], f"{len(failed)} appends failed, the first: {failed[0]}"
        verdict = await stores[0].audit.verify()
        entries = await stores[1].audit.page(AuditFilter(), None, 1000)
    finally:
        for store in stores:
            await store.close()
    assert verdict.intact and verdict.rows == 200, verdict
    assert sorted(e.detail["n"] for e in entries) == list(range(200))


async def test_rows_from_before_the_chain_are_chained_by_the_migration(
        empty_database: Target) -> None:
    database = empty_database
    old = [(1767250000.5, "cli", "user.created", "user:1", {"role": "admin"}),
           (1767250001.25, "client:10.0.0.1", "signin.failed", "username:admin",
            {"reason": "credentials"}),
           (1767250002.0, "user:1", "signin.ok", "user:1", {"client": "10.0.0.1"})]
    if is_postgresql_url(database):
        await old_postgresql_database(str(database), old)
    else:
        old_database(Path(database), old)
    store = await Store.open(database)  # migrates: 0005 and its Python step
    try:
        assert await store.db.schema_version() == len(migrations(store.db.dialect))
        verdict = await store.audit.verify()
        assert verdict.intact and verdict.rows == 4, verdict
        rows = await store.audit.recent(10)
        marker = rows[0]
        assert (marker["id"], marker["actor"], marker["action"], marker["detail"]) == (
            4, "system", "audit.chained", {"rows": 3})
        # The old rows are as they were, now chained.
        assert [(r["created_at"], r["actor"], r["action"], r["target"], r["detail"])
                for r in reversed(rows[1:])] == [tuple(o) for o in old]
        await store.audit.record("user:1", "signin.ok", "user:1")
        assert (await store.audit.verify()).rows == 5
    finally:
        await store.close()
    # The chain vouches for them from now on.
    await raw_execute(database, drop_trigger(database, "audit_log_no_update"),
                      "UPDATE audit_log SET target = 'username:root' WHERE id = 2")
    broken = (await verify(database)).broken
    assert broken is not None and (broken.row_id, broken.reason) == (2, "hash")


async def test_a_new_database_has_nothing_to_chain(database: Target) -> None:
    store = await Store.open(database)
    try:
        verdict = await store.audit.verify()
        assert (verdict.intact, verdict.rows, verdict.head_id) == (True, 0, None)
        assert verdict.summary() == "audit log intact: 0 rows"
    finally:
        await store.close()


async def _rehash(database: Target, row_id: int) -> str:
    """Recompute one row's hash after its content changed, as a careful attacker would."""
    [r] = await raw_fetchall(database, "SELECT id, created_at, actor, action, target, detail,"
                                       " prev_hash FROM audit_log WHERE id = ?", (row_id,))
    digest = row_hash(r[6], {"id": r[0], "created_at": r[1], "actor": r[2], "action": r[3],
                             "target": r[4], "detail": json.loads(r[5])})
    return f"UPDATE audit_log SET hash = '{digest}' WHERE id = {row_id}"


# Each edit: the triggers dropped first, the statements, the row verify names and why.
EDITS: dict[str, tuple[list[str], list[str], int, str]] = {
    "detail changed": (["audit_log_no_update"],
                       ["UPDATE audit_log SET detail = '{\"n\":99}' WHERE id = 5"], 5, "hash"),
    "time moved by a microsecond": (
        ["audit_log_no_update"],
        ["UPDATE audit_log SET created_at = created_at + 0.000001 WHERE id = 7"], 7, "hash"),
    "actor changed": (["audit_log_no_update"],
                      ["UPDATE audit_log SET actor = 'user:42' WHERE id = 10"], 10, "hash"),
    "row deleted": (["audit_log_no_delete"], ["DELETE FROM audit_log WHERE id = 6"],
                    6, "missing"),
    "first row deleted": (["audit_log_no_delete"], ["DELETE FROM audit_log WHERE id = 1"],
                          1, "missing"),
    "two rows deleted": (["audit_log_no_delete"],
                         ["DELETE FROM audit_log WHERE id IN (3, 4)"], 3, "missing"),
    "row appended around the chain": (
        ["audit_log_append"],
        ["INSERT INTO audit_log (id, created_at, actor, action, detail)"
         " VALUES (11, 0, 'cli', 'user.created', '{}')"], 11, "unchained"),
    "detail not JSON": (["audit_log_no_update"],
                        ["UPDATE audit_log SET detail = 'oops' WHERE id = 2"], 2, "hash"),
}


@pytest.mark.parametrize(("triggers", "statements", "row_id", "reason"), EDITS.values(),
                         ids=EDITS.keys())
async def test_verify_names_the_first_broken_row(database: Target, triggers: list[str],
                                                 statements: list[str], row_id: int,
                                                 reason: str) -> None:
    await filled(database)
    assert (await verify(database)).intact
    await raw_execute(database, *(drop_trigger(database, t) for t in triggers), *statements)
    verdict = await verify(database)
    assert verdict.broken is not None, verdict
    assert (verdict.broken.row_id, verdict.broken.reason) == (row_id, reason), verdict
    assert f"first broken row {row_id}:" in verdict.summary()


@pytest.mark.parametrize("edited", [
    '{"n":99,"n":4}',  # SQL's json_extract reads the first, json.loads the last
    '{"n": 4}', '{"\\u006e":4}', '{"n":4.0}', '{"n":4} ', '{"n":04}',
])
async def test_verify_requires_the_detail_text_to_be_the_canonical_one(
        database: Target, edited: str) -> None:
    """Issue 20, finding 11: a detail that parses to what was chained but is not the
    text that was (a duplicated key SQL reads otherwise) breaks the chain."""
    await filled(database)
    await raw_execute(database, drop_trigger(database, "audit_log_no_update"),
                      f"UPDATE audit_log SET detail = '{edited}' WHERE id = 5")
    ((text,),) = await raw_fetchall(database, "SELECT detail FROM audit_log WHERE id = 5")
    assert text == edited
    if edited.startswith('{"n":99') and not is_postgresql_url(str(database)):
        assert await raw_fetchall(database, "SELECT json_extract(detail, '$.n')"
                                  " FROM audit_log WHERE id = 5") == [(99,)]
    if edited != '{"n":04}':  # JSON has no leading zeros; the rest parse as chained
        assert json.loads(text) == {"n": 4}
    verdict = await verify(database)
    assert verdict.broken is not None, verdict
    assert (verdict.broken.row_id, verdict.broken.reason) == (5, "hash"), verdict


async def test_a_rehashed_row_breaks_the_link_of_the_next(database: Target) -> None:
    await filled(database)
    await raw_execute(database, drop_trigger(database, "audit_log_no_update"),
                      "UPDATE audit_log SET detail = '{\"n\":99}' WHERE id = 5")
    await raw_execute(database, await _rehash(database, 5))
    broken = (await verify(database)).broken
    assert broken is not None and (broken.row_id, broken.reason) == (6, "prev_hash")


async def test_cutting_the_newest_rows_shows_only_against_a_known_head(
        database: Target) -> None:
    """The chain alone cannot tell a log cut short: its head, noted elsewhere (a backup's
    manifest, a previous verify), can."""
    await filled(database)
    before = await verify(database)
    await raw_execute(database, drop_trigger(database, "audit_log_no_delete"),
                      "DELETE FROM audit_log WHERE id > 8")
    after = await verify(database)
    assert after.intact
    assert (after.head_id, after.head_hash) != (before.head_id, before.head_hash)
