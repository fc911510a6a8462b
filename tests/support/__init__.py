"""Helpers shared by the tests and by the load generator (``scripts/loadgen``), one
module per noun; the pytest fixtures built on them are in the conftest files.

- ``server``: the in-process server (the whole app on 127.0.0.1 port 0) and its client;
- ``process``: the ``videoassist`` command and ``videoassist serve`` as child processes;
- ``workers``: ``serve`` with several workers, and clients that reach a chosen one;
- ``clips``: synthetic media, pre-encoded, with each frame's id as a barcode;
- ``peers``: a real aiortc client of the server, and what it received;
- ``loss``: a client's video packets dropped on their way out;
- ``browser``: Debian's Chromium (flags, sizes, screenshots) and the page helpers;
- ``webhooks``: a real webhook receiver that checks signatures;
- ``metrics``: GET /metrics, parsed;
- ``docs``: the fenced blocks and JSON examples of docs/*.md;
- ``snapshots``: a stored snapshot made without a live call;
- ``labels``: a snapshot label in each script customers type in;
- ``audit``: a database as videoassist left it before the audit chain;
- ``seed``: a job history with known analytics figures.

Test modules and conftest files import from here, never from one another
(tests/test_layout.py holds that).
"""
