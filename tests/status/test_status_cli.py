"""The operator's `cambio status` commands: what they post reaches the store and its
timeline; bad input (an unknown component or incident, a time without its zone, a window
that ends before it starts) is refused with a clear message and creates nothing."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cambio.cli import main
from cambio.model.config import load_config
from cambio.runtime.datadir import DataDir
from cambio.status.components import catalogue
from cambio.status.store import StatusStore


def run(data: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["status", "--data", str(data), *args])
    return result.exit_code, result.output


def test_posting_and_refusing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    DataDir(data).create()
    store = StatusStore(data / "status" / "status.db")
    store.sync_components(catalogue(load_config()), 0.0)

    code, out = run(data, "incident", "open", "--name", "Slow withdrawals", "--body",
                    "Delayed; funds are safe.", "--component", "nope:XXBT")  # fmt: skip
    assert code == 2 and "unknown nope:XXBT" in out
    code, out = run(data, "maintenance", "schedule", "--name", "DB", "--body", "b",
                    "--start", "2026-12-01T02:00", "--end", "2026-12-01T03:00Z")  # fmt: skip
    assert code == 2 and "give the time zone" in out
    code, out = run(data, "maintenance", "schedule", "--name", "DB", "--body", "b",
                    "--start", "2026-12-01T03:00Z", "--end", "2026-12-01T02:00Z")  # fmt: skip
    assert code == 2 and "must be after --start" in out
    code, out = run(data, "incident", "update", "nosuchid", "--status", "identified",
                    "--body", "b")  # fmt: skip
    assert code == 1 and "no incident nosuchid" in out
    assert store.incidents("incident") == [] and store.incidents("maintenance") == []

    code, out = run(data, "incident", "open", "--name", "Slow withdrawals", "--body",
                    "Delayed; funds are safe.", "--component", "withdrawals:XXBT")  # fmt: skip
    assert code == 0, out
    opened = json.loads(out)
    assert opened["components"] == ["withdrawals:XXBT"] and opened["next_update_at"]
    code, out = run(data, "incident", "resolve", opened["id"], "--body", "Flowing again.")
    assert code == 0, out
    (incident,) = store.incidents("incident")
    assert [u["status"] for u in incident["updates"]] == ["resolved", "investigating"]
    assert incident["next_update_at"] is None
