"""Start-up recovery: from a data directory to an engine host in the journal's last state.

1. Open the journal (a torn, never-acknowledged tail write is cut off; damaged
   acknowledged data stops everything: see cambio.journal.segments).
2. Restore the newest snapshot that is intact, accepted by the engine, and at or before
   the last command whose events the journal recorded (a snapshot can be taken before
   its batch's events ride along with the next write; if the process died in between,
   those events could not be recorded from a snapshot, so an older one is used);
   otherwise an older one; otherwise genesis. A snapshot past the journal's last command
   means journal segments are missing: refused, like damaged acknowledged data.
3. Replay the journal after it, checking every recorded event against the engine's.
   A difference means this engine build does not behave like the one that wrote the
   journal: recovery refuses (an engine change goes through the upgrade path instead).
4. Journal the events of the replayed commands that had not been recorded yet, so the
   journal is complete before any new command is taken.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from cambio.journal.segments import Journal, JournalCorrupt
from cambio.journal.snapshots import SnapshotStore
from cambio.runtime.datadir import DataDir
from cambio.runtime.host import EngineHost
from cambio.runtime.replay import Mismatch, Replayer

MakeHost = Callable[[bytes | None], EngineHost]


class EngineDiverged(Exception):
    """Replaying the journal gave other events than the journal recorded."""

    def __init__(self, mismatches: list[Mismatch]) -> None:
        self.mismatches = mismatches
        super().__init__(
            f"the engine disagrees with the journal at {len(mismatches)} command(s); first: "
            + mismatches[0].describe()
        )


@dataclass
class Recovered:
    journal: Journal
    host: EngineHost
    snapshot_seq: int
    replayed: int
    replay_rate: float
    notes: list[str] = field(default_factory=list)


def recover(
    data: DataDir, make_host: MakeHost, progress: Callable[[int], None] | None = None
) -> Recovered:
    journal = Journal(data.journal)
    notes: list[str] = []
    if journal.truncated_bytes:
        notes.append(
            f"journal: cut off a torn write of {journal.truncated_bytes} bytes (never acknowledged)"
        )
    store = SnapshotStore(data.snapshots)
    store.remove_partial()
    for path in store.paths():
        with contextlib.suppress(ValueError):
            seq = store.seq_of(path)
            if seq > journal.last_seq:
                journal.close()
                raise JournalCorrupt(
                    f"snapshot {path.name} is past the journal's last command ({journal.last_seq}):"
                    " journal segments are missing; restore them from a backup or replica"
                )
    snap_seq, host, problems = store.load(make_host, journal.outputs_through)
    notes += problems
    if host is None:
        host = make_host(None)
    replayer = Replayer(journal, host, after_seq=snap_seq)
    replayer.run(progress=progress)
    if replayer.mismatches:
        host.close()
        journal.close()
        raise EngineDiverged(replayer.mismatches)
    unrecorded = replayer.unrecorded
    if unrecorded:
        journal.append([], journal.outputs_through + 1, unrecorded)
    return Recovered(journal, host, snap_seq, replayer.commands, replayer.rate, notes)
