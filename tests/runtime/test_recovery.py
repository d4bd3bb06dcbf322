"""Start-up recovery: snapshot + journal tail, missing events re-recorded, fallbacks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from test_hosts import order_flow

from cambio.journal.segments import Journal, JournalCorrupt
from cambio.journal.snapshots import SnapshotStore
from cambio.model.commands import Tick
from cambio.model.events import CommandRejected, Event
from cambio.runtime.datadir import DataDir
from cambio.runtime.host import EngineHost, InProcessHost
from cambio.runtime.recovery import EngineDiverged, recover


def make_dir(tmp_path: Path) -> DataDir:
    data = DataDir(tmp_path / "data")
    data.create()
    return data


def host_factory(data: DataDir) -> Callable[[bytes | None], EngineHost]:
    config = data.config()
    return lambda snapshot: InProcessHost(config, snapshot)


def journal_flow(data: DataDir, n: int, record_last: bool) -> EngineHost:
    """Journal `n` commands in batches as the sequencer would; the last batch's events
    are recorded only if `record_last` (a crash loses them otherwise)."""
    host = InProcessHost(data.config())
    journal = Journal(data.journal)
    cmds = order_flow(n, seed=3)
    pending: list[list[Event]] = []
    for k in range(0, len(cmds), 50):
        journal.append(cmds[k : k + 50], journal.outputs_through + 1, pending)
        pending = host.apply(cmds[k : k + 50])
    if record_last:
        journal.append([], journal.outputs_through + 1, pending)
    journal.close()
    return host


def test_recovery_replays_from_genesis_and_records_missing_events(tmp_path: Path) -> None:
    data = make_dir(tmp_path)
    live = journal_flow(data, 500, record_last=False)
    rec = recover(data, host_factory(data))
    assert rec.snapshot_seq == 0 and rec.replayed == rec.journal.last_seq
    assert rec.host.state_hash() == live.state_hash() and rec.host.chain() == live.chain()
    assert rec.journal.outputs_through == rec.journal.last_seq


def test_recovery_starts_from_the_newest_good_snapshot(tmp_path: Path) -> None:
    data = make_dir(tmp_path)
    live = journal_flow(data, 900, record_last=True)
    store = SnapshotStore(data.snapshots)
    partial = InProcessHost(data.config())
    cmds = list(Journal(data.journal).commands())
    partial.apply(cmds[:300])
    store.write(300, partial.snapshot())
    partial.apply(cmds[300:600])
    newest = store.write(600, partial.snapshot())
    rec = recover(data, host_factory(data))
    assert (rec.snapshot_seq, rec.replayed) == (600, len(cmds) - 600)
    assert rec.host.state_hash() == live.state_hash()
    rec.journal.close()

    newest.write_bytes(newest.read_bytes()[:-10])  # damaged: fall back to seq 300
    rec = recover(data, host_factory(data))
    assert (rec.snapshot_seq, rec.replayed) == (300, len(cmds) - 300)
    assert any(newest.name in note for note in rec.notes)
    assert rec.host.state_hash() == live.state_hash()


def test_an_engine_that_disagrees_with_the_journal_is_refused(tmp_path: Path) -> None:
    data = make_dir(tmp_path)
    journal_flow(data, 100, record_last=True)
    journal = Journal(data.journal)
    last = journal.last_seq
    journal.append([Tick(seq=last + 1, ts=journal.last_ts)])
    journal.append([], last + 1, [[CommandRejected(error="what some other engine said")]])
    journal.close()
    with pytest.raises(EngineDiverged, match=f"seq {last + 1}"):
        recover(data, host_factory(data))


def test_a_snapshot_newer_than_the_recorded_events_is_passed_over(tmp_path: Path) -> None:
    # a snapshot was written, then the process died before the events of its last batch
    # rode along with a journal write: the snapshot cannot give those events back
    data = make_dir(tmp_path)
    live = journal_flow(data, 300, record_last=False)
    last = Journal(data.journal).last_seq
    SnapshotStore(data.snapshots).write(last, live.snapshot())
    rec = recover(data, host_factory(data))
    assert rec.snapshot_seq == 0 and rec.replayed == last
    assert rec.journal.outputs_through == last
    assert rec.host.state_hash() == live.state_hash()
    recorded = dict(rec.journal.outputs())
    assert sorted(recorded) == list(range(1, last + 1))


def test_a_snapshot_past_the_journal_means_missing_segments(tmp_path: Path) -> None:
    data = make_dir(tmp_path)
    live = journal_flow(data, 100, record_last=True)
    SnapshotStore(data.snapshots).write(10_000, live.snapshot())
    with pytest.raises(JournalCorrupt, match="segments are missing"):
        recover(data, host_factory(data))
