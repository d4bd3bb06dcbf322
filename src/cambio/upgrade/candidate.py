"""A candidate engine: another build of cambio, found from the path an operator gives.

A candidate is never a copy of code inside this repository: it is whatever build lives at
PATH, run in its own process through the engine host protocol (cambio.runtime.
subprocess_host), so it can differ from production in any way, including its Python
packages. PATH may be

* a checkout: a directory with ``src/cambio/__init__.py`` (run by this interpreter with
  ``PYTHONPATH=PATH/src``);
* a virtualenv: a directory with ``bin/python`` that can import cambio;
* a Python executable that can import cambio.

A candidate may ship ``intended_changes.toml`` in its cambio package to declare the
behaviour it changes on purpose (cambio.upgrade.changes).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cambio.runtime.subprocess_host import SubprocessHost

CHANGES_FILE = "intended_changes.toml"
_PROBE = (
    "import cambio, pathlib; print(pathlib.Path(cambio.__file__).parent); print(cambio.__version__)"
)


class CandidateError(Exception):
    """PATH is not a usable candidate; the message says why and what PATH may be."""


@dataclass(frozen=True)
class Candidate:
    path: Path  # as the operator gave it
    python: str
    env: dict[str, str]
    package: Path  # the candidate's cambio package directory
    version: str

    def host(self, config_path: Path, snapshot: bytes | None = None) -> SubprocessHost:
        """A fresh engine of this build, from genesis or from `snapshot`."""
        return SubprocessHost(config_path, snapshot, python=self.python, env=self.env)

    def declared_changes(self) -> str | None:
        """The text of the candidate's intended_changes.toml, if it ships one."""
        path = self.package / CHANGES_FILE
        return path.read_text() if path.is_file() else None

    def describe(self) -> str:
        return f"cambio {self.version} at {self.package} (python {self.python})"


def resolve(path: Path) -> Candidate:
    """The candidate at `path`, checked by importing cambio with its own interpreter."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if (path / "src" / "cambio" / "__init__.py").is_file():
        python = sys.executable
        env["PYTHONPATH"] = str((path / "src").resolve())
    elif (path / "bin" / "python").exists():
        python = str(path / "bin" / "python")
    elif path.is_file() and os.access(path, os.X_OK):
        python = str(path)
    else:
        raise CandidateError(
            f"{path}: not a candidate. Give a checkout (a directory with src/cambio), a "
            "virtualenv (a directory with bin/python) or a Python executable that can "
            "import cambio."
        )
    try:
        probe = subprocess.run(
            [python, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120
        )
    except OSError as exc:
        raise CandidateError(f"{path}: cannot run {python}: {exc}") from None
    lines = probe.stdout.splitlines()
    if probe.returncode != 0 or len(lines) != 2:
        why = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        raise CandidateError(f"{path}: {python} cannot import cambio: {why}")
    return Candidate(path, python, env, Path(lines[0]), lines[1])
