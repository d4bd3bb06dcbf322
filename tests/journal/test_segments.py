"""The journal file: round trips, torn-tail recovery, corruption detection, segments."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cambio.journal.segments import HEADER_SIZE, SEGMENT_MAGIC, Journal, JournalCorrupt
from cambio.model.commands import Command, Deposit, Tick
from cambio.model.events import CommandRejected, Event


def batch(first: int, n: int, ts: int = 1000) -> list[Command]:
    return [
        Deposit(seq=first + i, ts=ts + first + i, account=1, asset="ZUSD", amount=first + i)
        for i in range(n)
    ]


def outputs(n: int, tag: str = "x") -> list[list[Event]]:
    return [[CommandRejected(error=f"{tag}{i}")] for i in range(n)]


def write(directory: Path, sizes: list[int], **kw: int) -> Journal:
    j = Journal(directory, **kw)
    out_seq = 1
    for n in sizes:
        first = j.last_seq + 1
        pending = j.last_seq + 1 - out_seq
        j.append(batch(first, n), out_seq, outputs(pending))
        out_seq += pending
    return j


def the_segment(directory: Path) -> Path:
    (seg,) = sorted(directory.glob("*.seg"))
    return seg


def test_round_trip_commands_events_and_position(tmp_path: Path) -> None:
    j = write(tmp_path, [3, 1, 5])
    j.append([], 5, outputs(5))
    j.close()
    j = Journal(tmp_path)
    assert (j.last_seq, j.outputs_through, j.last_ts, j.truncated_bytes) == (9, 9, 1009, 0)
    assert [c.seq for c in j.commands()] == list(range(1, 10))
    assert [c.seq for c in j.commands(4)] == list(range(4, 10))
    assert [s for s, _ in j.outputs(2)] == list(range(2, 10))
    assert [(s, t) for s, t, _ in j.events(8)] == [(8, 1008), (9, 1009)]


def test_appending_out_of_order_is_refused(tmp_path: Path) -> None:
    j = write(tmp_path, [2])
    with pytest.raises(ValueError, match="expects seq 3"):
        j.append(batch(4, 1))
    with pytest.raises(ValueError, match="events of seq 1"):
        j.append(batch(3, 1), 2, outputs(1))


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 20), min_size=2, max_size=6), data=st.data())
def test_a_torn_last_write_is_cut_off_and_earlier_writes_survive(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], data: st.DataObject
) -> None:
    d = tmp_path_factory.mktemp("torn")
    j = write(d, sizes[:-1])
    keep_seq, keep_size = j.last_seq, the_segment(d).stat().st_size
    j.append(batch(keep_seq + 1, sizes[-1]))
    j.close()
    seg = the_segment(d)
    full = seg.stat().st_size
    cut = data.draw(st.integers(keep_size, full - 1), label="cut")
    os.truncate(seg, cut)
    j = Journal(d)
    assert j.last_seq == keep_seq
    assert j.truncated_bytes == cut - keep_size
    assert seg.stat().st_size == keep_size
    j.append(batch(keep_seq + 1, 2))  # and the journal goes on from there
    j.close()
    assert [c.seq for c in Journal(d).commands()] == list(range(1, keep_seq + 3))


def test_garbage_after_the_last_write_is_cut_off(tmp_path: Path) -> None:
    write(tmp_path, [4, 4]).close()
    with the_segment(tmp_path).open("ab") as f:
        f.write(b"\0" * 4096)  # a preallocated extent the crash left unwritten
    j = Journal(tmp_path)
    assert (j.last_seq, j.truncated_bytes) == (8, 4096)


def test_damage_before_intact_records_is_refused_not_truncated(tmp_path: Path) -> None:
    write(tmp_path, [4, 4, 4]).close()
    seg = the_segment(tmp_path)
    data = bytearray(seg.read_bytes())
    data[len(SEGMENT_MAGIC) + HEADER_SIZE + 5] ^= 0xFF  # inside the first record's payload
    seg.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt, match="acknowledged"):
        Journal(tmp_path)
    assert seg.read_bytes() == bytes(data), "a refused journal must be left as it was"


def test_damage_in_an_earlier_segment_is_refused(tmp_path: Path) -> None:
    write(tmp_path, [50] * 6, segment_bytes=2000).close()
    segs = sorted(tmp_path.glob("*.seg"))
    assert len(segs) > 2
    with segs[0].open("r+b") as f:
        f.seek(-3, os.SEEK_END)
        f.write(b"\xff\xff\xff")
    with pytest.raises(JournalCorrupt):
        Journal(tmp_path)


def test_segments_roll_and_read_across(tmp_path: Path) -> None:
    j = write(tmp_path, [30] * 10, segment_bytes=3000)
    j.close()
    assert len(list(tmp_path.glob("*.seg"))) > 3
    j = Journal(tmp_path, segment_bytes=3000)
    assert [c.seq for c in j.commands(123)] == list(range(123, 301))
    assert [s for s, _ in j.outputs(250)] == list(range(250, 271))


def test_a_half_created_segment_is_removed(tmp_path: Path) -> None:
    write(tmp_path, [3]).close()
    (tmp_path / f"{4:020d}.seg").write_bytes(SEGMENT_MAGIC[:5])
    j = Journal(tmp_path)
    assert j.last_seq == 3 and len(list(tmp_path.glob("*.seg"))) == 1


def test_readonly_reports_but_does_not_repair(tmp_path: Path) -> None:
    write(tmp_path, [3, 3]).close()
    seg = the_segment(tmp_path)
    os.truncate(seg, seg.stat().st_size - 7)
    size = seg.stat().st_size
    j = Journal(tmp_path, readonly=True)
    assert j.last_seq == 3 and j.truncated_bytes > 0
    assert seg.stat().st_size == size
    with pytest.raises(ValueError, match="read-only"):
        j.append([Tick(seq=4, ts=1)])


def test_event_only_writes_keep_the_time(tmp_path: Path) -> None:
    j = write(tmp_path, [2])
    j.append([], 1, outputs(2))
    j.close()
    j = Journal(tmp_path)
    assert (j.last_seq, j.last_ts, j.outputs_through) == (2, 1002, 2)


def test_event_only_writes_never_start_a_segment(tmp_path: Path) -> None:
    # tiny segments: every write fills one; event-only writes must not roll (a new
    # segment is named after its first command, and they have none)
    j = Journal(tmp_path, segment_bytes=64)
    for first in range(1, 30, 3):
        j.append(batch(first, 3))
        j.append([], first, outputs(3))
    j.close()
    j = Journal(tmp_path, segment_bytes=64)
    assert (j.last_seq, j.outputs_through) == (30, 30)
    assert len(list(tmp_path.glob("*.seg"))) == 10
    assert [s for s, _ in j.outputs(14)] == list(range(14, 31))


def test_a_short_write_is_an_error_and_leaves_no_fragment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a nearly full disk: os.write takes 10 bytes, then fails
    j = write(tmp_path, [2])
    size = the_segment(tmp_path).stat().st_size
    real_write = os.write
    calls = []

    def short_write(fd: int, data: bytes | memoryview) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data)[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", short_write)
    with pytest.raises(OSError, match="No space"):
        j.append(batch(3, 4))
    monkeypatch.undo()
    assert calls[1] == calls[0] - 10  # it did try to write the rest
    assert the_segment(tmp_path).stat().st_size == size
    assert j.last_seq == 2
    j.append(batch(3, 1))
    j.close()
    assert [c.seq for c in Journal(tmp_path).commands()] == [1, 2, 3]
