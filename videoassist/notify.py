"""The outgoing notify webhook: hands a join link to the company's SMS or mail gateway.

POSTs ``{"to", "text", "url"}`` as JSON, retrying with backoff on failure. The URL
holds a live one-time token: it is sent only to the configured gateway (a redirect is
a failed attempt, never followed) and never written to a log.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

logger = logging.getLogger(__name__)

RETRY_DELAYS_S = (1.0, 4.0, 15.0)


class Notifier:
    def __init__(self, url: str, timeout_s: float,
                 retry_delays_s: tuple[float, ...] | None = None) -> None:
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._delays = RETRY_DELAYS_S if retry_delays_s is None else retry_delays_s
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return bool(self._url)

    def send_invite(self, to: str, job_title: str, company: str, url: str,
                    invite_id: int) -> bool:
        """Deliver in the background; False when no webhook is configured."""
        if not self.enabled:
            return False
        text = f"{company}: tap the link to show us the problem with '{job_title}' on camera."
        task = asyncio.create_task(self._deliver({"to": to, "text": text, "url": url},
                                                 invite_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _deliver(self, payload: dict[str, str], invite_id: int) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        for attempt, delay in enumerate((0.0, *self._delays), start=1):
            await asyncio.sleep(delay)
            try:
                async with self._session.post(self._url, json=payload,
                                              allow_redirects=False) as response:
                    if response.status < 300:
                        logger.info("[invite %d] notify webhook accepted (attempt %d)",
                                    invite_id, attempt)
                        return
                    logger.warning("[invite %d] notify webhook answered %d (attempt %d)",
                                   invite_id, response.status, attempt)
            except (aiohttp.ClientError, TimeoutError) as exc:
                logger.warning("[invite %d] notify webhook failed (attempt %d): %s",
                               invite_id, attempt, type(exc).__name__)
        logger.error("[invite %d] notify webhook gave up after %d attempts", invite_id,
                     len(self._delays) + 1)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
