"""One fleet for the package's tests, each of which leaves it whole: three nodes on one
PostgreSQL database, nginx in front (``tests.support.fleet``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.databases import Cluster
from tests.support.fleet import Fleet


@pytest.fixture(scope="package")
def fleet(tmp_path_factory: pytest.TempPathFactory,
          postgresql_cluster: Cluster) -> Iterator[Fleet]:
    running = Fleet.create(tmp_path_factory.mktemp("fleet"), postgresql_cluster)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        print(running.output())  # shown when a test failed
