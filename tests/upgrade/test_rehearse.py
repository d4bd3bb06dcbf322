"""`cambio upgrade rehearse` on a production journal: an unmodified candidate is clean
from genesis and from the snapshot; every engine mutant is stopped at exactly the command
that exercises its bug, with a report that shows it; a declared change is counted, not
hidden."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from upgrade_fixtures import MUTANTS, Mutant, Production, make_candidate, write_production

from cambio.runtime.datadir import DataDir
from cambio.upgrade.candidate import resolve
from cambio.upgrade.rehearse import rehearse
from cambio.upgrade.report import markdown, summary

MUTANT = {m.name: m for m in MUTANTS}


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DataDir, Production]]:
    data = DataDir(tmp_path_factory.mktemp("production") / "data")
    yield data, write_production(data)


@pytest.mark.parametrize("from_snapshot", [False, True], ids=["genesis", "snapshot"])
def test_an_unmodified_candidate_rehearses_clean(
    production: tuple[DataDir, Production], tmp_path: Path, from_snapshot: bool
) -> None:
    data, prod = production
    result = rehearse(data, resolve(make_candidate(tmp_path, None)), from_snapshot)
    assert result.ok, markdown(result)
    start = prod.snapshot_seq if from_snapshot else 0
    assert (result.start_seq, result.commands) == (start, prod.last_seq - start)
    assert result.eta is not None and result.eta.keeps_up
    assert result.eta.backlog == prod.last_seq - prod.snapshot_seq
    report = markdown(result)
    assert report.startswith("# Rehearsal: CLEAN") and "Basis: " in report


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_each_mutant_is_stopped_at_its_first_divergence(
    production: tuple[DataDir, Production], tmp_path: Path, mutant: Mutant
) -> None:
    data, prod = production
    result = rehearse(data, resolve(make_candidate(tmp_path, mutant)), mutant.from_snapshot)
    d = result.divergence
    assert d is not None, markdown(result)
    assert d.seq == d.command.seq == prod.marks[mutant.feature]
    assert result.commands < prod.last_seq and not result.ok
    report = markdown(result)
    assert "## First unexpected divergence" in report and f"- Sequence: {d.seq}" in report
    assert "### Expected (production recorded)" in report and "### Actual (candidate)" in report
    assert d.context is not None and "error" not in d.context.before
    assert d.context.accounts and d.context.after_production != d.context.after_candidate
    assert summary(result).startswith(f"DIVERGED after {result.commands:,} commands")


def test_the_restore_mutant_replays_clean_from_genesis_but_fails_the_restore_check(
    production: tuple[DataDir, Production], tmp_path: Path
) -> None:
    data, prod = production
    mutant = MUTANT["restore-iceberg-full-slice"]
    result = rehearse(data, resolve(make_candidate(tmp_path, mutant)))
    assert result.divergence is None and result.commands == prod.last_seq  # every event
    (problem,) = result.problems  # but the start a shadow would make is wrong
    assert problem.startswith("restoring production's newest snapshot") and not result.ok


def test_a_declared_change_is_counted_and_reported_not_hidden(
    production: tuple[DataDir, Production], tmp_path: Path
) -> None:
    data, prod = production
    checkout = make_candidate(tmp_path, MUTANT["taker-fee-rounds-up"])
    (checkout / "src" / "cambio" / "intended_changes.toml").write_text(
        '[[change]]\nname = "taker fee rounds up"\ndescription = "ceil, from 0.2"\n'
        'events = ["trade"]\nfields = ["taker_fee"]\n'
    )
    result = rehearse(data, resolve(checkout))
    assert result.divergence is None and result.problems == [], markdown(result)
    declared = result.declared["taker fee rounds up"]
    assert declared.count >= 1 and declared.first is not None
    assert declared.first.seq == prod.marks["fee_rounding"]
    # the fees moved balances, so the state hash at production's snapshot differs: said
    assert any("declared change" in note for note in result.notes)
    assert f"**taker fee rounds up**: {declared.count:,} command(s)" in markdown(result)


def test_the_command_line_exit_codes_and_report(
    production: tuple[DataDir, Production], tmp_path: Path
) -> None:
    data, prod = production
    cli = [sys.executable, "-m", "cambio", "upgrade", "rehearse", "--data", str(data.root)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], capture_output=True, text=True, timeout=120)

    clean = run("--candidate", str(make_candidate(tmp_path / "a", None)))
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout.startswith(f"CLEAN: {prod.last_seq:,} commands")
    assert "candidate: cambio" in clean.stderr
    reports = list((data.root / "rehearsals").glob("*.md"))
    assert len(reports) == 1 and reports[0].read_text().startswith("# Rehearsal: CLEAN")

    mutant = make_candidate(tmp_path / "b", MUTANT["lifo-levels"])
    report = tmp_path / "lifo.md"
    diverged = run("--candidate", str(mutant), "--report", str(report))
    assert diverged.returncode == 1
    assert f"first unexpected divergence at seq {prod.marks['time_priority']}" in diverged.stdout
    assert "# Rehearsal: DIVERGED" in report.read_text()

    nothing = run("--candidate", str(tmp_path))
    assert nothing.returncode == 2 and "not a candidate" in nothing.stderr
