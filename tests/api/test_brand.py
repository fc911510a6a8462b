"""The company's brand on every page: its colour through /brand.css, its logo at
/brand/logo, both from settings checked at start (a colour white text cannot be read
on, a logo of another type or too large, refused). Real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.server import ServerFactory
from videoassist.config import ConfigError, contrast_with_white, load_settings

LOGO = (b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">'
        b'<rect width="40" height="20" fill="#1f6f43"/></svg>')


async def test_the_colour_and_logo_are_on_every_page(
        server_factory: ServerFactory, tmp_path: Path) -> None:
    logo = tmp_path / "acme.svg"
    logo.write_bytes(LOGO)
    server = await server_factory(company_name="Acme Heating", brand_color="#1f6f43",
                                  brand_logo=logo)
    status, css, headers = await server.request("GET", "/brand.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")
    assert css == ":root { --accent: #1f6f43; }\n"
    status, body, headers = await server.request("GET", "/brand/logo")
    assert (status, body) == (200, LOGO.decode())
    assert headers["Content-Type"] == "image/svg+xml"
    # Opened as a document of its own, nothing in it runs.
    assert "sandbox" in headers["Content-Security-Policy"]
    assert "script-src" not in headers["Content-Security-Policy"]
    for page in ("/", "/join", "/setup"):
        status, html, _ = await server.request("GET", page)
        assert status == 200
        assert '<link rel="stylesheet" href="/brand.css">' in html, page
        assert '<img class="logo" src="/brand/logo" alt="">Acme Heating' in html, page


async def test_without_a_logo_the_name_alone(server_factory: ServerFactory) -> None:
    server = await server_factory()
    status, _, _ = await server.request("GET", "/brand/logo")
    assert status == 404
    status, html, _ = await server.request("GET", "/join")
    assert status == 200 and 'class="logo"' not in html
    status, css, _ = await server.request("GET", "/brand.css")
    assert css == ":root { --accent: #0a58ca; }\n"


def test_a_brand_that_cannot_work_is_refused_at_start(tmp_path: Path) -> None:
    base = {"VIDEOASSIST_DATA_DIR": str(tmp_path)}
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (512 * 1024 + 1))
    gif = tmp_path / "logo.gif"
    gif.write_bytes(b"GIF89a")
    for extra, words in (
            ({"VIDEOASSIST_BRAND_COLOR": "#ffcc00"}, "too light"),  # yellow under white
            ({"VIDEOASSIST_BRAND_COLOR": "blue"}, "#rrggbb"),
            ({"VIDEOASSIST_BRAND_COLOR": "#0a58ca; x: y"}, "#rrggbb"),  # no CSS through
            ({"VIDEOASSIST_BRAND_LOGO": str(big)}, "more than"),
            ({"VIDEOASSIST_BRAND_LOGO": str(gif)}, "BRAND_LOGO must be"),
            ({"VIDEOASSIST_BRAND_LOGO": str(tmp_path / "none.png")}, "cannot be read")):
        with pytest.raises(ConfigError, match=words):
            load_settings(base | extra)
    # WCAG's figures: white on black 21:1, on the default blue above 4.5:1.
    assert round(contrast_with_white("#000000"), 1) == 21.0
    assert contrast_with_white("#0a58ca") > 4.5 > contrast_with_white("#ffcc00")
