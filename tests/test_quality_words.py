"""The words of the call's quality badge (web/static/js/quality.js ``describe``), run in
Node.js: the module is plain JavaScript, its words a function of the connection's state.
tests/browser/test_indicators.py reads the badge in Chromium on a live call; these are
the states a live call passes through too quickly, or too rarely, to read there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

QUALITY = Path(__file__).resolve().parent.parent / "web" / "static" / "js" / "quality.js"

RUNNER = """
import { readFileSync } from "node:fs";
const { describe } = await import(process.argv[1]);
const states = JSON.parse(readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(states.map((state) => describe(state))));
"""

BASE = {"rtt": None, "loss": 0, "picture": "none", "stuckMs": 0, "staff": False}


def described(states: list[dict[str, Any]]) -> list[dict[str, str]]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("no node: ./scripts/test installs it (the client's checkers need it)")
    done = subprocess.run([node, "--input-type=module", "-e", RUNNER, QUALITY.as_uri()],
                          input=json.dumps(states), capture_output=True, text=True,
                          timeout=60, check=True)
    result: list[dict[str, str]] = json.loads(done.stdout)
    return result


def test_while_the_media_connects_the_badge_says_the_video_is_starting() -> None:
    """The status line says "Connected" once the call is joined; the badge, which
    measures the media connection made after it, does not say "Connecting…" beside it."""
    for staff in (False, True):
        (words,) = described([{**BASE, "connection": "connecting", "staff": staff}])
        assert words == {"level": "none", "text": "Starting video…",
                         "detail": "The call is connected; its video is starting."}


def test_the_badge_says_the_connection_in_plain_words_or_with_its_numbers() -> None:
    live = {**BASE, "connection": "connected", "picture": "live"}
    plain, staff, lost, weak = described([
        {**live, "rtt": 0.04},
        {**live, "rtt": 0.04, "staff": True},
        {**BASE, "connection": "reconnecting"},
        {**live, "rtt": 0.5, "loss": 0.05, "staff": True},
    ])
    assert plain == {"level": "good", "text": "Good connection",
                     "detail": "40 ms round trip, 0% lost"}
    assert staff["text"] == "Good connection (40 ms)"
    assert lost == {"level": "none", "text": "Reconnecting…",
                    "detail": "The connection was lost."}
    assert weak["level"] == "fair" and weak["text"] == "Fair connection (500 ms, 5% lost)"
