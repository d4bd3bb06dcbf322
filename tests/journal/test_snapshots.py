"""Snapshot files: atomic writes, damage detection, fallback to older ones or genesis."""

from __future__ import annotations

from pathlib import Path

import pytest

from cambio.journal.snapshots import SnapshotStore


def restore_ok(body: bytes) -> bytes:
    if body.startswith(b"bad"):
        raise ValueError("engine refuses this document")
    return body


def test_newest_intact_snapshot_wins_and_old_ones_are_pruned(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=2)
    for seq in (10, 20, 30):
        store.write(seq, f"state at {seq}".encode())
    assert [p.name for p in store.paths()] == [f"{30:020d}.snap", f"{20:020d}.snap"]
    assert store.load(restore_ok, max_seq=100) == (30, b"state at 30", [])


@pytest.mark.parametrize("damage", ["flip", "truncate", "magic"])
def test_a_damaged_snapshot_falls_back_to_the_older_one(tmp_path: Path, damage: str) -> None:
    store = SnapshotStore(tmp_path)
    store.write(10, b"state at 10")
    newest = store.write(20, b"state at 20")
    data = bytearray(newest.read_bytes())
    if damage == "flip":
        data[-1] ^= 1
    elif damage == "truncate":
        data = data[:30]
    else:
        data[0:8] = b"NOTASNAP"
    newest.write_bytes(bytes(data))
    seq, body, problems = store.load(restore_ok, max_seq=100)
    assert (seq, body) == (10, b"state at 10")
    assert len(problems) == 1 and newest.name in problems[0]


def test_snapshots_the_engine_refuses_or_past_the_limit_are_skipped(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.write(10, b"bad doc")
    store.write(20, b"state at 20")
    assert store.load(restore_ok, max_seq=15)[:2] == (0, None)  # 20 ahead, 10 refused
    seq, body, problems = store.load(restore_ok, max_seq=20)
    assert (seq, body, problems) == (20, b"state at 20", [])


def test_a_write_cut_short_leaves_no_snapshot(tmp_path: Path) -> None:
    (tmp_path / f"{40:020d}.tmp").write_bytes(b"CAMBIOS1 half")
    store = SnapshotStore(tmp_path)
    assert store.paths() == []
    store.remove_partial()
    assert not list(tmp_path.glob("*.tmp"))
    assert store.load(restore_ok, max_seq=100)[:2] == (0, None)
