"""What ``bench.py``'s options may say, without the modules that act on it: checking a
command line imports none of aiortc, aiohttp or the server (a mistyped option is
refused at once, not after seconds of imports).
"""

from __future__ import annotations

import re

TRANSCODE = {"forward": "when-needed", "transcode": "always"}  # mode -> setting
SERVERS = ("videoassist", "janus")

SCENARIO = re.compile(
    r"(?P<kind>stall|offline|drop)-(?P<seconds>\d{1,3})|(?P<plain>move|reload|thin-phone|thin)")
DEFAULT_SCENARIOS = ("stall-25", "offline-5", "offline-30", "move", "reload", "thin",
                     "thin-phone", "drop-20")
MAX_MOVES = 24       # veth pairs a namespace may have, less the first (netns.py)


def parse_scenario(name: str) -> tuple[str, float]:
    """(kind, seconds) of a scenario name; ValueError if it is none."""
    match = SCENARIO.fullmatch(name)
    if match is None:
        raise ValueError(f"unknown scenario {name!r}: stall-S, offline-S, drop-S (S "
                         f"seconds, 1 to 999), move, reload, thin or thin-phone")
    if match["plain"]:
        return match["plain"], 0.0
    seconds = float(match["seconds"])
    if seconds < 1:
        raise ValueError(f"{name}: at least 1 s")
    return match["kind"], seconds
