"""The rehearsal fixtures are right: an unmodified candidate replays the production
journal without a single difference, and each mutant first differs exactly at the seq
`write_production` marked for its feature.

Replays run the candidate in a child process (`candidate_host`), batch by journal record
as the rehearsal will, and compare each command's events with the recorded ones on their
msgpack encoding.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from upgrade_fixtures import (
    MUTANTS,
    Mutant,
    Production,
    candidate_env,
    candidate_host,
    make_candidate,
    write_production,
)

from cambio.journal.segments import Journal
from cambio.journal.snapshots import SnapshotStore
from cambio.model.commands import Command
from cambio.runtime.datadir import DataDir

_encoder = msgspec.msgpack.Encoder()


@dataclass
class Recorded:
    """The production journal as a rehearsal sees it."""

    data: DataDir
    production: Production
    batches: list[list[Command]]  # one per journal record that carries commands
    events: dict[int, bytes]  # seq -> msgpack of the events production recorded
    snapshot: bytes


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    data = DataDir(tmp_path_factory.mktemp("production") / "data")
    production = write_production(data)
    journal = Journal(data.journal, readonly=True)
    batches = [list[Command](rec.commands()) for rec in journal.records() if rec.n]
    events = {seq: _encoder.encode(evs) for seq, evs in journal.outputs()}
    journal.close()
    [path] = SnapshotStore(data.snapshots).paths()
    seq, snapshot = SnapshotStore.read(path)
    assert seq == production.snapshot_seq
    return Recorded(data, production, batches, events, snapshot)


def first_divergence(checkout: Path, rec: Recorded, from_snapshot: bool) -> int | None:
    """Replay the journal through the candidate (from genesis or from the snapshot); the
    first seq whose events differ from the recorded ones, or None if none does."""
    after = rec.production.snapshot_seq if from_snapshot else 0
    host = candidate_host(checkout, rec.data.markets, rec.snapshot if from_snapshot else None)
    try:
        applied = after
        for batch in rec.batches:
            cmds = [c for c in batch if c.seq > after]
            if not cmds:
                continue
            for cmd, events in zip(cmds, host.apply(cmds), strict=True):
                if _encoder.encode(events) != rec.events[cmd.seq]:
                    return cmd.seq
            applied = cmds[-1].seq
        assert applied == rec.production.last_seq  # the whole journal was replayed
        return None
    finally:
        host.close()


def test_the_journal_covers_every_seq_and_every_feature(recorded: Recorded) -> None:
    p = recorded.production
    assert sorted(recorded.events) == list(range(1, p.last_seq + 1))
    assert [c.seq for b in recorded.batches for c in b] == list(range(1, p.last_seq + 1))
    assert all(5 <= len(b) <= 20 for b in recorded.batches[:-1])
    assert p.last_seq >= 3000
    assert sorted(p.marks) == sorted(m.feature for m in MUTANTS)
    assert len(set(p.marks.values())) == len(p.marks)  # each feature at its own command
    for m in MUTANTS:  # a restore mutant's mark lies after the snapshot, the others before
        assert (p.marks[m.feature] > p.snapshot_seq) == m.from_snapshot


def test_a_candidate_runs_its_own_checkout(tmp_path: Path) -> None:
    checkout = make_candidate(tmp_path, None)
    out = subprocess.run(
        [sys.executable, "-c", "import cambio; print(cambio.__file__)"],
        env=candidate_env(checkout),
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(out.stdout.strip()) == checkout / "src" / "cambio" / "__init__.py"


@pytest.mark.parametrize("from_snapshot", [False, True], ids=["genesis", "snapshot"])
def test_an_unmodified_candidate_replays_identically(
    recorded: Recorded, tmp_path: Path, from_snapshot: bool
) -> None:
    checkout = make_candidate(tmp_path, None)
    assert first_divergence(checkout, recorded, from_snapshot) is None


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_each_mutant_first_diverges_at_its_mark(
    recorded: Recorded, tmp_path: Path, mutant: Mutant
) -> None:
    checkout = make_candidate(tmp_path, mutant)
    mark = recorded.production.marks[mutant.feature]
    assert first_divergence(checkout, recorded, mutant.from_snapshot) == mark
    if mutant.from_snapshot:
        # the bug is in restoring: the same engine replaying from genesis never restores
        assert first_divergence(checkout, recorded, from_snapshot=False) is None
