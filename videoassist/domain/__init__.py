"""The domain: one module per noun, each holding its rules. A rule checks its input,
writes through ``storage``, audits and emits its own events, whoever calls it: the web
(``api``), the ``/ws`` endpoint and calls (``signalling``) or the command line (``cli``);
so that the doors cannot differ (tests/test_cli_api_parity.py). Who acted is an
``Actor`` (``videoassist.actors``). docs/architecture.md draws the layers."""
