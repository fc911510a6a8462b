"""The lock files agree with pyproject.toml, and every install path uses them.

requirements/test.txt and requirements/serve.txt are made by ``./scripts/lock`` from
pyproject.toml (and requirements/build.in). Editing one without the other is the
mistake these tests catch: a dependency added, removed, or given a range its pin no
longer meets. Each lock must hold exactly the packages that pyproject.toml's
requirements reach, following each package's own requirements as this environment (made
from requirements/test.txt) declares them, every pin meeting every range that asks for
it, every pin with its hashes, and this environment holding the pinned versions.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"


@dataclass(frozen=True)
class Pin:
    version: Version
    hashes: int


def read_lock(path: Path) -> dict[NormalizedName, Pin]:
    """The pins of a hashed requirements file that apply to this interpreter."""
    text = re.sub(r"\\\n", " ", path.read_text())  # continuation lines
    pins: dict[NormalizedName, Pin] = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        spec, *options = line.split(" --hash=")
        requirement = Requirement(spec.strip())
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", line
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{path.name}: {name} pinned twice"
        pins[name] = Pin(Version(specifier.version), len(options))
    return pins


def roots(extras: tuple[str, ...]) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    build = (REQUIREMENTS / "build.in").read_text().splitlines()
    lines += [line for line in build if line.strip() and not line.startswith("#")]
    return [Requirement(line) for line in lines]


def applies(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    environment = dict(default_environment())
    return any(requirement.marker.evaluate({**environment, "extra": extra})
               for extra in extras | {""})


def closure(start: list[Requirement]) -> dict[NormalizedName, list[Requirement]]:
    """Every package ``start`` reaches, with every requirement that asks for it."""
    asked: dict[NormalizedName, list[Requirement]] = {}
    extras_of: dict[NormalizedName, set[str]] = {}
    queue = [r for r in start if applies(r, set())]
    while queue:
        requirement = queue.pop()
        name = canonicalize_name(requirement.name)
        asked.setdefault(name, []).append(requirement)
        new_extras = set(requirement.extras) - extras_of.get(name, set())
        if name in extras_of and not new_extras:
            continue
        extras_of.setdefault(name, set()).update(requirement.extras)
        try:
            declared = importlib.metadata.distribution(name).requires or []
        except importlib.metadata.PackageNotFoundError:
            continue  # reported by the caller: the lock cannot pin what is not installed
        for line in declared:
            child = Requirement(line)
            if applies(child, extras_of[name]):
                queue.append(child)
    return asked


@pytest.mark.parametrize("lock, extras", [("test", ("test",)), ("serve", ())])
def test_the_lock_holds_exactly_what_pyproject_asks_for(lock: str, extras: tuple[str, ...]
                                                        ) -> None:
    pins = read_lock(REQUIREMENTS / f"{lock}.txt")
    needed = closure(roots(extras))
    refresh = "pyproject.toml and the lock disagree: run ./scripts/lock"
    missing = sorted(set(needed) - set(pins))
    assert not missing, f"{refresh}; not pinned in {lock}.txt: {missing}"
    stale = sorted(set(pins) - set(needed))
    assert not stale, f"{refresh}; pinned in {lock}.txt but nothing asks for it: {stale}"
    for name, requirements in needed.items():
        for requirement in requirements:
            assert requirement.specifier.contains(pins[name].version, prereleases=True), (
                f"{refresh}; {name}=={pins[name].version} does not meet {requirement}")
        assert pins[name].hashes >= 1, f"{name} has no hash in {lock}.txt"


def test_this_environment_holds_the_pinned_versions() -> None:
    for name, pin in read_lock(REQUIREMENTS / "test.txt").items():
        installed = Version(importlib.metadata.version(name))
        assert installed == pin.version, (
            f"{name} {installed} is installed, the lock pins {pin.version}: "
            "reinstall with ./scripts/test")


def test_the_server_lock_pins_what_the_test_lock_pins() -> None:
    test, serve = (read_lock(REQUIREMENTS / f"{lock}.txt") for lock in ("test", "serve"))
    assert set(serve) <= set(test)
    different = {name: (pin.version, test[name].version) for name, pin in serve.items()
                 if pin.version != test[name].version}
    assert not different, f"the tests would run other versions than the server: {different}"


def test_every_install_path_installs_from_the_lock_with_hashes() -> None:
    lib = (ROOT / "scripts/lib.sh").read_text()
    assert re.search(r"pip.*install.*--require-hashes --no-deps -r \"\$lock\"", lib)
    assert 'ensure_venv serve' in (ROOT / "scripts/run").read_text()
    assert 'ensure_venv test' in (ROOT / "scripts/test").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"^RUN pip (?:install|wheel) [^\n]*", dockerfile, re.MULTILINE)
    assert installs and all("--no-deps" in line for line in installs), installs
    assert sum("--require-hashes" in line and "serve.txt" in line for line in installs) == 2
