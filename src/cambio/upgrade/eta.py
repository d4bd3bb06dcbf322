"""The cutover ETA, from measured speeds and nothing else.

A cutover needs the candidate to be where production is. It starts from production's
newest snapshot (restoring it and hashing the restored state: measured on the candidate),
then replays the journal written since (the backlog) while production keeps writing (the
journal's growth over its last hour, from the commands' own timestamps): catch-up time is
backlog / (replay rate - growth). The pause itself is a few round trips to the candidate
(its last batch, the hash chains, the switch), measured too. Every figure the ETA rests
on is kept in `basis` so an operator can judge it, and so can the status page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cambio.journal.segments import Journal

WINDOW_NS = 3600 * 10**9  # growth is measured over the journal's last hour


@dataclass(frozen=True)
class Eta:
    replay_rate: float  # candidate commands/s, measured in the rehearsal
    backlog: int  # commands from the newest snapshot to the journal's end
    growth: float  # commands/s production wrote over the journal's last hour
    start_s: float  # the candidate restoring the newest snapshot and hashing its state
    catch_up_s: float  # math.inf when the candidate cannot keep up
    pause_s: float  # expected intake pause at cutover

    @property
    def total_s(self) -> float:
        return self.start_s + self.catch_up_s + self.pause_s

    @property
    def keeps_up(self) -> bool:
        return math.isfinite(self.catch_up_s)

    def basis(self) -> str:
        rate = f"{self.replay_rate:,.0f} commands/s measured in this rehearsal"
        if not self.keeps_up:
            return (
                f"the candidate replays {rate}, slower than production's recent "
                f"{self.growth:,.1f} commands/s: it would never catch up"
            )
        return (
            f"start {self.start_s:,.2f} s (the candidate restoring the newest snapshot and "
            f"hashing it, measured); catch-up {self.catch_up_s:,.2f} s ({self.backlog:,} "
            f"commands since that snapshot at {rate}, while the journal grows by "
            f"{self.growth:,.1f} commands/s over its last hour); pause "
            f"{self.pause_s * 1000:,.1f} ms (four round trips to the candidate, measured)"
        )


def growth(journal: Journal) -> float:
    """Commands per second over the journal's last hour of timestamps (or its whole span
    if shorter); 0 for a journal too short to tell."""
    end = journal.last_ts
    first_ts, count = end, 0
    for rec in journal.records():
        if rec.n and rec.ts >= end - WINDOW_NS:
            first_ts = min(first_ts, rec.ts)
            count += rec.n
    span = (end - first_ts) / 1e9
    return count / span if span > 0 else 0.0


def estimate(
    journal: Journal, rate: float, snapshot_seq: int, start_s: float, round_trip_s: float
) -> Eta:
    backlog = journal.last_seq - snapshot_seq
    grows = growth(journal)
    catch_up = backlog / (rate - grows) if rate > grows else math.inf
    return Eta(rate, backlog, grows, start_s, catch_up, 4 * round_trip_s)
