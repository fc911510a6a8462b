"""The HTTP API and pages: request handling only; the work is done by the
``accounts``, ``invitations`` and ``storage`` modules."""
