"""The rehearsal report in Markdown: the verdict first, then what it rests on.

Written for the operator deciding whether to schedule a cutover and for whoever fixes the
candidate: the first divergence shows the command, the events production recorded and
the candidate's, field by field, and the book and balances around it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from cambio.model.events import Event
from cambio.upgrade.changes import fields_of, tag
from cambio.upgrade.rehearse import Context, Divergence, Rehearsal


def markdown(r: Rehearsal) -> str:
    verdict = "CLEAN" if r.ok else ("DIVERGED" if r.divergence else "PROBLEMS")
    start = "genesis" if r.start_seq == 0 else f"the snapshot at seq {r.start_seq}"
    lines = [
        f"# Rehearsal: {verdict}",
        "",
        f"- Candidate: {r.candidate.describe()}",
        f"- Journal: {r.journal_last_seq:,} commands; replayed from {start}",
        f"- Replayed: {r.commands:,} commands in {r.seconds:.2f} s ({r.rate:,.0f} commands/s)",
    ]
    if r.state_hash:
        lines.append(f"- Candidate state hash at the end: `{r.state_hash}`")
    if r.eta is not None:
        eta = r.eta
        when = f"{eta.total_s:,.1f} s" if eta.keeps_up else "never (see basis)"
        lines += [f"- Cutover ETA: {when}", f"  - Basis: {eta.basis()}"]
    lines += ["", "## Declared changes", ""]
    if not r.declared:
        lines.append("The candidate declares none: every difference is a divergence.")
    for name, d in r.declared.items():
        lines.append(f"- **{name}**: {d.count:,} command(s). {d.change.description}")
        if d.first is not None:
            lines.append(f"  - first at seq {d.first.seq}")
    if r.divergence is not None:
        lines += ["", *_divergence(r.divergence)]
    if r.problems:
        lines += ["", "## Problems", "", *[f"- {p}" for p in r.problems]]
    if r.notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in r.notes]]
    return "\n".join(lines) + "\n"


def new_path(data_root: Path, label: str) -> Path:
    """A fresh report file `DATA/rehearsals/<UTC time>-<label>.md` (with -2, -3, ... when
    reports come within one second: none overwrites another)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = data_root / "rehearsals"
    folder.mkdir(parents=True, exist_ok=True)
    path, n = folder / f"{stamp}-{label}.md", 1
    while path.exists():
        n += 1
        path = folder / f"{stamp}-{label}-{n}.md"
    return path


def summary(r: Rehearsal) -> str:
    """A few lines for the terminal."""
    if r.divergence is not None:
        d = r.divergence
        first = (
            f"first unexpected divergence at seq {d.seq}: {type(d.command).__name__} "
            f"{_text(fields_of(d.command))}"
        )
        return f"DIVERGED after {r.commands:,} commands: {first}"
    if r.problems:
        return "PROBLEMS: " + "; ".join(r.problems)
    declared = sum(d.count for d in r.declared.values())
    extra = f", {declared:,} declared change(s)" if declared else ""
    eta = ""
    if r.eta is not None:
        eta = f"; cutover ETA {r.eta.total_s:,.1f} s" if r.eta.keeps_up else "; cannot keep up"
    return f"CLEAN: {r.commands:,} commands at {r.rate:,.0f}/s{extra}{eta}"


# ---------------------------------------------------------------------- pieces
def _divergence(d: Divergence) -> list[str]:
    cmd = d.command
    when = datetime.fromtimestamp(cmd.ts / 1e9, UTC).isoformat()
    lines = [
        "## First unexpected divergence",
        "",
        f"- Sequence: {d.seq}",
        f"- Time: {when}",
        f"- Command: `{type(cmd).__name__}` `{_text(fields_of(cmd))}`",
        "",
        "### Expected (production recorded)",
        "",
        *_events(d.recorded),
        "",
        "### Actual (candidate)",
        "",
        *_events(d.replayed),
        "",
        "### Differences",
        "",
        *_differences(d.recorded, d.replayed),
    ]
    if d.context is not None:
        lines += ["", *_context(d.context)]
    return lines


def _events(events: list[Event]) -> list[str]:
    if not events:
        return ["(no events)"]
    return [f"{i + 1}. `{tag(ev)}` `{_text(fields_of(ev))}`" for i, ev in enumerate(events)]


def _differences(recorded: list[Event], replayed: list[Event]) -> list[str]:
    out = []
    for i in range(max(len(recorded), len(replayed))):
        a = recorded[i] if i < len(recorded) else None
        b = replayed[i] if i < len(replayed) else None
        if a is None or b is None:
            which = "candidate" if a is None else "production"
            ev = b if a is None else a
            assert ev is not None
            out.append(f"- event {i + 1}: only {which} has `{tag(ev)}`")
        elif tag(a) != tag(b):
            out.append(f"- event {i + 1}: production `{tag(a)}`, candidate `{tag(b)}`")
        else:
            fa, fb = fields_of(a), fields_of(b)
            for f, v in fa.items():
                if fb.get(f) != v:
                    out.append(f"- event {i + 1} `{tag(a)}`.{f}: production {v!r}, "
                               f"candidate {fb.get(f)!r}")  # fmt: skip
    return out or ["- (the same events in another encoding)"]


def _context(c: Context) -> list[str]:
    lines = ["## State around it", ""]
    if "error" in c.before:
        return [*lines, f"Could not be rebuilt: {c.before['error']}"]
    lines.append(f"Pair: {c.pair or '-'}; accounts: {', '.join(map(str, c.accounts)) or '-'}")
    for title, state in (
        ("Before the command (production and candidate agree here)", c.before),
        ("After it, production", c.after_production),
        ("After it, candidate", c.after_candidate),
    ):
        lines += ["", f"### {title}", ""]
        book = state.get("book")
        if book:
            lines.append(f"- bids (best {len(book['bids'])}): `{book['bids']}`")
            lines.append(f"- asks (best {len(book['asks'])}): `{book['asks']}`")
        for account, held in state.get("balances", {}).items():
            shown = {a: dict(zip(("available", "in orders", "withdrawing"), v, strict=True))
                     for a, v in held.items()}  # fmt: skip
            lines.append(f"- account {account}: `{_text(shown)}`")
    return lines


def _text(value: Any) -> str:
    return msgspec.json.encode(value).decode()
