"""The audit log's hash chain: canonical JSON, each row's hash, and checking a chain.

Each row of ``audit_log`` carries ``prev_hash`` (the hash of the row before it, 64
zeros for row 1) and ``hash``::

    hash = hex(SHA-256(ascii(prev_hash) || canonical(row)))

where ``row`` is ``{"id", "created_at", "actor", "action", "target", "detail"}``, with
``detail`` parsed from the stored JSON text; that text must be the canonical form
byte for byte (a duplicated key, which SQL's ``json_extract`` reads differently from
``json.loads``, or any other spelling of the same value is a break). ``canonical`` is
JSON with keys sorted, no whitespace, every character outside printable ASCII escaped
as ``\\uXXXX`` (so the bytes are ASCII), and numbers as
Python writes them: integers in decimal, floats as the shortest decimal that reads
back as the same double (``repr``). docs/security.md says the same for auditors who
check a log with their own code.

Personal data (a customer's IP address) is kept out of what is chained, so that it can
be erased (schema 11): a row's personal values are stored beside it, in the column
``personal``, as the canonical JSON ``{"nonce": N, "values": {...}}`` with a random
128-bit nonce, and the chained ``detail`` carries their commitment, ``"personal":
{"fields": [names], "sha256": hex SHA-256 of that text}``. Erasing them sets
``personal`` to NULL, the one change the triggers allow; the row that erases them (an
action of ``ERASURES``) names them in its own chained detail, ``"redacted": [ids]``,
and must have the same target. ``Verifier`` checks that values present match their
commitment, and that every row whose values are gone is named by a later erasure of
its target: any other erasure is a break.

Nothing here imports the rest of the project; ``db`` runs ``seal_existing`` as the
Python step of migration 0005, on either database.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from videoassist.storage.db import Transaction

GENESIS = "0" * 64
# The migration that added the chain: databases before it have no hash columns.
CHAIN_SCHEMA_VERSION = 5
# The migration that added erasable personal data (the column ``personal``).
PERSONAL_SCHEMA_VERSION = 11
# Actions whose row erases the personal data of earlier rows with its target.
ERASURES = frozenset({"job.erased"})
# Columns in the order ``Verifier.feed`` takes them.
COLUMNS = "id, created_at, actor, action, target, detail, prev_hash, hash, personal"


def columns_at(version: int) -> str:
    """``COLUMNS`` of a database at schema ``version`` (``personal`` NULL before 11)."""
    if version >= PERSONAL_SCHEMA_VERSION:
        return COLUMNS
    return COLUMNS.replace(", personal", ", NULL AS personal")
_SEAL_BATCH = 500


def canonical(value: Any) -> bytes:
    """The canonical JSON bytes of a value (ASCII)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def row_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    """The hash of a row (its six fields) chained to the hash before it."""
    fields = {k: row[k] for k in ("id", "created_at", "actor", "action", "target", "detail")}
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(fields)).hexdigest()


def seal_personal(values: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The text to store in ``personal`` for ``values``, and the commitment to put in
    the chained detail in their place. The nonce keeps the commitment from telling
    which of the few possible values (2^32 IPv4 addresses) was committed."""
    text = canonical({"nonce": secrets.token_hex(16), "values": dict(values)})
    return text.decode("ascii"), {"fields": sorted(values),
                                  "sha256": hashlib.sha256(text).hexdigest()}


def _personal_matches(text: Any, commitment: Any) -> bool:
    """Whether stored personal ``text`` is what ``commitment`` committed to."""
    if not isinstance(text, str) or not isinstance(commitment, dict):
        return False
    try:
        value = json.loads(text)
        raw = text.encode("ascii")
    except (ValueError, RecursionError):  # UnicodeError is a ValueError
        return False
    return (canonical(value) == raw and isinstance(value, dict)
            and set(value) == {"nonce", "values"} and isinstance(value["values"], dict)
            and commitment.get("fields") == sorted(value["values"])
            and commitment.get("sha256") == hashlib.sha256(raw).hexdigest())


@dataclass(frozen=True)
class Break:
    """The first row where the chain does not hold, and why."""

    row_id: int
    reason: str  # 'missing', 'unchained', 'prev_hash', 'hash', 'personal'
    message: str


@dataclass(frozen=True)
class Verdict:
    rows: int  # rows checked, up to and including the break
    head_id: int | None  # the last row that checked out
    head_hash: str | None
    broken: Break | None

    @property
    def intact(self) -> bool:
        return self.broken is None

    def summary(self) -> str:
        """One line for an operator."""
        if self.broken is not None:
            return (f"audit log broken: first broken row {self.broken.row_id}: "
                    f"{self.broken.message} ({self.rows} rows checked)")
        if self.head_id is None:
            return "audit log intact: 0 rows"
        return (f"audit log intact: {self.rows} rows checked, head row {self.head_id} "
                f"hash {self.head_hash}")


class Verifier:
    """Checks rows fed in id order; stops at the first break."""

    def __init__(self) -> None:
        self.rows = 0
        self._last_id = 0
        self._last_hash = GENESIS
        self.broken: Break | None = None
        # Rows whose personal data is gone, by id, with their target: until a later
        # erasure of that target names them.
        self._erased: dict[int, str | None] = {}

    def feed(self, row: Sequence[Any]) -> Break | None:
        """One row, as the columns of ``COLUMNS``; the break, if this row is one."""
        if self.broken is not None:
            return self.broken
        row_id, created_at, actor, action, target, detail, prev_hash, stored, personal = row
        self.rows += 1
        expected = self._last_id + 1
        if row_id != expected:
            after = (f"row {self._last_id} is followed by row {row_id}" if self._last_id
                     else f"the log starts at row {row_id}")
            return self._break(expected, "missing", f"missing ({after})")
        if stored is None or prev_hash is None:
            return self._break(row_id, "unchained", "it has no hash: written around the chain")
        if prev_hash != self._last_hash:
            before = f"row {self._last_id}'s hash" if self._last_id else "the chain's start"
            return self._break(row_id, "prev_hash", f"its prev_hash does not match {before}")
        try:
            parsed = json.loads(detail)
            computed = row_hash(prev_hash, {
                "id": row_id, "created_at": created_at, "actor": actor, "action": action,
                "target": target, "detail": parsed})
            exact = isinstance(detail, str) and canonical(parsed) == detail.encode("ascii")
        except (TypeError, ValueError, RecursionError):  # UnicodeError is a ValueError
            computed, exact = None, False
        if computed != stored:
            return self._break(row_id, "hash", "hash mismatch: its content is not what was "
                                               "chained")
        if not exact:  # parses to what was chained, but SQL may read it otherwise
            return self._break(row_id, "hash", "its detail is not stored as the canonical "
                                               "JSON that was chained (edited text)")
        problem = self._personal(row_id, action, target, parsed, personal)
        if problem is not None:
            return self._break(row_id, "personal", problem)
        self._last_id, self._last_hash = row_id, stored
        return None

    def _personal(self, row_id: int, action: Any, target: Any, detail: Any, personal: Any
                  ) -> str | None:
        """What is wrong with the row's personal data or the erasures it names."""
        commitment = detail.get("personal") if isinstance(detail, dict) else None
        if personal is not None and not _personal_matches(personal, commitment):
            return "its personal data is not what was chained"
        if personal is None and commitment is not None:
            self._erased[row_id] = target  # a later erasure of its target must name it
        if action in ERASURES and isinstance(detail, dict) and "redacted" in detail:
            named = detail["redacted"]
            if not isinstance(named, list):
                return "its list of erased rows is not a list"
            for erased in named:
                if (not isinstance(erased, int) or erased not in self._erased
                        or self._erased[erased] != target):
                    return (f"it names row {erased} as erased with it, which is not an "
                            f"earlier row about {target} whose personal data is gone")
                del self._erased[erased]
        return None

    def _break(self, row_id: int, reason: str, message: str) -> Break:
        self.broken = Break(row_id, reason, message)
        return self.broken

    def verdict(self) -> Verdict:
        """The verdict on the rows fed so far, as a whole log: rows whose personal data
        is gone without an erasure naming them are a break too."""
        if self.broken is None and self._erased:
            self._break(min(self._erased), "personal", "its personal data was erased, but "
                        "no erasure of its target names it (a hand-made erasure)")
        head = (self._last_id, self._last_hash) if self._last_id else (None, None)
        return Verdict(self.rows, head[0], head[1], self.broken)


def verify_rows(rows: Iterable[Sequence[Any]]) -> Verdict:
    """Check a whole chain given as rows of ``COLUMNS`` in id order."""
    verifier = Verifier()
    for row in rows:
        if verifier.feed(row) is not None:
            break
    return verifier.verdict()


async def seal_existing(tx: Transaction) -> None:
    """Migration 0005's Python step, inside its transaction: chain the rows written
    before the chain existed, as they are, then append an ``audit.chained`` row that
    says how many there were. From then on the chain vouches for them; it cannot say
    what happened to them before."""
    last_id, last_hash, count = 0, GENESIS, 0
    while True:
        batch = await tx.fetchall(
            "SELECT id, created_at, actor, action, target, detail FROM audit_log"
            " WHERE id > ? ORDER BY id LIMIT ?", (last_id, _SEAL_BATCH))
        if not batch:
            break
        for row_id, created_at, actor, action, target, detail in batch:
            row = {"id": row_id, "created_at": created_at, "actor": actor, "action": action,
                   "target": target, "detail": json.loads(detail)}
            digest = row_hash(last_hash, row)
            await tx.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?",
                             (last_hash, digest, row_id))
            last_id, last_hash, count = row_id, digest, count + 1
    if count:
        detail = {"rows": count}
        row = {"id": last_id + 1, "created_at": time.time(), "actor": "system",
               "action": "audit.chained", "target": None, "detail": detail}
        await tx.execute(
            "INSERT INTO audit_log (id, created_at, actor, action, target, detail, prev_hash,"
            " hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (row["id"], row["created_at"], "system", "audit.chained", None,
             canonical(detail).decode("ascii"), last_hash, row_hash(last_hash, row)))
