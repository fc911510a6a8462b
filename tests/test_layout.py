"""The tests' own layout: shared helpers live in ``tests/support/``, one module per noun.

Every ``.py`` file under ``tests/`` and ``scripts/`` is parsed (never imported) and its
imports are read: no module imports a test module (``test_*``) or a ``conftest``, and
whatever is imported from the ``tests`` package comes from ``tests.support``, so a
helper is found in one place and the load generator uses the same ones as the tests.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.support.units import REALTIME, WAITING

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for each import of the file; ``from a import b`` yields both ``a``
    and ``a.b``, since ``b`` may be a module. Relative imports are resolved against the
    file's package."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = ".".join(package[: len(package) - node.level + 1])
                base = f"{parent}.{base}".strip(".")
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def imports_of_tests() -> Iterator[tuple[str, str]]:
    """("path:line", module) for every import of a module of the ``tests`` package."""
    for top in ("tests", "scripts"):
        for path in sorted((ROOT / top).rglob("*.py")):
            for line, module in imported_modules(path):
                if module == "tests" or module.startswith("tests."):
                    yield f"{path.relative_to(ROOT)}:{line}", module


def is_test_module(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return last.startswith("test_") or last == "conftest"


def in_support(module: str) -> bool:
    return module in ("tests", "tests.support") or module.startswith("tests.support.")


def report(found: dict[str, str]) -> str:
    return "\n".join(f"{where} imports {module}" for where, module in sorted(found.items()))


def first_per_line(pairs: Iterator[tuple[str, str]]) -> dict[str, str]:
    """The shortest module name found on each line (``tests.a`` rather than ``tests.a.X``)."""
    found: dict[str, str] = {}
    for where, module in pairs:
        if where not in found or len(module) < len(found[where]):
            found[where] = module
    return found


def test_no_module_imports_a_test_module_or_a_conftest() -> None:
    found = first_per_line((where, module) for where, module in imports_of_tests()
                           if is_test_module(module))
    assert not found, report(found)


def test_what_comes_from_tests_comes_from_tests_support() -> None:
    """Test modules, conftests, ``tests/support`` itself and ``scripts/`` (the load
    generator) import helpers from ``tests.support`` and nowhere else of ``tests``."""
    found = first_per_line((where, module) for where, module in imports_of_tests()
                           if not in_support(module))
    assert not found, report(found)


def test_each_waiting_test_the_scheduler_names_is_a_test() -> None:
    """``tests/support/units.py``'s ``WAITING`` names tests by their ids, to run them beside
    the real-time unit: a test renamed would go back into that unit, unseen, and make
    the suite longer. pytest collects each id (an id that names nothing is an error)."""
    assert all(nodeid.startswith(REALTIME) for nodeid in WAITING)
    found = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-n", "0", *WAITING], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stdout + found.stderr
    collected = [line for line in found.stdout.splitlines() if "::" in line]
    assert collected == list(WAITING), found.stdout
