"""What SQL cannot do in a migration (SHA-256), by migration number: run in that
migration's transaction after its statements, by either backend's ``migrate``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from videoassist.storage import chain
from videoassist.storage.db import Transaction

PYTHON_STEPS: dict[int, Callable[[Transaction], Awaitable[None]]] = {
    chain.CHAIN_SCHEMA_VERSION: chain.seal_existing,
}
