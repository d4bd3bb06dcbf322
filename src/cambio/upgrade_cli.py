"""`cambio upgrade ...`: the operator's commands for replacing the engine.

Only presentation lives here; the work is in cambio.upgrade.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cambio.cli_common import DATA_OPTION, existing, progress


class CannotRehearse(click.ClickException):
    """The rehearsal could not run at all (exit 2, unlike a candidate that failed it)."""

    exit_code = 2


@click.group(short_help="Replace the engine safely: rehearse a candidate build first.")
def upgrade() -> None:
    """Replace the running engine with another build, verified before it goes live.

    \b
    The procedure (docs/runbook-upgrade.md):
      1. cambio upgrade rehearse   replay production's journal through the
                                   candidate, compare every event
    A candidate is another build of cambio: a checkout, a virtualenv or a
    Python executable that can import cambio.
    """


@upgrade.command(short_help="Replay production's journal through a candidate engine.")
@DATA_OPTION
@click.option(
    "--candidate",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="The candidate build: a checkout (with src/cambio), a virtualenv (with "
    "bin/python) or a Python executable that can import cambio.",
)
@click.option(
    "--from",
    "start",
    type=click.Choice(["genesis", "snapshot"]),
    default="genesis",
    show_default=True,
    help="Replay the whole journal, or start the candidate from production's newest "
    "snapshot (faster; also rehearses restoring one, as a cutover does).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the Markdown report here. [default: DATA/rehearsals/<time>.md]",
)
def rehearse(data_dir: Path, candidate: Path, start: str, report_path: Path | None) -> None:
    """Replay the production journal through CANDIDATE and compare every event.

    \b
    Reads the journal read-only: safe beside the running exchange. Every
    command's events are compared with what production recorded. A difference
    the candidate declares in its cambio/intended_changes.toml is counted and
    reported; any other stops the rehearsal at that command, and the report
    shows the command, the expected and actual events and the book and
    balances around it. A clean run also checks the invariants on the
    candidate's state and gives the cutover ETA from the measured replay rate.

    \b
    Exit status: 0 clean; 1 diverged or an invariant failed; 2 could not
    rehearse (bad usage, not a candidate, damaged journal, engine crashed).
    Example:
      cambio upgrade rehearse --data cambio-data --candidate ../cambio-next
    """
    from datetime import UTC, datetime

    from cambio.journal.segments import JournalCorrupt
    from cambio.runtime.host_protocol import ProtocolError
    from cambio.upgrade.candidate import CandidateError, resolve
    from cambio.upgrade.changes import ChangesError
    from cambio.upgrade.rehearse import rehearse as run
    from cambio.upgrade.report import markdown, summary

    data = existing(data_dir)
    try:
        found = resolve(candidate)
        click.echo(f"candidate: {found.describe()}", err=True)
        with progress("rehearsing") as (advance, set_total):
            result = run(data, found, start == "snapshot", advance, set_total)
    except (CandidateError, ChangesError) as exc:
        raise CannotRehearse(str(exc)) from None
    except JournalCorrupt as exc:
        raise CannotRehearse(f"journal damaged: {exc}") from None
    except ProtocolError as exc:
        raise CannotRehearse(f"the candidate engine failed: {exc}") from None
    if report_path is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        report_path = data.root / "rehearsals" / f"{stamp}.md"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(markdown(result))
    click.echo(summary(result))
    click.echo(f"report: {report_path}")
    sys.exit(0 if result.ok else 1)
