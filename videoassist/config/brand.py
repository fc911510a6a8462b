"""The company's name, colour and logo on every page."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from videoassist.config.values import ENV_PREFIX, doc
from videoassist.errors import ConfigError

# The brand: its colour carries white text at least this readably (WCAG AA, normal
# text); its logo, of these types and at most this large.
MIN_CONTRAST = 4.5
LOGO_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
              ".webp": "image/webp", ".svg": "image/svg+xml"}
LOGO_MAX_BYTES = 512 * 1024


def contrast_with_white(color: str) -> float:
    """The WCAG 2 contrast ratio of white against ``color`` (#rrggbb)."""
    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    luminance = 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
    return 1.05 / (luminance + 0.05)


@dataclass(frozen=True, kw_only=True)
class BrandSettings:
    """The company's name, colour and logo."""

    company_name: str = field(
        default="videoassist", metadata=doc("Name shown to customers on the join page.")
    )
    brand_color: str = field(
        default="#0a58ca",
        metadata=doc(
            "Accent colour of every page (buttons, links, the focus of a choice), #rrggbb; "
            "white text on it must be readable (contrast 4.5:1, WCAG AA)."
        ),
    )
    brand_logo: Path | None = field(
        default=None,
        metadata=doc(
            "The company's logo (PNG, JPEG, WebP or SVG, at most 512 KiB), shown beside its "
            "name at the top of every page. Default: the name alone."
        ),
    )

    def _check_brand(self) -> None:
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", self.brand_color):
            raise ConfigError(f"{ENV_PREFIX}BRAND_COLOR must be a colour as #rrggbb, got "
                              f"{self.brand_color!r}")
        contrast = contrast_with_white(self.brand_color)
        if contrast < MIN_CONTRAST:
            raise ConfigError(f"{ENV_PREFIX}BRAND_COLOR {self.brand_color} is too light for "
                              f"the white text on its buttons (contrast {contrast:.2f}:1, "
                              f"at least {MIN_CONTRAST}:1 is readable): take a darker shade")
        if self.brand_logo is not None:
            if self.brand_logo.suffix.lower() not in LOGO_TYPES:
                raise ConfigError(f"{ENV_PREFIX}BRAND_LOGO must be a "
                                  f"{', '.join(sorted(LOGO_TYPES))} file, got {self.brand_logo}")
            try:
                size = self.brand_logo.stat().st_size
            except OSError as exc:
                raise ConfigError(f"{ENV_PREFIX}BRAND_LOGO {self.brand_logo} cannot be read "
                                  f"({exc.strerror})") from None
            if size > LOGO_MAX_BYTES:
                raise ConfigError(f"{ENV_PREFIX}BRAND_LOGO {self.brand_logo} is {size} bytes, "
                                  f"more than {LOGO_MAX_BYTES}")
