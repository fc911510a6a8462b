"""The browser client's checks check something: scripts/test runs ``tsc`` (the JSDoc
types) and ``eslint`` on web/static/js, and both pass in silence if the patterns of
tsconfig.json or eslint.config.js match no file, or if their rules are off.

Each test runs the real checker on a copy of the client where one module ends with
deliberate mistakes, and asserts that every module was checked and that exactly those
mistakes, each on its own line, were found. The checkers are the ones scripts/test
installs into node_modules (package-lock.json).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLIENT = Path("web/static/js")
BIN = ROOT / "node_modules" / ".bin"
TIMEOUT_S = 300  # tsc takes ~5 s alone, several times that on 2 busy cores

# Appended to setup.js (which imports setStatus from api.js): each line's own mistake.
TYPE_MISTAKES = {
    "setStatus(42);": "TS2345",  # a number where api.js's JSDoc asks for a string
    'document.querySelector("p").hidden = true;': "TS2531",  # strictNullChecks: may be null
    "export function untyped(value) { return value; }": "TS7006",  # noImplicitAny
}
LINT_MISTAKES = {
    'if (token == "") setStatus("");': "eqeqeq",
    "setStatus(process.env.HOME);": "no-undef",  # a Node global: the client runs in a browser
    "const unused = 1;": "no-unused-vars",
}


def client_copy(tmp_path: Path, mistakes: dict[str, str]) -> dict[int, str]:
    """Copy the client and its checkers' configuration into tmp_path, append the
    mistakes to setup.js; answer each mistake's line number and expected finding."""
    if not (BIN / "tsc").exists() or not (BIN / "eslint").exists():
        pytest.fail("node_modules has no checkers: run ./scripts/test (or npm ci)")
    for name in ("package.json", "tsconfig.json", "eslint.config.js"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "node_modules").symlink_to(ROOT / "node_modules")
    shutil.copytree(ROOT / CLIENT, tmp_path / CLIENT)
    setup = tmp_path / CLIENT / "setup.js"
    lines = setup.read_text(encoding="utf-8").splitlines()
    expected = {len(lines) + n: found for n, found in enumerate(mistakes.values(), start=1)}
    setup.write_text("\n".join([*lines, *mistakes]) + "\n", encoding="utf-8")
    return expected


def client_modules() -> set[str]:
    modules = {p.name for p in (ROOT / CLIENT).glob("*.js")}
    assert len(modules) >= 10, modules  # the client is there: the checks check something
    return modules


def run(tmp_path: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=False)


def test_the_type_check_covers_the_client_and_finds_type_errors(tmp_path: Path) -> None:
    expected = client_copy(tmp_path, TYPE_MISTAKES)
    result = run(tmp_path, str(BIN / "tsc"), "-p", "tsconfig.json", "--listFiles",
                 "--pretty", "false")
    assert result.returncode != 0, result.stdout
    checked = {Path(line).name for line in result.stdout.splitlines()
               if Path(line).resolve().parent == (tmp_path / CLIENT).resolve()}
    assert checked == client_modules()
    found = {int(m["line"]): m["code"] for m in re.finditer(
        r"^(?P<file>\S+)\((?P<line>\d+),\d+\): error (?P<code>TS\d+)", result.stdout, re.M)
        if Path(m["file"]).name == "setup.js"}
    errors = [line for line in result.stdout.splitlines() if ": error TS" in line]
    assert found == expected and len(errors) == len(expected), result.stdout


def test_the_lint_covers_the_client_and_finds_mistakes(tmp_path: Path) -> None:
    expected = client_copy(tmp_path, LINT_MISTAKES)
    result = run(tmp_path, str(BIN / "eslint"), "--format", "json", str(CLIENT))
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert {Path(r["filePath"]).name for r in report} == client_modules()
    found = {(Path(r["filePath"]).name, m["line"], m["ruleId"])
             for r in report for m in r["messages"]}
    assert found == {("setup.js", line, rule) for line, rule in expected.items()}
