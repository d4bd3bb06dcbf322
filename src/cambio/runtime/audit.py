"""`cambio verify`: an offline audit of a data directory, trusting nothing but the journal.

Replays every command from genesis in a fresh in-process engine and checks:

* every event the journal recorded is the event the engine produces now;
* the newest intact snapshot's state hash equals the replayed state at its seq;
* the invariants of cambio.ops.invariants hold at the end (conservation per asset with
  the fee account, no negative balance, no crossed book);
* given a custody backend, the ledger reconciles with it transaction by transaction
  (cambio.custody.reconcile).

The journal is opened read-only: verify never changes a data directory, and can run
beside a live server (it then audits what was durable when it started).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cambio.custody.adapter import CustodyAdapter
from cambio.custody.reconcile import LedgerFunding, reconcile
from cambio.engine import Exchange
from cambio.engine.snapshot import state_doc
from cambio.journal.segments import Journal, JournalCorrupt
from cambio.journal.snapshots import SnapshotStore
from cambio.model.commands import Command
from cambio.model.decimals import format_units
from cambio.model.events import Event
from cambio.ops.invariants import Flows, check
from cambio.runtime.datadir import DataDir
from cambio.runtime.host import InProcessHost
from cambio.runtime.replay import Replayer

MAX_LISTED = 20  # mismatches listed one by one; the rest are counted


def verify(
    data: DataDir,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
    custody: CustodyAdapter | None = None,
    owner_of: Callable[[str], int | None] | None = None,
) -> dict[str, Any]:
    """The audit report (see `cambio verify --help`); report["ok"] says it all held.
    With `custody`, `owner_of(address)` names the account of a deposit address."""
    config = data.config()
    problems: list[str] = []
    notes: list[str] = []
    # listed before the journal is read: beside a live server, a snapshot taken meanwhile
    # could be past what this read of the journal sees
    store = SnapshotStore(data.snapshots)
    snapshots = store.paths() if data.snapshots.exists() else []
    try:
        journal = Journal(data.journal, readonly=True)
    except JournalCorrupt as exc:
        return {
            "ok": False,
            "commands": 0,
            "state_hash": None,
            "per_asset": {},
            "problems": [f"journal: {exc}"],
            "notes": [],
        }
    if total is not None:
        total(journal.last_seq)
    if journal.truncated_bytes:
        notes.append(
            f"journal ends in a torn write of {journal.truncated_bytes} bytes (never "
            "acknowledged; the next start cuts it off)"
        )
    if journal.outputs_through < journal.last_seq:
        notes.append(
            f"events of seq {journal.outputs_through + 1}..{journal.last_seq} not recorded yet "
            "(the server was stopped abruptly; the next start records them)"
        )

    host = InProcessHost(config)
    flows = Flows()
    funding = LedgerFunding()

    def count(cmds: list[Command], results: Sequence[Sequence[Event]]) -> None:
        for events in results:
            flows.add(events)
            funding.add(events)

    replayer = Replayer(journal, host, on_applied=count)
    snapshot_report: dict[str, Any] | None = None
    for path in snapshots:
        try:
            seq, body = SnapshotStore.read(path)
            expected = Exchange.restore(config, body).state_hash()
        except Exception as exc:
            problems.append(f"snapshot {path.name}: {exc}")
            continue
        if seq > journal.last_seq:
            problems.append(f"snapshot {path.name} is ahead of the journal ({journal.last_seq})")
            continue
        replayer.run(until=seq, progress=progress)
        actual = host.state_hash()
        snapshot_report = {"seq": seq, "state_hash": expected, "matches": actual == expected}
        if actual != expected:
            problems.append(
                f"snapshot {path.name}: state hash {expected} but the journal replays to "
                f"{actual} at seq {seq}"
            )
        break
    replayer.run(progress=progress)

    for m in replayer.mismatches[:MAX_LISTED]:
        problems.append("event mismatch at " + m.describe())
    if len(replayer.mismatches) > MAX_LISTED:
        problems.append(f"... and {len(replayer.mismatches) - MAX_LISTED} more event mismatches")

    per_asset, broken = check(state_doc(host.engine), flows, [a.id for a in config.assets])
    problems += broken
    reconciled = None
    if custody is not None:
        owes = {asset: totals["balances"] for asset, totals in per_asset.items()}
        reconciled, broken, in_flight = reconcile(
            funding, custody, owner_of or (lambda _: None), config, owes
        )
        problems += broken
        notes += in_flight[:MAX_LISTED]
    shown = {}
    for asset, totals in per_asset.items():
        spec = config.asset(asset)
        shown[asset] = {k: format_units(v, spec.units) for k, v in totals.items()}  # exact
    return {
        "ok": not problems,
        "commands": replayer.commands,
        "last_seq": journal.last_seq,
        "state_hash": host.state_hash(),
        "chain": host.chain(),
        "snapshot": snapshot_report,
        "per_asset": shown,
        "custody": reconciled,
        "replay": {
            "seconds": round(replayer.seconds, 3),
            "commands_per_s": round(replayer.rate),
        },
        "problems": problems,
        "notes": notes,
    }
