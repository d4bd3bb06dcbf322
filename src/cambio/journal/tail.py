"""Following a journal another process writes, cheaply: a reader that remembers where it
stopped (segment and byte offset) and on each `poll` parses only what was appended since.

`Journal(readonly=True)` checks every record on opening, which is right for an audit and
too slow to repeat every second on a long journal; a follower (the status service) uses
this instead. A record still being written fails its checksum or its length: the tail
stops before it and reads it whole at the next poll. Nothing is ever written.
"""

from __future__ import annotations

import mmap
from pathlib import Path

from cambio.journal.segments import SEGMENT_MAGIC, _map, _parse
from cambio.model.events import AnyEvent


class JournalTail:
    def __init__(self, directory: Path, from_seq: int = 1) -> None:
        """Follow the journal in `directory` from the events of command `from_seq`."""
        self.dir = directory
        self.next_seq = from_seq  # the next command whose events are wanted
        self._segment: Path | None = None
        self._offset = len(SEGMENT_MAGIC)
        self._times: dict[int, int] = {}  # seq -> ts of commands whose events are to come

    def _segments(self) -> list[Path]:
        return sorted(self.dir.glob("*.seg")) if self.dir.exists() else []

    def _start(self, segments: list[Path]) -> Path | None:
        start = None
        for path in segments:  # the last segment that begins at or before next_seq
            if start is None or int(path.stem) <= self.next_seq:
                start = path
        return start

    def poll(self, limit: int = 100_000) -> list[tuple[int, int, list[AnyEvent]]]:
        """(seq, ts, events) recorded since the last poll, at most about `limit`."""
        segments = self._segments()
        if self._segment is None:
            self._segment = self._start(segments)
            if self._segment is None:
                return []
        out: list[tuple[int, int, list[AnyEvent]]] = []
        while len(out) < limit:
            buf = _map(self._segment)
            try:
                off = self._offset
                while len(out) < limit:
                    parsed = _parse(buf, off) if off < len(buf) else None
                    if parsed is None:
                        break
                    rec, off = parsed
                    for cmd in rec.commands() if rec.n else ():
                        if cmd.seq >= self.next_seq:
                            self._times[cmd.seq] = cmd.ts
                    for i, events in enumerate(rec.outputs()):
                        seq = rec.out_seq + i
                        if seq >= self.next_seq:
                            out.append((seq, self._times.pop(seq, rec.ts), events))
                            self.next_seq = seq + 1
                self._offset = off
            finally:
                if isinstance(buf, mmap.mmap):
                    buf.close()
            later = [p for p in segments if p > self._segment]
            if not later or self._offset < _size(self._segment):
                break  # the end for now (or a record being written)
            self._segment, self._offset = later[0], len(SEGMENT_MAGIC)
        return out


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
