"""The load generator behind ``scripts/bench.py``: synthetic aiortc publishers and
viewers, the server as a child process, and what is measured of both.

- ``choices``: what the command line may say, checked before anything heavy is imported;
- ``media``: the pre-encoded clip, the publishers' tracks and the viewers' frame counts;
- ``peers``: participants of a call over /ws, and the direct pair of the baseline;
- ``server``: ``videoassist serve`` as a child process;
- ``fleet``: several of them on a throwaway PostgreSQL (``videoassist.storage.throwaway``,
  which the tests' databases use too) behind nginx with docs/deploy.md's site (``proxy``);
- ``probes``: CPU, memory and UDP counters read from /proc;
- ``relay``: the relay benchmark itself, and its report;
- ``snapshot``: the snapshot benchmark;
- ``annotations``: the browser client's annotations, in two Chromiums;
- ``tracking``: pinned shapes followed by the server, against the scene's ground truth.
"""


class BenchError(Exception):
    """The run could not be made: one line on stderr, exit 1."""
