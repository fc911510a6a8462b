"""The event loop's lag watch (``videoassist.loop.watch_lag``): a loop held up by its
own work, and one whose thread waits in a blocking call, are each measured and told
apart in the log."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import pytest

from videoassist.loop import watch_lag

TICK_S = 0.05
WARN_S = 0.3
HELD_S = 0.5  # longer than WARN_S, whatever else the machine runs
LINE = re.compile(r"the event loop was ([0-9.]+) s late; its thread ran ([0-9.]+) s "
                  r"meanwhile \((.*)\)")


async def held_up(hold: object, caplog: pytest.LogCaptureFixture
                  ) -> tuple[list[float], re.Match[str]]:
    """Run the watch, call ``hold()`` on the loop once the watch is sleeping, and
    return what it observed and the line it logged for the longest lateness (the
    machine may hold the loop up now and then too)."""
    caplog.set_level(logging.WARNING, logger="videoassist.loop")
    observed: list[float] = []
    watch = asyncio.create_task(watch_lag(observed.append, tick_s=TICK_S, warn_s=WARN_S))
    try:
        while len(observed) < 2:  # the watch is running, and asleep now
            await asyncio.sleep(TICK_S / 2)
        hold()  # type: ignore[operator]
        seen = len(observed)
        while len(observed) < seen + 1:  # its wake-up after the hold
            await asyncio.sleep(TICK_S / 2)
    finally:
        watch.cancel()
    lines = [LINE.fullmatch(r.getMessage()) for r in caplog.records
             if r.name == "videoassist.loop"]
    assert lines and all(lines), [r.getMessage() for r in caplog.records]
    return observed, max((m for m in lines if m is not None), key=lambda m: float(m[1]))


async def test_a_loop_held_by_its_own_work_is_measured_and_said_so(
        caplog: pytest.LogCaptureFixture) -> None:
    def spin() -> None:  # HELD_S of the thread's own CPU, however long that takes
        until = time.thread_time() + HELD_S
        while time.thread_time() < until:
            pass

    observed, line = await held_up(spin, caplog)
    late, ran = float(line[1]), float(line[2])
    # The hold began up to a tick into the watch's sleep; the line rounds to 0.1 s.
    assert max(observed) >= HELD_S - TICK_S and late >= HELD_S - TICK_S - 0.05
    assert ran >= HELD_S - 0.05
    # Said so when the thread ran at least half the lateness; the line's figures are
    # rounded to 0.1 s, so only a clear case is checked here (else the machine gave
    # the spinning thread little CPU, and the line rightly says so).
    if ran - 0.05 >= (late + 0.05) / 2:
        assert line[3] == "its own work held it"


async def test_a_loop_whose_thread_waits_is_measured_and_said_so(
        caplog: pytest.LogCaptureFixture) -> None:
    observed, line = await held_up(lambda: time.sleep(HELD_S), caplog)
    late, ran = float(line[1]), float(line[2])
    assert max(observed) >= HELD_S - TICK_S and late >= HELD_S - TICK_S - 0.05
    assert ran < late / 2, line[0]  # asleep, the thread ran next to nothing
    assert line[3] == "it waited, or the machine gave it no core"
