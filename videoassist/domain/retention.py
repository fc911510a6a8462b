"""Retention: snapshots, chat and events older than a job's retention are purged, and
the names its join links were made out to (a customer's) are cleared.

A job's own ``retention_days`` wins over ``VIDEOASSIST_RETENTION_DAYS``; with
neither, nothing of it is purged. Snapshots go by the time their frame was
captured (every version of it at once), chat and events by when they were written.
The job, its notes, and the audit log stay. The server purges every
``VIDEOASSIST_RETENTION_CHECK_S``, on one node at a time (a periodic duty:
``cluster.duties``); ``videoassist purge`` does it at once.
"""

from __future__ import annotations

import logging

from videoassist.actors import SYSTEM
from videoassist.config import Settings
from videoassist.storage import Store

logger = logging.getLogger(__name__)


async def purge(store: Store, settings: Settings, now: float) -> dict[str, int]:
    """Purge what has expired at ``now``; return how many of each were deleted."""
    counts, snapshot_ids = await store.jobs.purge(now, settings.retention_days or None)
    if any(counts.values()):
        logger.info("retention purged %(snapshots)d snapshots, %(messages)d messages and "
                    "%(events)d events, and cleared %(names)d names", counts)
        await store.audit.record(SYSTEM, "retention.purged", None, **counts,
                                 snapshot_ids=snapshot_ids)
    return counts
