"""Report files: one per rehearsal or shadow divergence, never overwriting another."""

from __future__ import annotations

from pathlib import Path

from cambio.upgrade.report import new_path


def test_reports_made_in_the_same_second_keep_their_own_files(tmp_path: Path) -> None:
    paths = []
    for _ in range(3):
        path = new_path(tmp_path, "shadow")
        path.write_text("a report")
        paths.append(path)
    assert len(set(paths)) == 3 and all(p.parent == tmp_path / "rehearsals" for p in paths)
    assert all(p.name.split("-", 1)[1].startswith("shadow") for p in paths)
