"""Read models: the event stream projected into SQL tables for the API's queries.

`ReadModels` (cambio.store.projector) is the one entry point; the tables are in
cambio.store.schema. SQLAlchemy Core only, dialect-neutral apart from cambio.store.sql, so
the same code and tests run on SQLite (embedded) and PostgreSQL (distributed).
"""

from __future__ import annotations

from cambio.store.fold import ProjectionError
from cambio.store.projector import ReadModels

__all__ = ["ProjectionError", "ReadModels"]
