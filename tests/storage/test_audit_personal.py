"""Personal data in the audit log, on SQLite and PostgreSQL: erasing a job erases the
addresses its links were redeemed from, every row stays and the chain still verifies;
an erasure made by hand (another job's row, a forged erasure row, another field, a
value swapped) is refused by the triggers or named by verify (issue 20)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.support.databases import Target, drop_trigger, raw_execute, raw_fetchall
from videoassist.storage import Store
from videoassist.storage.audit import AuditFilter
from videoassist.storage.chain import GENESIS, canonical, row_hash
from videoassist.storage.db import is_postgresql_url, migrations
from videoassist.storage.errors import IntegrityError

CUSTOMER, SECOND_CUSTOMER, OTHER_JOBS = "198.51.100.23", "198.51.100.24", "203.0.113.99"
STAFF = "192.0.2.1"


async def logged(database: Target) -> None:
    """Rows 1-5: job 1's two customers (rows 1 and 4), job 2's (row 3), a staff
    sign-in (row 5, not personal: staff addresses stay)."""
    store = await Store.open(database)
    try:
        await store.audit.record("invite:1", "invite.redeemed", "job:1", {"client": CUSTOMER})
        await store.audit.record("invite:1", "call.joined", "job:1", call=1, participant=1)
        await store.audit.record("invite:2", "invite.redeemed", "job:2", {"client": OTHER_JOBS})
        await store.audit.record("invite:3", "invite.redeemed", "job:1",
                                 {"client": SECOND_CUSTOMER})
        await store.audit.record("user:1", "signin.ok", "user:1", client=STAFF)
    finally:
        await store.close()


async def erased(database: Target, job: str = "job:1") -> list[int]:
    store = await Store.open(database)
    try:
        return await store.audit.erase_personal("user:1", "job.erased", job, snapshot_ids=[])
    finally:
        await store.close()


async def verdict(database: Target) -> tuple[int, str] | None:
    store = await Store.open(database, migrate=False)
    try:
        broken = (await store.audit.verify()).broken
    finally:
        await store.close()
    return None if broken is None else (broken.row_id, broken.reason)


async def everything(database: Target) -> str:
    """Every column of every row of the audit log, as text."""
    return repr(await raw_fetchall(database, "SELECT * FROM audit_log ORDER BY id"))


async def test_erasing_a_job_erases_its_customers_addresses_and_the_chain_holds(
        database: Target) -> None:
    await logged(database)
    before = await raw_fetchall(database, "SELECT id, detail, hash FROM audit_log ORDER BY id")
    text = await everything(database)
    assert CUSTOMER in text and SECOND_CUSTOMER in text
    # What the chain covers is a commitment, not the address.
    assert all(CUSTOMER not in row[1] for row in before)
    assert await verdict(database) is None

    assert await erased(database) == [1, 4]

    text = await everything(database)
    assert CUSTOMER not in text and SECOND_CUSTOMER not in text
    assert OTHER_JOBS in text and STAFF in text  # another job's, and staff's, stay
    after = await raw_fetchall(database, "SELECT id, detail, hash FROM audit_log ORDER BY id")
    assert after[:5] == before  # every row kept, as it was chained
    assert json.loads(after[5][1]) == {"redacted": [1, 4], "snapshot_ids": []}
    assert await verdict(database) is None
    if not is_postgresql_url(database):  # nor in the file or its WAL (secure_delete)
        path = Path(database)
        for file in (path, path.with_name(path.name + "-wal")):
            if file.exists():
                assert CUSTOMER.encode() not in file.read_bytes(), file.name
    store = await Store.open(database)
    try:
        [entry] = await store.audit.page(AuditFilter(), 2, 1)
        assert entry.id == 1 and entry.personal is None
        assert entry.detail["personal"]["fields"] == ["client"]
        [other] = await store.audit.page(AuditFilter(), 4, 1)
        assert other.personal is not None and other.personal["values"] == {"client": OTHER_JOBS}
    finally:
        await store.close()


# Erasures made by hand, each with the triggers it needs dropped: the row verify
# names, and why. Rows 1-5 as ``logged`` writes them, row 6 job 1's erasure.
HAND_MADE: dict[str, tuple[list[str], list[str], tuple[int, str]]] = {
    "another job's row, through the path the triggers allow": (
        [], ["UPDATE audit_log SET personal = NULL WHERE id = 3"], (3, "personal")),
    "this job's erasure edited to name another job's row": (
        ["audit_log_no_update"],
        ["UPDATE audit_log SET personal = NULL WHERE id = 3",
         "UPDATE audit_log SET detail = '{\"redacted\":[1,3,4],\"snapshot_ids\":[]}'"
         " WHERE id = 6"], (6, "hash")),
    "another field erased (the target)": (
        ["audit_log_no_update"], ["UPDATE audit_log SET target = NULL WHERE id = 3"],
        (3, "hash")),
    "another field erased (the staff address in a detail)": (
        ["audit_log_no_update"], ["UPDATE audit_log SET detail = '{}' WHERE id = 5"],
        (5, "hash")),
    "an address swapped for another": (
        ["audit_log_no_update"],
        ["UPDATE audit_log SET personal = replace(personal, '203.0.113.99', '203.0.113.98')"
         " WHERE id = 3"], (3, "personal")),
    "personal data put on a row that had none": (
        ["audit_log_no_update"],
        ["UPDATE audit_log SET personal = '{\"nonce\":\"00\",\"values\":{\"client\":\"1.2.3.4\"}}'"
         " WHERE id = 2"], (2, "personal")),
}


@pytest.mark.parametrize(("triggers", "statements", "broken"), HAND_MADE.values(),
                         ids=HAND_MADE.keys())
async def test_a_hand_made_erasure_is_caught_by_verify(
        database: Target, triggers: list[str], statements: list[str],
        broken: tuple[int, str]) -> None:
    await logged(database)
    await erased(database)
    await raw_execute(database, *(drop_trigger(database, t) for t in triggers), *statements)
    assert await verdict(database) == broken


async def test_a_forged_erasure_row_cannot_vouch_for_another_jobs_row(
        database: Target) -> None:
    """Whoever can append to the chain can write an erasure row: it still has to be of
    the erased row's own target."""
    await logged(database)
    await raw_execute(database, "UPDATE audit_log SET personal = NULL WHERE id = 3")
    store = await Store.open(database)
    try:
        await store.audit.record("user:1", "job.erased", "job:1", redacted=[3],
                                 snapshot_ids=[])
    finally:
        await store.close()
    assert await verdict(database) == (6, "personal")


async def test_the_triggers_allow_erasing_personal_data_and_nothing_else(
        database: Target) -> None:
    await logged(database)
    store = await Store.open(database, migrate=False)
    try:
        for statement in [
            "UPDATE audit_log SET personal = 'x' WHERE id = 1",
            "UPDATE audit_log SET personal = NULL, target = 'job:9' WHERE id = 1",
            "UPDATE audit_log SET personal = NULL, detail = '{}' WHERE id = 1",
            "UPDATE audit_log SET detail = '{}' WHERE id = 5",
        ]:
            with pytest.raises(IntegrityError, match="append-only"):
                await store.db.execute(statement)
        assert await store.db.execute("UPDATE audit_log SET personal = NULL WHERE id = 1") == 1
    finally:
        await store.close()
    assert await verdict(database) == (1, "personal")  # allowed, and still named


async def test_rows_from_before_erasable_data_keep_verifying(tmp_path: Path) -> None:
    """A database at schema 10, its rows chained with the address in their detail as
    that version wrote them: verify (which does not migrate) passes on it, and after
    migration 11, and after its job is erased, which cannot take the address out of
    a chained detail (docs/security.md says so)."""
    path = tmp_path / "db.sqlite3"
    conn = sqlite3.connect(path)
    try:
        for number, _, sql in migrations():
            if number <= 10:
                conn.executescript(sql)
        conn.execute("PRAGMA user_version = 10")
        prev = GENESIS
        for row_id, (action, detail) in enumerate(
                [("invite.redeemed", {"client": CUSTOMER}), ("call.joined", {"call": 1})], 1):
            row = {"id": row_id, "created_at": 1767258000.0 + row_id, "actor": "invite:1",
                   "action": action, "target": "job:1", "detail": detail}
            digest = row_hash(prev, row)
            conn.execute("INSERT INTO audit_log (id, created_at, actor, action, target,"
                         " detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (row_id, row["created_at"], "invite:1", action, "job:1",
                          canonical(detail).decode("ascii"), prev, digest))
            prev = digest
        conn.commit()
    finally:
        conn.close()
    assert await verdict(path) is None  # at schema 10, unmigrated
    assert await erased(path) == []  # migrates to 11; nothing erasable in the old rows
    assert await verdict(path) is None
    assert CUSTOMER in await everything(path)
