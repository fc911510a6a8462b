"""The web transport: the HTTP API, the ``/ws`` signalling endpoint (``ws/``) and the
middleware, request handling only; the work is done by the domain's modules (``jobs``,
``accounts``, ``invitations``...), the calls' hub (``signalling``) and ``storage``.
docs/architecture.md draws the layers."""
