"""Shared fixtures: the real server on 127.0.0.1 port 0 with real databases.

``database`` runs a test on each database the store supports: a SQLite file, and a
fresh database of the session's PostgreSQL cluster (``postgresql_cluster``).
``server`` starts the whole aiohttp app (middlewares, cleanup contexts, access log)
on a socket bound to port 0, and talks to it with a real aiohttp client over
loopback; its data is in SQLite in its data directory, or, with
``--server-backend=postgresql`` (or a test parametrizing ``server_backend``),
in a database of the cluster per data directory, which the ``videoassist`` commands and
``serve`` processes the test runs on that directory are given too. ``clock`` is
injected into the app: tests move time with ``advance``. The helpers themselves are in
``tests/support/``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

# The servers and commands the tests start as processes (hundreds of them, each
# importing the project and the media stack) keep the modules they compile: where the
# environment says not to write bytecode (PYTHONDONTWRITEBYTECODE, set on the project's
# machines), each would compile the project's modules again from source. This process's
# own setting is left as it started.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# The helpers' own asserts explain their failures as a test's do; this must come
# before the first import of tests.support.
pytest.register_assert_rewrite("tests.support")

from tests.support import netns, process  # noqa: E402
from tests.support.databases import (  # noqa: E402
    Cluster,
    ServerDatabases,
    Target,
)
from tests.support.server import (  # noqa: E402
    Clock,
    Server,
    ServerFactory,
    Servers,
    start_app,
)
from tests.support.units import work_unit  # noqa: E402
from videoassist.snapshots.fonts import LabelFonts  # noqa: E402
from videoassist.storage.throwaway import postgresql_bin  # noqa: E402

# No peer or server of this process gathers on another test's network namespace.
netns.isolate_gathering()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--server-backend", choices=("sqlite", "postgresql"), default="sqlite",
        help="the database of the tests' servers (and of the commands and serve processes "
             "they run): SQLite in each data directory, or a database of a throwaway "
             "PostgreSQL per data directory")
    parser.addoption(
        "--each-database", action="store_true",
        help="run each test once per database it can use, in one run: a test whose "
             "servers take either database (it uses the server_backend fixture and does "
             "not parametrize it) on SQLite and again on PostgreSQL; what scripts/test "
             "runs")


def pytest_configure(config: pytest.Config) -> None:
    if (config.getoption("--each-database")
            and config.getoption("--server-backend") != "sqlite"):
        raise pytest.UsageError("--each-database runs each test on both databases: "
                                "leave out --server-backend")


# Neither the media relay (videoassist.media imports nothing of the project but
# videoassist.errors: no storage, no HTTP) nor what these tests check of it (packets,
# keyframes, bandwidth, timing) depends on the database the server keeps its calls in:
# --each-database runs them on SQLite only. Signing in, placing and joining calls on
# PostgreSQL is what the API and signalling tests check there. The same holds of the web
# client on a thin link (tests/browser/test_stills.py: its modes, stills and audio as the
# link changes); how the server takes stills on each database is
# tests/signalling/test_stills.py's.
BACKEND_FREE = ("tests/media/", "tests/browser/test_stills.py")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``--each-database``: a test whose servers take either database runs on both."""
    if not metafunc.config.getoption("--each-database"):
        return
    if "server_backend" not in metafunc.fixturenames:
        return
    if metafunc.definition.nodeid.startswith(BACKEND_FREE):
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if "server_backend" in (names.replace(" ", "").split(",")
                                if isinstance(names, str) else names):
            return  # the test says which databases it runs on
    metafunc.parametrize("server_backend", ["sqlite", "postgresql"])


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadscope``, its units being ``work_unit``'s. (Not ``loadgroup`` with
    marks: pytest-xdist 3.8 writes a group into ``item._nodeid``, which pytest 9 no
    longer reads, so that the groups are silently ignored.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Units(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return Units(config, log)


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # the run's first process, once
        process.HELD_UP_LOG.unlink(missing_ok=True)


HELD_UP_SHOWN_LINES = 40


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """What ``serve`` processes said of their calls held up (the event loop late, the
    database slow), passing tests' included: how a loaded machine treated the run."""
    if hasattr(terminalreporter.config, "workerinput") or not process.HELD_UP_LOG.exists():
        return
    lines = process.HELD_UP_LOG.read_text(encoding="utf-8").splitlines()
    held = [line for line in lines if not line.startswith("#")]
    terminalreporter.section(f"servers held up: {len(held)} times "
                             f"({os.path.relpath(process.HELD_UP_LOG)})")
    for line in lines[:HELD_UP_SHOWN_LINES]:
        terminalreporter.write_line(line)
    if len(lines) > HELD_UP_SHOWN_LINES:
        terminalreporter.write_line(f"... and {len(lines) - HELD_UP_SHOWN_LINES} more lines")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[pytest.TestReport]:
    """A failed test shows the end of the output of each ``videoassist serve`` process
    of the test still running or stopped since (its log: what the server saw of the
    failure)."""
    report: pytest.TestReport = yield
    if report.failed:
        for served in process.RUNNING:
            report.sections.append((f"videoassist serve on {served.url}", served.tail()))
    process.RUNNING[:] = [p for p in process.RUNNING if p.proc.poll() is None]
    return report


@pytest.fixture
def server_backend(request: pytest.FixtureRequest) -> str:
    """The database the tests' servers keep their data in: ``sqlite`` (in their data
    directory), or ``postgresql`` (a throwaway database of the session's cluster per data
    directory). ``pytest --server-backend=postgresql`` runs the suite's servers on
    PostgreSQL; a test parametrizes ``server_backend`` to run on both."""
    backend: str = request.config.getoption("--server-backend")
    return backend


@pytest.fixture
def server_databases(request: pytest.FixtureRequest,
                     server_backend: str) -> Iterator[ServerDatabases]:
    """The database of each data directory the test's servers are started on."""
    databases = ServerDatabases(request.getfixturevalue("postgresql_cluster")
                                if server_backend == "postgresql" else None)
    if databases.postgresql:  # commands and `serve` on a data dir: the same database
        process.database_of = databases.url
    try:
        yield databases
    finally:
        process.database_of = None
        databases.drop()


@pytest.fixture
async def server_factory(tmp_path: Path, clock: Clock,
                         server_databases: ServerDatabases) -> AsyncIterator[ServerFactory]:
    """Start real servers with settings overrides: ``await server_factory(port=...)``;
    ``sock``: a socket bound on 127.0.0.1 to serve on."""
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(*, sock: socket.socket | None = None, **overrides: Any) -> Server:
        server, runner = await start_app(clock, sock=sock, **server_databases.settings(
            {"data_dir": tmp_path / f"data{len(runners)}", **overrides}))
        runners.append(runner)
        sessions.append(server.http)
        return server

    yield start
    for http in sessions:
        await http.close()
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def server(server_factory: ServerFactory) -> Server:
    return await server_factory()


@pytest.fixture
async def servers(tmp_path: Path, clock: Clock,
                  server_databases: ServerDatabases) -> AsyncIterator[Servers]:
    """Real servers a test can stop, and start again on the same data directory (and
    so the same database): ``await servers.start(**overrides)``, ``servers.stop``."""
    running = Servers(tmp_path, clock, server_databases)
    yield running
    await running.stop_all()


@pytest.fixture(scope="session")
def label_fonts() -> LabelFonts:
    """The label fonts a server with default settings draws in (Debian's Noto fonts)."""
    return LabelFonts.open(())


@pytest.fixture(scope="session")
def postgresql_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL server for the session, started when a test first asks."""
    if postgresql_bin() is None or os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL tests need Debian's postgresql package and root "
                        "(scripts/test installs it)")
        pytest.skip("PostgreSQL is not installed, or this is not root (runuser)")
    cluster = Cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Where a test's store is (what ``Store.open`` takes): a new SQLite file's path, or
    a new PostgreSQL database's URL, already migrated (a copy of a database migrated once
    for the session: migrating takes longer there than most tests)."""
    if request.param == "sqlite":
        yield tmp_path / "db.sqlite3"
        return
    cluster: Cluster = request.getfixturevalue("postgresql_cluster")
    url = cluster.create_database(migrated=True)
    yield url
    cluster.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """The same, never migrated: for the tests of migrations."""
    if request.param == "sqlite":
        yield tmp_path / "db.sqlite3"
        return
    yield request.getfixturevalue("postgresql_database")


@pytest.fixture
def postgresql_database(postgresql_cluster: Cluster) -> Iterator[str]:
    """A new, empty database of the session's PostgreSQL cluster: its URL."""
    url = postgresql_cluster.create_database()
    yield url
    postgresql_cluster.drop_database(url)
