"""The little that differs between SQL backends: connecting, and insert-or-update.

Everything else in cambio.store is dialect-neutral SQLAlchemy Core. SQLite gets WAL and
``synchronous=NORMAL`` on every new connection (a read-model write may be lost on power
failure, never corrupted, and is rebuilt from the journal). Upserts use the dialect's own
``INSERT ... ON CONFLICT DO UPDATE``, which SQLite and PostgreSQL spell the same way.

`Statements` builds each statement once per table: the upserts, and the plain inserts of
the bulk tables (orders, trades, ledger), which are compiled for the connection's dialect
and handed to the driver with plain values: SQLAlchemy's per-row parameter processing was
about a quarter of the projection time, and these columns are ints, strings and booleans
that every driver takes as they are. (On PostgreSQL, psycopg's executemany still costs a
pipelined round trip per row; COPY would be the next step there.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, Table, create_engine, event, insert
from sqlalchemy.dialects import postgresql, sqlite

Row = dict[str, Any]
Excluded = Any  # the statement's `excluded` namespace (the row that failed to insert)
SetClause = Callable[[Excluded], dict[str, Any]]  # column name -> new value (an expression)


def connect(url: str) -> Engine:
    """An engine for `url`, with SQLite tuned for a single writer and many readers."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


class Statements:
    """Insert and upsert statements for one dialect, built on first use (one upsert per
    table: its keys and update clause are those of the first call)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.positional = dialect.paramstyle in ("qmark", "format", "numeric")
        self._inserts: dict[str, tuple[str, list[str]]] = {}
        self._upserts: dict[str, Any] = {}

    def insert(self, conn: Connection, table: Table, rows: list[tuple[Any, ...]]) -> None:
        """INSERT `rows` (tuples of every column of `table`, in its order) in one
        executemany."""
        if not rows:
            return
        found = self._inserts.get(table.name)
        if found is None:
            compiled = insert(table).compile(dialect=self.dialect)
            names = list(table.columns.keys())
            if self.positional and list(compiled.positiontup or ()) != names:
                raise RuntimeError(f"unexpected parameter order for {table.name}")
            found = self._inserts[table.name] = compiled.string, names
        sql, names = found
        if self.positional:
            conn.exec_driver_sql(sql, rows)
        else:
            conn.exec_driver_sql(sql, [dict(zip(names, r, strict=True)) for r in rows])

    def upsert(
        self, conn: Connection, table: Table, keys: Sequence[str], rows: list[Row], set_: SetClause
    ) -> None:
        """Insert `rows`; where a row with the same `keys` exists, update it with `set_` (a
        function of the conflicting row, ``excluded``). Each key at most once in `rows`."""
        if not rows:
            return
        stmt = self._upserts.get(table.name)
        if stmt is None:
            name = self.dialect.name
            if name == "sqlite":
                ins: Any = sqlite.insert(table)
            elif name == "postgresql":
                ins = postgresql.insert(table)
            else:
                raise NotImplementedError(f"read models do not support {name!r}")
            stmt = ins.on_conflict_do_update(index_elements=keys, set_=set_(ins.excluded))
            self._upserts[table.name] = stmt
        conn.execute(stmt, rows)
