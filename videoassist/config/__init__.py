"""Settings: one frozen object, filled from defaults, a TOML file and ``VIDEOASSIST_*``.

Precedence, lowest first: the defaults, the TOML file given with ``--config`` (keys are
the field names), environment variables (``VIDEOASSIST_`` + the field name in upper
case), command-line flags. Bad values fail loudly at start-up with the variable's name.
Every field is documented in ``docs/configuration.md``; a test keeps the two in step.

Each setting is declared once, with its default, its doc and its bounds, in the module
of its area: ``server`` (data, listening, the fleet), ``brand``, ``access`` (sessions,
links, sign-in), ``media`` (TURN, ICE, SDP, snapshots), ``calls`` (the signalling socket
and the calls) and ``outgoing`` (notify, SMTP, webhooks). ``Settings`` is all of them,
and checks what one setting's value allows of another's.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videoassist.config.access import AccessSettings
from videoassist.config.brand import LOGO_TYPES, BrandSettings, contrast_with_white
from videoassist.config.calls import CallSettings
from videoassist.config.media import MEDIA_PORTS_MIN, MediaSettings
from videoassist.config.outgoing import OutgoingSettings
from videoassist.config.server import ServerSettings
from videoassist.config.values import ENV_PREFIX, Bounds, Secret, say_number
from videoassist.errors import ConfigError

__all__ = ["ENV_PREFIX", "LOGO_TYPES", "MEDIA_PORTS_MIN", "Bounds", "ConfigError", "Secret",
           "Settings", "contrast_with_white", "documentation", "load_settings", "say_number"]


# The bases are listed last area first: a dataclass takes its bases' fields from the
# last base to the first, so the settings are listed (``documentation``) as read here.
@dataclass(frozen=True, kw_only=True)
class Settings(OutgoingSettings, CallSettings, MediaSettings, AccessSettings, BrandSettings,
               ServerSettings):
    """Every setting of a videoassist server. See docs/configuration.md."""

    def __post_init__(self) -> None:
        self._check_urls()
        for spec in dataclasses.fields(self):
            bounds: Bounds | None = spec.metadata.get("bounds")
            if bounds is not None and not bounds.holds(getattr(self, spec.name)):
                raise ConfigError(f"{ENV_PREFIX}{spec.name.upper()} must be {bounds.say()}, "
                                  f"got {getattr(self, spec.name)!r}")
        # What depends on another setting.
        checks: list[tuple[str, bool, str]] = [
            ("invite_ttl_s", 0 < self.invite_ttl_s <= self.invite_max_ttl_s,
             "positive and at most INVITE_MAX_TTL_S"),
            ("webhook_retry_max_s", self.webhook_retry_max_s >= self.webhook_retry_base_s,
             "at least WEBHOOK_RETRY_BASE_S"),
            ("revocation_poll_s", 0 < self.revocation_poll_s <= 1, "0..1 (disable within 1 s)")
            if self.database_url is None else
            ("revocation_poll_s", 0 < self.revocation_poll_s <= 3600,
             "0..3600 (on PostgreSQL: the safety net under the notifications)"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(
                    f"{ENV_PREFIX}{name.upper()} must be {expected}, got {getattr(self, name)!r}"
                )
        self._check_media()
        self._check_server()
        self._check_outgoing()
        self._check_brand()

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def documentation() -> dict[str, str]:
    """Each setting's environment variable and its one-line description."""
    return {ENV_PREFIX + f.name.upper(): f.metadata["doc"] for f in dataclasses.fields(Settings)}


def _convert(name: str, hint: Any, raw: Any) -> Any:
    """Turn a raw TOML or environment value into the field's type, or fail loudly."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        if raw is None or raw == "":
            return None
        return _convert(name, inner[0], raw)
    try:
        if hint is Secret:
            if not isinstance(raw, str):
                raise TypeError("expected a string")
            return Secret(raw)
        if hint is bool:
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if hint is int:
            if isinstance(raw, bool):
                raise TypeError("expected an integer")
            return int(raw)
        if hint is float:
            if isinstance(raw, bool):
                raise TypeError("expected a number")
            return float(raw)
        if hint is Path:
            return Path(str(raw))
        if hint is str:
            if not isinstance(raw, str):
                raise TypeError("expected a string")
            return raw
        if origin is tuple:
            items = raw if isinstance(raw, list) else str(raw).split(",")
            return tuple(str(i).strip() for i in items if str(i).strip())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}: {raw!r} is not valid ({exc})") from None
    raise AssertionError(f"no conversion for {hint!r}")


def load_settings(
    environ: Mapping[str, str],
    config_file: Path | None = None,
    **overrides: Any,
) -> Settings:
    """Settings from a TOML file, then ``VIDEOASSIST_*`` variables, then ``overrides``."""
    hints = typing.get_type_hints(Settings)
    names = {f.name for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
        for key, raw in data.items():
            if key not in names:
                raise ConfigError(f"config file {config_file}: unknown setting {key!r}")
            values[key] = _convert(key, hints[key], raw)
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {ENV_PREFIX}{close[0].upper()}?)" if close else ""
            raise ConfigError(f"unknown setting {key}{hint}")
        values[name] = _convert(name, hints[name], raw)
    for name, value in overrides.items():
        if value is not None:
            values[name] = value
    return Settings(**values)
