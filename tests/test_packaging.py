"""The package as the Docker image installs it: a wheel, not an editable checkout.

The Dockerfile itself is not built here (no Docker engine on these machines); this
checks what it relies on. ``videoassist/web`` is a link to the repository's ``web/``
in a checkout; a wheel must carry the templates and static files themselves.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.support.process import ServeProcess, clean_env
from videoassist.i18n import catalogue

ROOT = Path(__file__).resolve().parent.parent


def test_a_non_editable_install_serves_the_pages_and_static_files(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("videoassist", "web"):
        shutil.copytree(ROOT / name, source / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    subprocess.run(  # offline: the build backend comes from this environment
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--no-build-isolation", "--disable-pip-version-check", "--target", str(target),
         str(source)], check=True, timeout=300, env=clean_env(), cwd=tmp_path)
    shutil.rmtree(source)  # nothing may come from the sources from here on

    installed = target / "videoassist" / "web"
    assert installed.is_dir() and not installed.is_symlink()
    shipped = sorted(p.relative_to(ROOT / "web") for p in (ROOT / "web").rglob("*")
                     if p.is_file())
    assert sorted(p.relative_to(installed) for p in installed.rglob("*") if p.is_file()) \
        == shipped

    env = {"PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import videoassist.app as a; print(a.__file__, a.WEB_DIR)"],
        capture_output=True, text=True, check=True, timeout=30, env=clean_env(**env),
        cwd=tmp_path)
    module, web_dir = where.stdout.split()
    assert Path(module).is_relative_to(target) and Path(web_dir) == installed, where.stdout

    server = ServeProcess(tmp_path / "data", env=env)
    try:
        server.wait_ready()
        with urllib.request.urlopen(server.url + "/static/js/api.js", timeout=5) as response:
            assert response.read() == (ROOT / "web/static/js/api.js").read_bytes()
        for page in ("/", "/join", "/setup"):
            with urllib.request.urlopen(server.url + page, timeout=5) as response:
                assert response.headers["Content-Type"].startswith("text/html")
                assert response.read().lstrip().lower().startswith(b"<!doctype html>"), page
        # The join page's catalogues came with it: German for a browser asking for it.
        german = urllib.request.Request(server.url + "/join", headers={"Accept-Language": "de"})
        with urllib.request.urlopen(german, timeout=5) as response:
            assert response.headers["Content-Language"] == "de"
            assert catalogue("de").gettext("Join the call").encode() in response.read()
    finally:
        assert server.stop() == 0, server.output
