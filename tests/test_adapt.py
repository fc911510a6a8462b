"""The publisher's choice of media mode (web/static/js/adapt.js ``ModeChooser``), fed
tick by tick as the browser's getStats() would, in Node.js: the module is plain
JavaScript with no browser API in its chooser. tests/browser/test_stills.py runs the
whole of it in Chromium behind a real thin link; these are the sequences that link
gives only now and then (a busy machine's), each made to happen.

Each sample is one second: the browser's estimate in kbit/s (``availableOutgoingBitrate``;
in stills, what the stills' delivery measured) and the share of packets lost lately.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
ADAPT = ROOT / "web" / "static" / "js" / "adapt.js"

# Feeds each scenario's samples to a new chooser; prints, per scenario, every change
# as [tick, mode, reason] (tick 1 is the first sample).
RUNNER = """
import { readFileSync } from "node:fs";
const { ModeChooser } = await import(process.argv[1]);
const scenarios = JSON.parse(readFileSync(0, "utf8"));
const out = scenarios.map((samples) => {
  const chooser = new ModeChooser({ stills: true });
  const changes = [];
  samples.forEach(([kbps, loss], i) => {
    const change = chooser.feed({ kbps, loss });
    if (change) changes.push([i + 1, change.mode, change.reason]);
  });
  return changes;
});
console.log(JSON.stringify(out));
"""

Sample = tuple[float | None, float | None]


def choose(*scenarios: list[Sample]) -> list[list[tuple[int, str, str]]]:
    """Each scenario's changes of mode: (tick, mode, reason)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("no node: ./scripts/test installs it (the client's checkers need it)")
    done = subprocess.run([node, "--input-type=module", "-e", RUNNER, ADAPT.as_uri()],
                          input=json.dumps(scenarios), capture_output=True, text=True,
                          timeout=60, check=True)
    result: list[list[Any]] = json.loads(done.stdout)
    return [[(tick, mode, reason) for tick, mode, reason in changes] for changes in result]


# A thin link: packets lost, the estimate low. Three ticks of it take the publisher
# from video to stills (DOWN_TICKS); then the stills measure a link that is whole
# again, and five ticks of that bring reduced video (UP_TICKS).
TO_STILLS: list[Sample] = [(80, 0.2)] * 3
BACK_TO_REDUCED: list[Sample] = [(3000, 0.0)] * 5
STILLS_THEN_REDUCED = [(3, "stills", "packet_loss"), (8, "reduced", "packet_loss")]


def test_a_stale_estimate_after_stills_does_not_send_the_publisher_back_to_them() -> None:
    """Back from stills, the browser's estimate is the one of before the stills (no
    video moved it meanwhile) and grows slowly: a busy machine's hog run saw it at 96
    kbit/s for 11 s on a whole link, and the phone went back to stills instead of up to
    video. A few ticks of loss at the start (as the restarted video's first packets
    meet a busy server) held off the step up until the estimate was judged."""
    stale: list[Sample] = ([(96, 0.0)] * 2 + [(96, 0.03)] * 3 + [(96, 0.0)] * 20)
    [changes] = choose(TO_STILLS + BACK_TO_REDUCED + stale)
    assert changes[:2] == STILLS_THEN_REDUCED, changes
    assert [mode for _, mode, _ in changes[2:]] == ["video"], changes
    # The step up waited for five ticks without loss after the blip: tick 8 + 10.
    assert changes[2][0] == 18, changes


def test_an_estimate_that_grew_and_fell_again_still_says_the_link_is_thin() -> None:
    """Back in reduced video, the estimate reaches the stills' limit (150 kbit/s) and
    falls back under it, with little loss (a deep queue): that is the link, and after
    DOWN_TICKS of it, once the try's grace is over, the publisher goes back to stills."""
    grows_then_falls: list[Sample] = [(120, 0.025), (140, 0.025), (160, 0.025),
                                      (180, 0.025)] + [(90, 0.025)] * 10
    [changes] = choose(TO_STILLS + BACK_TO_REDUCED + grows_then_falls)
    assert changes[:2] == STILLS_THEN_REDUCED, changes
    # Judged from the ninth tick after the step up (PROBE_TICKS), down three later.
    assert changes[2:] == [(19, "stills", "low_bandwidth")], changes


def test_after_a_step_down_the_estimate_counts_at_once() -> None:
    """Down from video on loss, the estimate is the link's: under the stills' limit
    for DOWN_TICKS, the publisher goes on to stills without a loss."""
    [changes] = choose([(400, None)] * 9 + [(200, 0.05)] * 3 + [(100, 0.0)] * 3)
    assert changes == [(12, "reduced", "packet_loss"), (15, "stills", "low_bandwidth")]


def test_loss_takes_a_publisher_back_to_stills_whatever_its_estimate() -> None:
    """A stale estimate is not judged, loss is: back to stills after DOWN_TICKS."""
    [changes] = choose(TO_STILLS + BACK_TO_REDUCED + [(96, 0.1)] * 3)
    assert changes == [*STILLS_THEN_REDUCED, (11, "stills", "packet_loss")], changes
