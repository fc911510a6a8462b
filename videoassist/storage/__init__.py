"""Storage: the only package that speaks SQL, to SQLite or PostgreSQL (``db.py``).
Imports nothing else of the project but ``videoassist.errors``."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from videoassist.storage.analytics import Analytics
from videoassist.storage.apikeys import ApiKeys
from videoassist.storage.audit import Audit
from videoassist.storage.calls import Calls
from videoassist.storage.db import Database, is_postgresql_url
from videoassist.storage.invites import Invites
from videoassist.storage.jobs import Jobs
from videoassist.storage.nodes import Nodes
from videoassist.storage.signins import SignInFailures
from videoassist.storage.snapshots import Snapshots
from videoassist.storage.users import Users
from videoassist.storage.webhooks import WebhookDeliveries

__all__ = ["Store", "open_database"]


async def open_database(target: Path | str) -> Database:
    """The database at ``target``: a ``postgresql://`` URL, or the path of a SQLite file
    (made if missing). (Here, above the backends, which build on ``db``.)"""
    if is_postgresql_url(target):
        from videoassist.storage.postgres import PostgresDatabase

        return await PostgresDatabase.open(str(target))
    from videoassist.storage.sqlite import SqliteDatabase

    return await SqliteDatabase.open(Path(target))


class Store:
    """The database and its repositories, one per noun."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.users = Users(db, clock)
        self.jobs = Jobs(db, clock)
        self.invites = Invites(db, clock)
        self.calls = Calls(db, clock)
        self.nodes = Nodes(db, clock)
        self.audit = Audit(db, clock)
        self.snapshots = Snapshots(db, clock)
        self.signins = SignInFailures(db, clock)
        self.api_keys = ApiKeys(db, clock)
        self.webhooks = WebhookDeliveries(db, clock)
        self.analytics = Analytics(db, clock)

    @classmethod
    async def open(
        cls, target: Path | str, clock: Callable[[], float] = time.time, migrate: bool = True
    ) -> Store:
        """The store in ``target``: a SQLite file's path, or a ``postgresql://`` URL
        (``Settings.database``)."""
        db = await open_database(target)
        if migrate:
            try:
                await db.migrate()
            except BaseException:
                await db.close()
                raise
        return cls(db, clock)

    async def close(self) -> None:
        await self.db.close()
