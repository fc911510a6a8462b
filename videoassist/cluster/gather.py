"""One scrape for every worker: the answering worker gathers the others' metrics.

``GET /metrics`` on any worker answers with the metrics of every live node of the
installation, each sample labelled ``worker="N"`` (its slot under the supervisor). The
answering worker reads the others' on their internal addresses, at most
``FETCH_TIMEOUT_S`` each, all at once; ``videoassist_worker_up`` says, per worker,
whether its metrics are in this answer (0: it did not answer in time).
"""

from __future__ import annotations

import asyncio
import logging
import re

import aiohttp

from videoassist.cluster.node import SECRET_HEADER
from videoassist.storage.records import Node

logger = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 2.0
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{?)(.*)$", re.S)
_COMMENT = re.compile(r"^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*)(?: (.*))?$")


async def gather(own: bytes, own_worker: int, others: list[Node], secret: str,
                 path: str) -> bytes:
    """This worker's exposition ``own`` and those of the ``others``, merged, each
    sample labelled with its worker."""
    async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)) as session:
        fetched = await asyncio.gather(*(_fetch(session, node, secret, path)
                                         for node in others))
    texts = {own_worker: own.decode()}
    up = {own_worker: True}
    for node, text in zip(others, fetched, strict=True):
        worker = node.worker if node.worker is not None else -node.id
        up[worker] = text is not None
        if text is not None:
            texts[worker] = text
    return merge(texts, up).encode()


async def _fetch(session: aiohttp.ClientSession, node: Node, secret: str,
                 path: str) -> str | None:
    try:
        async with session.get(f"http://{node.address}{path}",
                               headers={SECRET_HEADER: secret}) as response:
            if response.status == 200:
                return await response.text()
            logger.warning("node %d answered %d for its metrics", node.id, response.status)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        logger.warning("node %d (worker %s) did not give its metrics: %s", node.id,
                       node.worker, exc.__class__.__name__)
    return None


def merge(texts: dict[int, str], up: dict[int, bool]) -> str:
    """Expositions (Prometheus text format 0.0.4) by worker, as one: each family once,
    with the samples of every worker, labelled ``worker``."""
    families: dict[str, list[str]] = {}  # name -> HELP and TYPE lines
    samples: dict[str, list[str]] = {}
    for worker, text in sorted(texts.items()):
        family = ""
        for line in text.splitlines():
            if not line:
                continue
            comment = _COMMENT.match(line)
            if comment:
                family = comment[2]
                lines = families.setdefault(family, [])
                if not any(existing.startswith(f"# {comment[1]} ") for existing in lines):
                    lines.append(line)
                samples.setdefault(family, [])
                continue
            if line.startswith("#"):
                continue
            sample = _SAMPLE.match(line)
            if sample is None or not family:
                continue
            name, brace, rest = sample.groups()
            label = f'worker="{worker}"'
            labelled = (f"{name}{{{label},{rest}" if brace
                        else f"{name}{{{label}}}{rest}")
            samples[family].append(labelled)
    out = ["# HELP videoassist_worker_up 1 if this worker's metrics are in this answer.",
           "# TYPE videoassist_worker_up gauge"]
    out += [f'videoassist_worker_up{{worker="{w}"}} {int(ok)}' for w, ok in sorted(up.items())]
    for family, lines in families.items():
        out += lines
        out += samples[family]
    return "\n".join(out) + "\n"
