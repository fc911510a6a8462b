"""Secrets generated into the data directory on first run (mode 0600), when the
settings do not give them: the token signing keys, the TURN secret, the webhook
signing secret, the snapshot key-encryption key and the secret between the server's
own nodes. With several workers the supervisor makes them all before it starts any
worker, so that every worker reads the same ones.

The data directory itself is 0700: made so when it is made here or by the store, and
made so again at every start and CLI command (``private_data_dir``) if it is found
looser, since ``mkdir``'s mode does nothing to a directory that already exists (one
made by hand, unpacked from an archive, or by an older installer).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import secrets
import stat
from pathlib import Path

from videoassist.auth.tokens import SigningKey
from videoassist.config import Settings
from videoassist.errors import ConfigError

logger = logging.getLogger(__name__)

JWT_KEYS_FILE = "jwt-keys.json"
TURN_SECRET_FILE = "turn-secret"  # noqa: S105 (a file name)
SNAPSHOT_KEY_FILE = "snapshot-key"
SNAPSHOT_KEY_BYTES = 32
WEBHOOK_SECRET_FILE = "webhook-secret"  # noqa: S105 (a file name)
# What a node shows another to be let in on its internal address (videoassist.cluster).
NODE_SECRET_FILE = "node-secret"  # noqa: S105 (a file name)


DATA_DIR_MODE = 0o700


def private_data_dir(settings: Settings) -> None:
    """Make an existing data directory 0700 if it is looser and this process's user
    owns it (the owner may chmod; nobody else should). One that another user owns is
    left as it is, with a warning if others may enter it. A missing one is left to be
    made, 0700, by whoever writes into it first."""
    path = settings.data_dir
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode) or stat.S_IMODE(info.st_mode) == DATA_DIR_MODE:
        return
    if info.st_uid == os.geteuid():
        os.chmod(path, DATA_DIR_MODE)
        logger.warning("data directory %s was mode %o: made %o", path,
                       stat.S_IMODE(info.st_mode), DATA_DIR_MODE)
    elif info.st_mode & 0o077:
        logger.warning("data directory %s is mode %o and belongs to another user (uid %d): "
                       "make it %o", path, stat.S_IMODE(info.st_mode), info.st_uid,
                       DATA_DIR_MODE)


def _write_private(path: Path, text: str) -> None:
    """Write a 0600 file atomically (never readable by others, even for an instant)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _new_key() -> dict[str, str]:
    return {"kid": secrets.token_hex(4), "key": secrets.token_urlsafe(48)}


def signing_keys(settings: Settings) -> list[SigningKey]:
    """The configured keys, else those in the data dir, else two new ones there."""
    try:
        if settings.jwt_keys is not None:
            keys = []
            for item in settings.jwt_keys.reveal().split(","):
                kid, sep, secret = item.strip().partition(":")
                if not sep:
                    raise ValueError("expected KID:KEY")
                keys.append(SigningKey(kid, secret.encode()))
            if not keys:
                raise ValueError("no keys")
            return keys
        path = settings.data_dir / JWT_KEYS_FILE
        if not path.exists():
            settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            _write_private(path, json.dumps({"keys": [_new_key()]}, indent=2))
        data = json.loads(path.read_text(encoding="utf-8"))
        return [SigningKey(k["kid"], k["key"].encode()) for k in data["keys"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"token signing keys are not valid: {exc}") from None


def rotate_signing_keys(settings: Settings) -> str:
    """Put a new signing key first and keep the current one to verify; return its kid.

    Tokens signed with the older of the two stay valid until they expire; the server
    picks up the new keys when it restarts.
    """
    if settings.jwt_keys is not None:
        raise ConfigError("VIDEOASSIST_JWT_KEYS is set: rotate the keys there")
    current = signing_keys(settings)
    new = _new_key()
    keep = [{"kid": current[0].kid, "key": current[0].secret.decode()}]
    _write_private(
        settings.data_dir / JWT_KEYS_FILE, json.dumps({"keys": [new, *keep]}, indent=2)
    )
    return new["kid"]


def _generated_secret(settings: Settings, name: str) -> str:
    """A random secret read from the data dir, generated there on first use."""
    path = settings.data_dir / name
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_private(path, secrets.token_urlsafe(32))
    return path.read_text(encoding="utf-8").strip()


def snapshot_key(settings: Settings) -> bytes:
    """The 32-byte key-encryption key for snapshots: configured, or in the data dir."""
    if settings.snapshot_key is not None:
        text, where = settings.snapshot_key.reveal(), "VIDEOASSIST_SNAPSHOT_KEY"
    else:
        path = settings.data_dir / SNAPSHOT_KEY_FILE
        if not path.exists():
            settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = secrets.token_bytes(SNAPSHOT_KEY_BYTES)
            _write_private(path, base64.b64encode(key).decode() + "\n")
        text, where = path.read_text(encoding="utf-8"), str(path)
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"the snapshot key in {where} is not base64") from None
    if len(key) != SNAPSHOT_KEY_BYTES:
        raise ConfigError(
            f"the snapshot key in {where} must be {SNAPSHOT_KEY_BYTES} bytes, got {len(key)}")
    return key
def turn_secret(settings: Settings) -> str:
    if settings.turn_secret is not None:
        return settings.turn_secret.reveal()
    return _generated_secret(settings, TURN_SECRET_FILE)


def webhook_secret(settings: Settings) -> str:
    """The key webhook deliveries are signed with; receivers need it to verify."""
    if settings.webhook_secret is not None:
        return settings.webhook_secret.reveal()
    return _generated_secret(settings, WEBHOOK_SECRET_FILE)


def node_secret(settings: Settings) -> str:
    """The secret nodes of one installation show each other on their internal
    addresses: configured (a fleet of machines), or generated on first run into the
    data directory (regenerated if deleted)."""
    if settings.node_secret is not None:
        return settings.node_secret.reveal()
    return _generated_secret(settings, NODE_SECRET_FILE)


def prepare(settings: Settings) -> None:
    """Make every key file the server would generate, now (the supervisor does, before
    starting workers that would otherwise each make their own at once)."""
    private_data_dir(settings)
    signing_keys(settings)
    turn_secret(settings)
    snapshot_key(settings)
    node_secret(settings)
    if settings.webhook_url:
        webhook_secret(settings)
