"""The ``/ws`` endpoint's message table (``videoassist.api.ws.handlers.HANDLERS``)
against the protocol's checks (``videoassist.signalling.protocol``): every type a client
may send is checked there and handled here, and no handler waits for a type no check
lets through. What each handler does is tested through the real server, in
tests/signalling."""

from __future__ import annotations

import inspect

from videoassist.api.ws import handlers
from videoassist.api.ws.handlers import HANDLERS
from videoassist.signalling import protocol


def test_every_client_message_type_has_a_check_and_a_handler() -> None:
    assert sorted(HANDLERS) == sorted(protocol.CLIENT_TYPES)


def test_each_handler_is_a_coroutine_of_the_handlers_module() -> None:
    for kind, handler in HANDLERS.items():
        assert inspect.iscoroutinefunction(handler), kind
        assert getattr(handlers, handler.__name__) is handler, kind
