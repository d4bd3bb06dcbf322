"""`verify` (cambio.runtime.audit): what it proves and what it catches, read-only."""

from __future__ import annotations

from pathlib import Path

from test_recovery import journal_flow, make_dir

from cambio.journal.segments import Journal
from cambio.journal.snapshots import SnapshotStore
from cambio.model.commands import Deposit
from cambio.model.events import CommandRejected
from cambio.runtime.audit import verify
from cambio.runtime.host import InProcessHost


def test_a_sound_directory_verifies_and_is_left_untouched(tmp_path: Path) -> None:
    data = make_dir(tmp_path)
    live = journal_flow(data, 600, record_last=True)
    SnapshotStore(data.snapshots).write(Journal(data.journal).last_seq, live.snapshot())
    (data.snapshots / "leftover.tmp").write_bytes(b"a snapshot being written")
    before = sorted((p.name, p.stat().st_size) for p in data.root.rglob("*"))
    report = verify(data)
    assert report["ok"] and report["problems"] == []
    assert report["state_hash"] == live.state_hash() and report["chain"] == live.chain()
    assert report["snapshot"]["matches"] and report["commands"] == report["last_seq"]
    assert report["per_asset"]["ZUSD"]["balances"] == report["per_asset"]["ZUSD"]["deposited"]
    assert sorted((p.name, p.stat().st_size) for p in data.root.rglob("*")) == before


def test_recorded_events_that_differ_are_problems(tmp_path: Path) -> None:
    data = make_dir(tmp_path)
    journal_flow(data, 100, record_last=True)
    journal = Journal(data.journal)
    seq = journal.last_seq + 1
    journal.append([Deposit(seq=seq, ts=journal.last_ts, account=1, asset="ZUSD", amount=5)])
    journal.append([], seq, [[CommandRejected(error="not what the engine says")]])
    journal.close()
    report = verify(data)
    assert not report["ok"]
    assert report["problems"][0].startswith(f"event mismatch at seq {seq}")


def test_a_snapshot_that_does_not_match_the_journal_is_a_problem(tmp_path: Path) -> None:
    data = make_dir(tmp_path)
    journal_flow(data, 200, record_last=True)
    other = InProcessHost(data.config())  # a well-formed snapshot of some other state
    other.apply([Deposit(seq=1, ts=1, account=99, asset="XXBT", amount=1)])
    SnapshotStore(data.snapshots).write(150, other.snapshot())
    report = verify(data)
    assert not report["ok"] and report["snapshot"]["matches"] is False
    assert "replays to" in report["problems"][0]
