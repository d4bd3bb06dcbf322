"""Helpers for the read-model tests: table dumps, batch splits, fresh databases."""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import create_engine, select, text

from cambio.store import ReadModels
from cambio.store.schema import metadata

PG_ENV = "CAMBIO_TEST_PG_URL"  # e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres
Item = tuple[int, int, Any]
Dump = dict[str, list[tuple[Any, ...]]]


def dump(rm: ReadModels) -> Dump:
    """Every table's rows, in primary-key order."""
    out: Dump = {}
    with rm.engine.connect() as conn:
        for table in metadata.sorted_tables:
            q = select(table).order_by(*table.primary_key.columns)
            out[table.name] = [tuple(r) for r in conn.execute(q)]
    return out


def rows(rm: ReadModels, table: str) -> list[dict[str, Any]]:
    t = metadata.tables[table]
    with rm.engine.connect() as conn:
        q = select(t).order_by(*t.primary_key.columns)
        return [dict(r) for r in conn.execute(q).mappings()]


def chunks(items: Sequence[Item], sizes: Sequence[int]) -> Iterator[Sequence[Item]]:
    """`items` cut into consecutive batches of the given sizes (cycled), nothing left out."""
    i = 0
    for size in itertools.cycle(sizes):
        if i >= len(items):
            return
        yield items[i : i + size]
        i += size


def random_sizes(seed: int, top: int) -> list[int]:
    r = random.Random(seed)
    return [r.randint(1, top) for _ in range(50)]


def project(rm: ReadModels, items: Sequence[Item], sizes: Sequence[int] = (100,)) -> int:
    last = 0
    for batch in chunks(items, sizes):
        last = rm.apply(batch)
    return last


class Databases:
    """Fresh, empty databases of one backend, dropped at the end of the test."""

    def __init__(self, backend: str, tmp: str) -> None:
        self.backend = backend
        self.tmp = tmp
        self.n = 0
        self.created: list[str] = []
        self._shared = ""

    def shared(self) -> str:
        """The same database on every call (for Hypothesis examples, which reset it)."""
        if not self._shared:
            self._shared = self.url()
        return self._shared

    def url(self) -> str:
        self.n += 1
        if self.backend == "sqlite":
            return f"sqlite:///{self.tmp}/readmodels{self.n}.db"
        base = os.environ[PG_ENV]
        name = f"cambio_rm_{os.getpid()}_{id(self) % 100000}_{self.n}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        self.created.append(name)
        return base.rsplit("/", 1)[0] + "/" + name

    def drop_all(self) -> None:
        if not self.created:
            return
        admin = create_engine(os.environ[PG_ENV], isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
