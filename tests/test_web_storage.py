"""The browser client writes nothing to the device (docs/security.md, "Nothing on the
device"): no web/ file may use a storage API, set a cookie, register a service worker
or offer a download. tests/browser/test_call.py checks the same on a real profile."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[1] / "web"

FORBIDDEN = {
    "localStorage": r"\blocalStorage\b",
    "sessionStorage": r"\bsessionStorage\b",
    "IndexedDB": r"\bindexedDB\b|\bIDB[A-Z]\w*",
    "Cache API": r"\bcaches\s*\.|\bCacheStorage\b",
    "service worker": r"\bserviceWorker\b|\bServiceWorker\w*",
    "cookies": r"\bdocument\s*\.\s*cookie\b|\bcookieStore\b",
    "download links": r"\.download\s*=|\bdownload\s*=\s*[\"']|<a\b[^>]*\bdownload\b",
    "storage manager": r"\bnavigator\s*\.\s*storage\b|\bStorageManager\b",
    "file system": r"\bshowSaveFilePicker\b|\brequestFileSystem\b|\bwebkitRequestFileSystem\b"
                   r"|\bFileSystemHandle\b|\bgetDirectory\s*\(",
    "Web SQL": r"\bopenDatabase\s*\(",
    "app cache": r"\bmanifest\s*=|\bapplicationCache\b",
}


def web_files() -> list[Path]:
    files = sorted(p for p in WEB.rglob("*") if p.suffix in {".js", ".html", ".css"})
    assert len(files) >= 10, files  # the client is there: the scan scans something
    return files


@pytest.mark.parametrize("path", web_files(), ids=lambda p: p.relative_to(WEB).as_posix())
def test_no_device_storage_in_the_client(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = [(name, match.group(0)) for name, pattern in FORBIDDEN.items()
             for match in re.finditer(pattern, text)]
    assert not found, f"{path.relative_to(WEB)} uses device storage: {found}"


@pytest.mark.parametrize("sample, name", [
    ("localStorage.setItem('t', token)", "localStorage"),
    ("window.sessionStorage.x = 1", "sessionStorage"),
    ("const db = indexedDB.open('x')", "IndexedDB"),
    ("await caches.open('v1')", "Cache API"),
    ("navigator.serviceWorker.register('/sw.js')", "service worker"),
    ("document.cookie = 'a=b'", "cookies"),
    ("link.download = 'job.zip'", "download links"),
    ('<a href="/x" download>', "download links"),
    ("await navigator.storage.persist()", "storage manager"),
    ("await window.showSaveFilePicker()", "file system"),
])
def test_the_lint_catches_each_api(sample: str, name: str) -> None:
    assert re.search(FORBIDDEN[name], sample), (name, sample)
