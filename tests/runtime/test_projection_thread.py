"""The projection thread: read models follow the engine, and whatever they missed (a
restart, batches dropped under load) is read back from the journal."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text
from test_recovery import journal_flow, make_dir

from cambio.journal.segments import Journal
from cambio.runtime import projection as projection_module
from cambio.runtime.projection import Projection
from cambio.store.projector import ReadModels


def settle(p: Projection, seq: int) -> None:
    deadline = time.monotonic() + 30
    while p.projected_seq < seq:
        assert time.monotonic() < deadline, f"projection stuck at {p.projected_seq} < {seq}"
        time.sleep(0.01)


def test_a_fresh_projection_catches_up_from_the_journal(tmp_path: Path) -> None:
    data = make_dir(tmp_path)
    journal_flow(data, 700, record_last=True)
    journal = Journal(data.journal)
    p = Projection(data.readmodels_url, data.config(), journal)
    p.start()
    settle(p, journal.last_seq)
    p.stop()
    models = ReadModels(data.readmodels_url, data.config())
    assert models.last_seq() == journal.last_seq
    models.close()


def test_batches_dropped_under_load_are_filled_from_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(projection_module, "MAX_QUEUED", 50)
    data = make_dir(tmp_path)
    journal_flow(data, 600, record_last=True)
    journal = Journal(data.journal)
    cmds = list(journal.commands())
    events = [evs for _, evs in journal.outputs()]
    p = Projection(data.readmodels_url, data.config(), journal)
    # pushed faster than it can project: most of these batches are dropped by `push`
    for k in range(0, len(cmds), 40):
        p.push(cmds[k : k + 40], events[k : k + 40])
    p.start()
    settle(p, journal.last_seq)
    p.stop()
    with_gaps = ReadModels(data.readmodels_url, data.config())
    rebuilt_url = f"sqlite:///{tmp_path / 'rebuilt.db'}"
    rebuilt = ReadModels(rebuilt_url, data.config())
    rebuilt.apply(list(journal.events()))
    for table in ("orders", "trades", "ledger", "ohlc"):
        q = f"select * from {table} order by 1, 2"
        with with_gaps.engine.connect() as a, rebuilt.engine.connect() as b:
            assert list(a.execute(text(q))) == list(b.execute(text(q))), table
    with_gaps.close()
    rebuilt.close()


def test_a_gap_before_new_batches_is_read_back_first(tmp_path: Path) -> None:
    data = make_dir(tmp_path)
    journal_flow(data, 300, record_last=True)
    journal = Journal(data.journal)
    items = list(journal.events())
    models = ReadModels(data.readmodels_url, data.config())
    models.apply(items[:40])
    p = Projection(data.readmodels_url, data.config(), journal)
    p._project(models, items[100:140])  # 41..100 missed (dropped, or before a restart)
    assert models.last_seq() == 140 and p.projected_seq == 140
    models.close()


def test_unreadable_read_models_fail_the_start_instead_of_hanging(tmp_path: Path) -> None:
    data = make_dir(tmp_path)
    data.readmodels.write_bytes(b"this is not a database " * 100)
    p = Projection(data.readmodels_url, data.config(), Journal(data.journal))
    with pytest.raises(Exception, match=r"not a database|file is not"):
        p.start()


def test_stop_returns_even_if_the_read_models_keep_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_dir(tmp_path)
    journal_flow(data, 100, record_last=True)
    journal = Journal(data.journal)

    def broken(self: ReadModels, batch: object) -> int:
        raise RuntimeError("disk full")

    monkeypatch.setattr(ReadModels, "apply", broken)
    p = Projection(data.readmodels_url, data.config(), journal)
    p.start()
    time.sleep(0.1)  # it tries, fails, and waits to retry
    p.stop()  # must return: the next start catches up from the journal
    assert not p._thread.is_alive()
