"""Changes: the database tells this node at once what decides who may stay in a call.

On PostgreSQL, triggers (migration 9) notify the channel ``videoassist_changes`` in the
transaction that disables or signs out a user, closes a job, withdraws a link, revokes
an API key or ends a call, whichever node or command made it. Each node holds one
connection of its own that LISTENs there (``application_name`` ``videoassist-listen
PID``), and every notification wakes its hub's watcher, which looks at its calls at
once (``Hub.watch_revocations``). The watcher's poll stays, as the safety net.

While that connection is up and the watcher has looked since it came up, the hub trusts
what it has read: a signalling message is not checked against the database one by
one. When it is lost (the database restarted, a network cut, ``pg_terminate_backend``)
the node says so in its log and metrics, trusts what the watcher read only for
``watch.TRUSTED_LOOK_S`` after each look began (as on SQLite), and polls at least every
``watch.UNHEARD_POLL_S`` (0.25 s), until it is back: it
reconnects after ``RETRY_S`` (0.5 s, then longer), and then looks at its calls at once,
for what it missed meanwhile.

On SQLite there are no notifications: nothing runs here, and the hub polls.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Protocol

from videoassist.metrics import Metrics
from videoassist.storage.db import Database

logger = logging.getLogger(__name__)

APPLICATION_NAME = "videoassist-listen"
# Seconds before each try to (re)open the connection, the last repeated.
RETRY_S = (0.5, 1.0, 2.0, 5.0, 10.0)


class Watcher(Protocol):
    """What the notifications wake (the hub's ``signalling.watch.Watch``)."""

    def changed(self, table: str, row: int) -> None:
        """A row that may decide who stays in a call changed."""

    def notifications(self, up: bool) -> None:
        """The notifications started (again), or stopped, coming."""


class ChangeListener:
    """This node's LISTEN connection, kept open."""

    def __init__(self, db: Database, url: str | None, watcher: Watcher,
                 metrics: Metrics) -> None:
        self._db = db
        self._url = url
        self._watcher = watcher
        self._metrics = metrics
        self.name = f"{APPLICATION_NAME} {os.getpid()}"

    def _changed(self, table: str, row: int) -> None:
        self._metrics.change_notifications.labels(table).inc()
        self._watcher.changed(table, row)

    async def run(self) -> None:
        """Listen until cancelled, reconnecting whenever the connection is lost; return
        at once on a database without notifications."""
        failures = 0
        down_since: float | None = None
        while True:
            try:
                listening = await self._db.listen(self._changed, self.name, self._url)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = RETRY_S[min(failures, len(RETRY_S) - 1)]
                failures += 1
                self._metrics.change_listener_failures.labels("connect").inc()
                logger.warning("cannot open the notification connection (%s): trying again "
                               "in %g s; meanwhile the poll covers", exc, delay)
                await asyncio.sleep(delay)
                continue
            if listening is None:
                logger.debug("this database sends no notifications: polling for changes")
                return
            failures = 0
            self._metrics.change_listener_up.set(1)
            self._watcher.notifications(True)
            if down_since is None:
                logger.info("listening for changes on the database (%s)", self.name)
            else:
                logger.warning("the notification connection is back after %.1f s; looking "
                               "at every call for what changed meanwhile",
                               time.monotonic() - down_since)
            try:
                why = await listening.lost()
            except Exception as exc:  # never let the listener die: it is the node's ears
                logger.exception("watching the notification connection failed")
                why = f"{type(exc).__name__}: {exc}"
            finally:
                self._metrics.change_listener_up.set(0)
                self._watcher.notifications(False)
                await listening.close()
            down_since = time.monotonic()
            self._metrics.change_listener_failures.labels("lost").inc()
            logger.warning("lost the notification connection: %s; reconnecting in %g s, "
                           "meanwhile the poll covers", why, RETRY_S[0])
            failures = 1
            await asyncio.sleep(RETRY_S[0])
