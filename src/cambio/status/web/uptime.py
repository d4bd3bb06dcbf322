"""Uptime from a component's status history: the 90 daily bars and the percentage.

A component's history is the list of statuses it held, each from its `start` until the
next one's (StatusStore.history). Time is split by UTC day. What counts as down, as a
share of the time spent in a status (the weights; Instatus documents the same ones,
Statuspage does not publish its own):

| status                | counts as down | why                                              |
|-----------------------|----------------|--------------------------------------------------|
| major_outage          | 1.0            | completely unavailable                           |
| partial_outage        | 0.3            | broken for some customers or some functions      |
|                       |                | (cancel_only: orders can be cancelled, not made) |
| degraded_performance  | 0              | working, slower or limited (post_only, ...)      |
| under_maintenance     | 0, shown apart | planned and announced: its minutes are counted   |
|                       |                | and shown on the bar, but not as downtime        |
| operational           | 0              |                                                  |

The percentage is 100 x (1 - weighted down time / observed time). Time before the
component existed (or after `end`) is not observed: a component added yesterday is not
"99 % up" for the 89 days it did not exist, those days are "no data".

A day's colour (`Day.level`) comes from its minutes down when there were any (under 30
weighted minutes: "partial", orange; 30 or more: "major", red), otherwise from the worst
status it held (degraded: "minor", yellow; maintenance: "maint", blue; else "ok", green).
So a two-minute blip is orange and a long partial outage turns red, like Statuspage's
bars, which are coloured by minutes of downtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from cambio.status.model import DEGRADED, MAINTENANCE, MAJOR, OPERATIONAL, PARTIAL, worst

DOWN_WEIGHT = {MAJOR: 1.0, PARTIAL: 0.3, DEGRADED: 0.0, MAINTENANCE: 0.0, OPERATIONAL: 0.0}
RED_MINUTES = 30.0  # weighted minutes down from which a day's bar is red
DAY_S = 86_400


@dataclass
class Day:
    """One UTC day of one component."""

    day: date
    seconds: dict[str, float] = field(default_factory=dict)  # status -> seconds held

    @property
    def observed_s(self) -> float:
        return sum(self.seconds.values())

    @property
    def down_s(self) -> float:
        """Weighted seconds down (see DOWN_WEIGHT)."""
        return sum(DOWN_WEIGHT.get(s, 0.0) * t for s, t in self.seconds.items())

    @property
    def maintenance_s(self) -> float:
        return self.seconds.get(MAINTENANCE, 0.0)

    @property
    def worst(self) -> str | None:
        """The worst status held that day; None: no data."""
        held = [s for s, t in self.seconds.items() if t > 0]
        return worst(held) if held else None

    @property
    def percent(self) -> float | None:
        seen = self.observed_s
        return None if seen <= 0 else 100.0 * (1.0 - self.down_s / seen)

    @property
    def level(self) -> str:
        """The bar's colour class: nodata, ok, maint, minor, partial or major."""
        status = self.worst
        if status is None:
            return "nodata"
        down_min = self.down_s / 60.0
        if down_min >= RED_MINUTES:
            return "major"
        if down_min > 0:
            return "partial"
        return {DEGRADED: "minor", MAINTENANCE: "maint"}.get(status, "ok")

    @property
    def title(self) -> str:
        """The bar's tooltip, in words."""
        when = self.day.strftime("%d %b %Y")
        if self.worst is None:
            return f"{when}: no data"
        parts = [f"{when}: {minutes(self.down_s)} down"]
        if self.maintenance_s:
            parts.append(f"{minutes(self.maintenance_s)} maintenance")
        if self.seconds.get(DEGRADED):
            parts.append(f"{minutes(self.seconds[DEGRADED])} degraded")
        parts.append(f"{percent_text(self.percent)} up")
        return ", ".join(parts)


def uptime(
    history: list[tuple[str, float]], start: float, end: float
) -> tuple[float | None, list[Day]]:
    """(percentage up over [start, end), or None if nothing was observed; one Day per UTC
    day from start's to end's, oldest first). `history` is StatusStore.history: (status,
    since) pairs in time order, each in force until the next."""
    first = _utc_date(start)
    last = _utc_date(max(start, end - 1e-6))
    days = [Day(first + timedelta(days=n)) for n in range((last - first).days + 1)]
    for n, (status, since) in enumerate(history):
        until = history[n + 1][1] if n + 1 < len(history) else end
        lo, hi = max(since, start), min(until, end)
        while lo < hi:  # split the span at UTC midnights
            day = _utc_date(lo)
            midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() + DAY_S
            step = min(hi, midnight)
            slot = days[(day - first).days]
            slot.seconds[status] = slot.seconds.get(status, 0.0) + (step - lo)
            lo = step
    seen = sum(d.observed_s for d in days)
    down = sum(d.down_s for d in days)
    return (None if seen <= 0 else 100.0 * (1.0 - down / seen)), days


def window(now: float, days: int = 90) -> tuple[float, float]:
    """[start, end) of the last `days` UTC days, today (up to `now`) included."""
    today = _utc_date(now)
    first = today - timedelta(days=days - 1)
    return datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp(), now


def percent_text(value: float | None) -> str:
    """99.99 %, rounded down: a component that was down at all never reads 100 %."""
    if value is None:
        return "no data"
    return f"{int(value * 100 + 1e-9) / 100:.2f} %"  # 1e-9: float noise, not downtime


def minutes(seconds: float) -> str:
    m = seconds / 60.0
    if m >= 120:
        return f"{m / 60:.1f}".removesuffix(".0") + " h"
    return f"{round(m)} min" if m >= 1 or m == 0 else "<1 min"


def _utc_date(ts: float) -> date:
    return datetime.fromtimestamp(ts, UTC).date()
