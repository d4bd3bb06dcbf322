"""Fixtures for the read-model tests: each test runs on SQLite and on PostgreSQL, when
CAMBIO_TEST_PG_URL names a server (.ci/postgres.sh starts one; CI fails without it, a
local run skips the PostgreSQL half).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest
from _store_helpers import PG_ENV, Databases

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def dbs(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Databases]:
    backend = request.param
    if backend == "postgresql" and not (
        os.environ.get(PG_ENV) and importlib.util.find_spec("psycopg") is not None
    ):
        if os.environ.get("CI") == "true":  # CI starts a server (.ci/postgres.sh): no excuses
            pytest.fail(f"PostgreSQL missing in CI: {PG_ENV} unset or psycopg not installed")
        pytest.skip(f"PostgreSQL: set {PG_ENV} (and install psycopg)")
    d = Databases(backend, str(tmp_path))
    yield d
    d.drop_all()
