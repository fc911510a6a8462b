"""Password hashes: a sign-in for a user who does not exist costs the same scrypt as one
for a user who does, so its time does not tell which usernames exist (the dummy hash
``verify_password`` checks against is a constant written in the module)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from videoassist.auth.passwords import hash_password, verify_password

PASSWORD = "correct horse battery"


def test_an_unknown_user_costs_the_same_scrypt_as_a_known_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    known = hash_password(PASSWORD)  # what a user's password is stored as today
    calls: list[dict[str, Any]] = []
    scrypt = hashlib.scrypt

    def recording(password: bytes, **params: Any) -> bytes:
        # The work scrypt does: its cost parameters and the salt's and key's lengths.
        calls.append({k: len(v) if isinstance(v, bytes) else v for k, v in params.items()})
        return scrypt(password, **params)

    monkeypatch.setattr(hashlib, "scrypt", recording)
    assert not verify_password("a wrong guess", known)
    assert not verify_password("a wrong guess", None)  # no such user
    assert not verify_password(PASSWORD, None)
    assert verify_password(PASSWORD, known)
    assert len(calls) == 4, calls
    assert calls[1] == calls[2] == calls[0] == calls[3], calls
