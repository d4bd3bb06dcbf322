"""`cambio upgrade ...`: the operator's commands for replacing the engine.

Only presentation lives here; the work is in cambio.upgrade.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

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
                                   candidate, compare every event (offline)
         cambio upgrade schedule   announce the window with the measured ETA
      2. cambio upgrade shadow     the candidate follows the live exchange
      3. cambio upgrade cutover    switch the primary in a pause of milliseconds
      4. cambio upgrade complete   or: cambio upgrade rollback
    `cambio upgrade status` shows where it stands. A candidate is another build
    of cambio: a checkout, a virtualenv or a Python executable that can import
    cambio.
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
    help="Write the Markdown report here. [default: DATA/rehearsals/<time>-<from>.md]",
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

    from cambio.journal.segments import JournalCorrupt
    from cambio.runtime.host_protocol import ProtocolError
    from cambio.upgrade.candidate import CandidateError, resolve
    from cambio.upgrade.changes import ChangesError
    from cambio.upgrade.rehearse import rehearse as run
    from cambio.upgrade.report import markdown, new_path, summary

    data = existing(data_dir)
    try:
        found = resolve(candidate)
        click.echo(f"candidate: {found.describe()}", err=True)
        server = _Announcer(data_dir, str(candidate))
        with progress("rehearsing") as (advance, set_total):

            def total(n: int) -> None:
                set_total(n)
                server.started(n)

            def done(n: int) -> None:
                advance(n)
                server.progress(n)

            result = run(data, found, start == "snapshot", done, total)
    except (CandidateError, ChangesError) as exc:
        raise CannotRehearse(str(exc)) from None
    except JournalCorrupt as exc:
        raise CannotRehearse(f"journal damaged: {exc}") from None
    except ProtocolError as exc:
        raise CannotRehearse(f"the candidate engine failed: {exc}") from None
    if report_path is None:
        report_path = new_path(data.root, start)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(markdown(result))
    server.finished(result, report_path)
    click.echo(summary(result))
    click.echo(f"report: {report_path}")
    sys.exit(0 if result.ok else 1)


class _Announcer:
    """Tells the server running on DATA, if any, how a rehearsal goes (phase rehearsing,
    with progress and ETA, for operators and the status page). Best effort: a rehearsal
    never fails because the server is away."""

    def __init__(self, data_dir: Path, candidate: str) -> None:
        self.admin = None
        if (data_dir / "serve.json").exists():
            self.admin = _admin(data_dir)
        self.candidate = candidate
        self.total = self.done = 0
        self.started_at = self.said_at = time.monotonic()

    def _say(self, body: dict[str, Any]) -> None:
        if self.admin is None:
            return
        try:
            self.admin.call("/v1/upgrade/rehearsal", body)
        except click.ClickException as exc:
            click.echo(f"(not reported to the server: {exc.message})", err=True)
            self.admin = None

    def started(self, total: int) -> None:
        self.total = total
        self._say({"state": "started", "candidate": self.candidate, "total": total})

    def progress(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.said_at < 1.0:
            return
        self.said_at = now
        rate = self.done / (now - self.started_at)
        left = (self.total - self.done) / rate if rate else None
        self._say({"state": "progress", "done": self.done, "total": self.total,
                   "rate": round(rate), "eta_s": left})  # fmt: skip

    def finished(self, result: Any, report: Path) -> None:
        verdict = "clean" if result.ok else ("diverged" if result.divergence else "problems")
        body: dict[str, Any] = {"state": "finished", "done": result.commands,
                                "verdict": verdict, "report": str(report)}  # fmt: skip
        if result.eta is not None and result.eta.keeps_up:
            body |= {"cutover_eta_s": round(result.eta.total_s, 2), "basis": result.eta.basis()}
        self._say(body)


# ---------------------------------------------------------------------- the live steps
def _admin(data_dir: Path) -> Any:
    from cambio.admin_cli import Admin

    return Admin(data_dir)


def _show(status: dict[str, Any]) -> None:
    click.echo(json.dumps(status, indent=2))


@upgrade.command(short_help="Announce the cutover window, after a clean rehearsal.")
@DATA_OPTION
@click.option("--at", "at", required=True, help="When: an ISO time with its zone, e.g. "
              "2026-12-01T02:00Z.")  # fmt: skip
@click.option("--note", default="", help="A line for the announcement.")
def schedule(data_dir: Path, at: str, note: str) -> None:
    """Journal phase `scheduled`: the window's start, and its expected length from the
    last clean rehearsal run beside this server (the cutover ETA, with its basis), for
    the status page to announce."""
    _show(_admin(data_dir).call("/v1/upgrade/schedule", {"at": at, "note": note}))


@upgrade.command(short_help="Have a candidate follow the live exchange, comparing events.")
@DATA_OPTION
@click.option(
    "--candidate",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="The candidate build (as for rehearse). It runs beside the primary, in its own "
    "process, on the server's machine.",
)
@click.option(
    "--from",
    "start",
    type=click.Choice(["snapshot", "genesis"]),
    default="snapshot",
    show_default=True,
    help="Where the candidate starts before catching up from the journal.",
)
def shadow(data_dir: Path, candidate: Path, start: str) -> None:
    """Start CANDIDATE as a shadow of the running server on DATA.

    \b
    It catches up from the journal, then applies every batch the primary applies
    and compares the events. Watch it with `cambio upgrade status` (lag, declared
    changes, divergence); its first divergence is written as a rehearsal report
    under DATA/rehearsals/ and makes a cutover refuse.
    """
    body = {"candidate": str(candidate.resolve()), "from": start}
    _show(_admin(data_dir).call("/v1/upgrade/shadow", body))


@upgrade.command(short_help="Where the upgrade stands: phase, shadow lag, divergence.")
@DATA_OPTION
def status(data_dir: Path) -> None:
    """Print the upgrade's state as JSON: phase, candidate, the shadow's state, applied
    seq, lag and declared-change counts, its divergence if any, the last cutover's and
    rollback's figures (pause in ms), and the history of phases."""
    _show(_admin(data_dir).call("/v1/upgrade"))


@upgrade.command(short_help="Switch the primary to the shadowing candidate.")
@DATA_OPTION
@click.option(
    "--policy",
    type=click.Choice(["rollback", "cancel_only"]),
    default="rollback",
    show_default=True,
    help="What a divergence after the cutover does: switch back to the previous engine, "
    "or put the affected market in cancel_only.",
)
def cutover(data_dir: Path, policy: str) -> None:
    """Cut over to the candidate: only from a clean shadow that keeps up.

    \b
    Pauses intake (requests queue; none is dropped), waits for the candidate to
    apply the last command, compares state hashes and hash chains, switches the
    primary and resumes. Prints the measured pause. Any failed check resumes with
    the old engine primary. The old engine then shadows the new one (phase
    verifying) until `complete` or a rollback.
    """
    _show(_admin(data_dir).call("/v1/upgrade/cutover", {"policy": policy}))


@upgrade.command(short_help="Switch back to the previous engine.")
@DATA_OPTION
@click.option("--reason", default="operator's decision", show_default=True)
def rollback(data_dir: Path, reason: str) -> None:
    """Make the previous engine (still shadowing since the cutover) primary again, in a
    pause like the cutover's, and snapshot at once."""
    _show(_admin(data_dir).call("/v1/upgrade/rollback", {"reason": reason}))


@upgrade.command(short_help="End verification: let the previous engine go.")
@DATA_OPTION
def complete(data_dir: Path) -> None:
    """Declare the cutover verified: the previous engine stops shadowing (no rollback is
    possible after this)."""
    _show(_admin(data_dir).call("/v1/upgrade/complete", {}))


@upgrade.command(short_help="Stop a shadowing candidate without cutting over.")
@DATA_OPTION
@click.option("--reason", default="operator's decision", show_default=True)
def abort(data_dir: Path, reason: str) -> None:
    """Stop the candidate shadow; nothing changes for the primary."""
    _show(_admin(data_dir).call("/v1/upgrade/abort", {"reason": reason}))
