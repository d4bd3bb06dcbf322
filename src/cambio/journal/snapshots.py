"""Snapshot files: the engine's canonical state at a sequence number, written atomically.

``DIR/<seq, 20 digits>.snap`` holds magic "CAMBIOS1", the seq (u64), the SHA-256 of the
body, then the body (the engine's snapshot document). A snapshot is written to a
temporary name, fsynced, renamed into place and the directory fsynced, so a crash leaves
either the whole file or none. Loading checks the digest and lets the caller check the
document; a snapshot that fails either is skipped in favour of an older one (or of
genesis: the journal is kept whole, so any state can be rebuilt from it).
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cambio.crashpoints import crashpoint
from cambio.journal.segments import fsync_dir

MAGIC = b"CAMBIOS1"
_HEAD = struct.Struct("<8sQ32s")
KEEP = 3  # snapshots kept; older ones are deleted after a new one is durable

T = TypeVar("T")


class SnapshotStore:
    def __init__(self, directory: Path, keep: int = KEEP) -> None:
        self.dir = directory  # nothing on disk is touched until `write` or `remove_partial`
        self.keep = keep

    def remove_partial(self) -> None:
        """Delete writes the process did not live to finish (only the writer may)."""
        for stale in self.dir.glob("*.tmp"):
            stale.unlink()

    def paths(self) -> list[Path]:
        """Snapshot files, newest first."""
        return sorted(self.dir.glob("*.snap"), reverse=True)

    def write(self, seq: int, body: bytes) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{seq:020d}.snap"
        tmp = path.with_suffix(".tmp")
        head = _HEAD.pack(MAGIC, seq, hashlib.sha256(body).digest())
        with tmp.open("wb") as f:
            f.write(head)
            f.write(body[: len(body) // 2])
            crashpoint("snapshot.writing")
            f.write(body[len(body) // 2 :])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(self.dir)
        for old in self.paths()[self.keep :]:
            old.unlink()
        return path

    @staticmethod
    def seq_of(path: Path) -> int:
        """The seq a snapshot file claims, from its header alone (ValueError if none)."""
        with path.open("rb") as f:
            head = f.read(_HEAD.size)
        if len(head) < _HEAD.size or head[:8] != MAGIC:
            raise ValueError(f"{path.name}: not a snapshot")
        seq: int = _HEAD.unpack(head)[1]
        return seq

    @staticmethod
    def read(path: Path) -> tuple[int, bytes]:
        """(seq, body) of a snapshot file; ValueError if it is not intact."""
        data = path.read_bytes()
        if len(data) < _HEAD.size:
            raise ValueError(f"{path.name}: truncated")
        magic, seq, digest = _HEAD.unpack_from(data)
        body = data[_HEAD.size :]
        if magic != MAGIC:
            raise ValueError(f"{path.name}: not a snapshot (bad magic)")
        if hashlib.sha256(body).digest() != digest:
            raise ValueError(f"{path.name}: checksum mismatch")
        return seq, body

    def load(self, restore: Callable[[bytes], T], max_seq: int) -> tuple[int, T | None, list[str]]:
        """The newest snapshot at or below `max_seq` that reads back and that `restore`
        accepts: (seq, restored, problems). (0, None, problems) means start from genesis."""
        problems: list[str] = []
        for path in self.paths():
            try:
                seq, body = self.read(path)
                if seq > max_seq:
                    raise ValueError(f"{path.name}: ahead of the journal (seq {max_seq})")
                return seq, restore(body), problems
            except Exception as exc:
                problems.append(f"snapshot {path.name} skipped: {exc}")
        return 0, None, problems
