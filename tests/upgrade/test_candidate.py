"""Finding a candidate build from the path an operator gives, with reasons when it is not
one."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

import cambio
from cambio.upgrade.candidate import CandidateError, resolve

PACKAGE = Path(cambio.__file__).parent


def checkout(root: Path) -> Path:
    shutil.copytree(PACKAGE, root / "src" / "cambio", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_a_checkout_runs_its_own_package(tmp_path: Path) -> None:
    found = resolve(checkout(tmp_path / "next"))
    assert found.package == (tmp_path / "next" / "src" / "cambio").resolve()
    assert found.version == cambio.__version__
    assert found.env["PYTHONPATH"] == str((tmp_path / "next" / "src").resolve())


def test_a_python_executable_runs_what_it_imports() -> None:
    found = resolve(Path(sys.executable))
    assert found.package == PACKAGE and found.python == sys.executable


def test_a_declared_changes_file_is_read_from_the_candidate(tmp_path: Path) -> None:
    root = checkout(tmp_path / "next")
    (root / "src" / "cambio" / "intended_changes.toml").write_text("# none yet\n")
    assert resolve(root).declared_changes() == "# none yet\n"
    assert resolve(Path(sys.executable)).declared_changes() is None


def test_what_is_not_a_candidate_says_what_would_be(tmp_path: Path) -> None:
    with pytest.raises(CandidateError, match=r"a checkout .* a virtualenv .* a Python"):
        resolve(tmp_path)
    broken = checkout(tmp_path / "broken")
    (broken / "src" / "cambio" / "__init__.py").write_text("def (\n")
    with pytest.raises(CandidateError, match="cannot import cambio: SyntaxError"):
        resolve(broken)
