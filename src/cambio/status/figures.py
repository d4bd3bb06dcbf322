"""Live figures in words: what the automatic updates say when nobody has posted.

From the last heartbeat only (the status service never asks the exchange): each
market's mode, the funding switches, queued withdrawals, and an engine upgrade's
progress and ETA; plus how long the incident has lasted. Times in UTC, to the minute.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cambio.model.config import MarketConfig

MODE_WORDS = {
    "online": "open",
    "post_only": "post-only (new orders must rest on the book)",
    "limit_only": "limit orders only",
    "reduce_only": "reduce-only",
    "cancel_only": "cancel-only (orders can be cancelled, not placed)",
    "maintenance": "closed for maintenance",
}


def hhmm(ts: float | None, now: float | None = None) -> str:
    """03:05 UTC, with the date when it is not `now`'s day ("" for no time)."""
    if ts is None:
        return ""
    when = datetime.fromtimestamp(ts, UTC)
    if now is not None and when.date() != datetime.fromtimestamp(now, UTC).date():
        return when.strftime("%d %b %H:%M UTC")
    return when.strftime("%H:%M UTC")


def duration(seconds: float) -> str:
    if seconds < 1:
        return "under a second"
    if seconds < 60:
        return f"{int(seconds)} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def markets_line(beat: dict[str, Any]) -> str:
    by_mode: dict[str, list[str]] = {}
    for pair, mode in sorted((beat.get("markets") or {}).items()):
        by_mode.setdefault(mode, []).append(pair)
    if not by_mode:
        return "Trading: unknown."
    if list(by_mode) == ["online"]:
        return f"Trading: open on all {len(by_mode['online'])} markets."
    parts = []
    for mode, pairs in sorted(by_mode.items(), key=lambda kv: kv[0] != "online"):
        shown = f"{len(pairs)} markets" if mode == "online" else ", ".join(pairs)
        parts.append(f"{MODE_WORDS.get(mode, mode)}: {shown}")
    return "Trading: " + "; ".join(parts) + "."


def funding_line(config: MarketConfig, beat: dict[str, Any], kind: str) -> str:
    funding = beat.get("funding") or {}
    off = [config.asset(a).altname for a, s in sorted(funding.items()) if not s.get(kind, True)]
    title = kind.capitalize()
    if not funding:
        return f"{title}: unknown."
    if not off:
        return f"{title}: open for every asset."
    if len(off) == len(funding):
        return f"{title}: paused for every asset."
    return f"{title}: paused for {', '.join(off)}; open for the others."


def upgrade_lines(detail: dict[str, Any] | None, now: float) -> list[str]:
    if not detail:
        return []
    lines = [f"Engine upgrade: {detail.get('phase', 'under way')}."]
    rehearsal = detail.get("rehearsal") or {}
    done, total = rehearsal.get("done"), rehearsal.get("total")
    if done is not None and total:
        line = f"Rehearsal: {100 * done / total:.0f}% ({done:,} of {total:,} commands"
        if rehearsal.get("rate"):
            line += f" at {float(rehearsal['rate']):,.0f}/s"
        line += ")"
        if rehearsal.get("eta_s") is not None:
            line += f", done by about {hhmm(now + float(rehearsal['eta_s']))}"
        lines.append(line + ".")
    scheduled = detail.get("scheduled") or {}
    if scheduled.get("expected_s") is not None:
        lines.append(
            f"Expected duration {duration(float(scheduled['expected_s']))}, measured "
            f"({scheduled.get('basis') or 'replay speed'})."
        )
    if detail.get("shadow_lag") is not None:
        lines.append(f"The new engine is {int(detail['shadow_lag']):,} commands behind live.")
    return lines


def live(
    config: MarketConfig, beat: dict[str, Any] | None, alive: bool, now: float,
    since: float, expected_end: float | None,
) -> str:  # fmt: skip
    """The body of an automatic update."""
    lines = [f"Ongoing for {duration(now - since)} (since {hhmm(since)})."]
    if beat is None:
        lines.append("The exchange has not reported since this page started.")
    elif not alive:
        lines.append(f"The exchange has not answered since {hhmm(float(beat['ts']))}.")
    else:
        lines.append(markets_line(beat))
        lines.append(funding_line(config, beat, "deposits"))
        lines.append(funding_line(config, beat, "withdrawals"))
        queued = beat.get("withdrawals_queued")
        if queued:
            lines.append(f"Withdrawals queued, paid once withdrawals reopen: {queued}.")
        lines += upgrade_lines(beat.get("upgrade_detail"), now)
    if expected_end is not None:
        lines.append(f"Expected end: {hhmm(expected_end)}.")
    lines.append("Balances and orders are kept in the journal throughout.")
    return " ".join(lines)
