"""Following a journal while it is written: every command's events exactly once, in
order, across segment rolls, from any starting seq, and a record caught half-written is
read whole at the next poll."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cambio.journal.segments import Journal
from cambio.journal.tail import JournalTail
from cambio.model.commands import Tick
from cambio.model.events import CommandRejected, Event


def events_of(seq: int) -> list[Event]:
    return [CommandRejected(error=f"e{seq}")]


def write(j: Journal, first: int, n: int, pending: list[int]) -> list[int]:
    """Journal commands first..first+n-1 with the events of `pending` (the last batch's);
    the new pending."""
    cmds = [Tick(seq=s, ts=s * 1000) for s in range(first, first + n)]
    j.append(cmds, pending[0] if pending else 0, [events_of(s) for s in pending] or None)
    return list(range(first, first + n))


@settings(max_examples=30, deadline=None)
@given(batches=st.lists(st.integers(1, 40), min_size=1, max_size=12),
       polls=st.lists(st.integers(0, 12), min_size=1), start=st.integers(1, 60))  # fmt: skip
def test_every_event_once_in_order_across_rolls(
    batches: list[int], polls: list[int], start: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "journal"
        j = Journal(directory, segment_bytes=400)  # a few records per segment: many rolls
        tail = JournalTail(directory, start)
        seen: list[tuple[int, int]] = []
        seq, pending = 1, []
        for i, n in enumerate(batches):
            pending = write(j, seq, n, pending)
            seq += n
            if polls[i % len(polls)] % 3 == 0:
                seen += [(s, ts) for s, ts, _ in tail.poll()]
        j.append([], pending[0], [events_of(s) for s in pending])  # the last events
        seen += [(s, ts) for s, ts, _ in tail.poll()]
        j.close()
        expected = [(s, s * 1000) for s in range(start, seq)]
        assert seen == expected
        assert len(list(directory.glob("*.seg"))) >= 1


def test_a_half_written_record_is_read_whole_later(tmp_path: Path) -> None:
    directory = tmp_path / "journal"
    j = Journal(directory)
    pending = write(j, 1, 3, [])
    j.append([], pending[0], [events_of(s) for s in pending])
    j.close()
    (segment,) = directory.glob("*.seg")
    whole = segment.read_bytes()
    tail = JournalTail(directory)
    cut = len(whole) - 5
    segment.write_bytes(whole[:cut])  # the writer is in the middle of its write
    assert tail.poll() == []
    segment.write_bytes(whole)
    got = tail.poll()
    assert [(s, [e.error for e in ev]) for s, _, ev in got] == [  # type: ignore[attr-defined]
        (1, ["e1"]), (2, ["e2"]), (3, ["e3"])]  # fmt: skip
    assert tail.poll() == []
