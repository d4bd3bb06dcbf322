"""Fixtures for the upgrade rehearsal tests: a production data directory and engine mutants.

`write_production` journals a deterministic scenario exactly as the live sequencer does
(commands first, each batch's events riding along with the next write) and writes one
snapshot mid-way. Each feature the engine must not silently change is exercised at a
known seq (`Production.marks`), before any background flow could exercise it first.

`MUTANTS` are realistic one-line bugs in a copy of the engine (`make_candidate`); each
must make a rehearsal stop exactly at `marks[mutant.feature]`. `candidate_host` runs such
a copy in a child process the way `cambio upgrade rehearse` does: `sys.executable` with
``PYTHONPATH`` pointing at the checkout's ``src``.

The scenario, in journal order (every feature uses its own accounts and price level, and
cancels what it leaves, so the features cannot disturb one another):

1. deposits, then a warm-up of non-crossing ETH/USD orders, cancels and ticks (no trade:
   no mutant can diverge on it);
2. the features on XBT/USD: time priority, fee rounding, trigger at equality, self-trade
   prevention, iceberg refill, price precision. Up to there no account meets itself in
   the book, no order waits behind another at the price a taker reaches but in the two
   queue scenarios, and only the fee-rounding trade has a fee to round;
3. random XBT/USD background flow, during which a SOL/USD iceberg is left with a
   partly consumed slice; the snapshot;
4. more background flow, with the first trade against that iceberg after the snapshot
   (what a restore that mis-reads the slice gets wrong), then more flow.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cambio
from cambio.journal.segments import Journal
from cambio.journal.snapshots import SnapshotStore
from cambio.model.commands import (
    BUY,
    ICEBERG,
    IOC,
    LIMIT,
    MARKET,
    SELL,
    STOP_LOSS,
    STP_CANCEL_BOTH,
    STP_CANCEL_NEWEST,
    STP_CANCEL_OLDEST,
    TAKE_PROFIT,
    AddOrder,
    CancelAll,
    CancelOrder,
    Command,
    Deposit,
    Tick,
)
from cambio.model.events import Event
from cambio.runtime.datadir import DataDir
from cambio.runtime.host import InProcessHost
from cambio.runtime.subprocess_host import SubprocessHost

T0 = 1_700_006_400 * 1_000_000_000  # midnight UTC: the whole journal falls in one day
STEP_NS = 10_000_000  # 10 ms between commands
XBT = "XXBTZUSD"  # price units of 0.1 USD, lots of 1e-8 BTC (ordermin 10_000)
ETH = "XETHZUSD"  # price units of 0.01 USD, ordermin 200_000 lots
SOL = "SOLUSD"  # price units of 0.01 USD, ordermin 2_000_000 lots
FUNDS = 10**16  # per feature account and asset (1e6 USD / BTC / SOL in engine units)
BACKGROUND_FUNDS = 10**18
BACKGROUND_ACCOUNTS = (1, 2, 3, 4)
BACKGROUND_MID = 5_000_000  # XBT/USD background prices: this +- 300 ticks of 10 units


@dataclass
class Production:
    """What `write_production` journaled: its last seq, the seq of its one snapshot, and
    per feature the seq of the first command whose events a mutant of it changes."""

    last_seq: int
    snapshot_seq: int
    marks: dict[str, int]


@dataclass
class Mutant:
    """A one-line bug: `old` (occurring exactly once) replaced by `new` in the file at
    `path` (relative to the cambio package). `from_snapshot`: it only shows when the
    candidate starts from the snapshot (a from-genesis replay is clean)."""

    name: str
    path: str
    old: str
    new: str
    feature: str
    from_snapshot: bool = False


MUTANTS: list[Mutant] = [
    Mutant(
        name="lifo-levels",
        path="engine/book.py",
        old="        lvl.n += 1\n        lvl.append(o)",
        new="        lvl.n += 1\n        lvl.appendleft(o)",
        feature="time_priority",
    ),
    Mutant(
        name="taker-fee-rounds-up",
        path="engine/exchange.py",
        old="tfee = base_amt * taker_ppm // PPM if t.fee_in_base else cost * taker_ppm // PPM",
        new="tfee = base_amt * taker_ppm // PPM if t.fee_in_base else -(-cost * taker_ppm // PPM)",
        feature="fee_rounding",
    ),
    Mutant(
        name="trigger-needs-overshoot",
        path="engine/exchange.py",
        old="while up and up[0][0] <= p:",
        new="while up and up[0][0] < p:",
        feature="trigger",
    ),
    Mutant(
        name="stp-newest-is-oldest",
        path="engine/exchange.py",
        old="if stp == STP_CANCEL_NEWEST:",
        new="if stp == STP_CANCEL_OLDEST:",
        feature="stp",
    ),
    Mutant(
        name="iceberg-refill-keeps-front",
        path="engine/exchange.py",
        old="lvl.append(o)",
        new="lvl.appendleft(o)",
        feature="iceberg_refill",
    ),
    Mutant(
        name="precision-one-decimal-more",
        path="model/decimals.py",
        old="factor = int(10 ** (dp - decimals))",
        new="factor = int(10 ** (dp - decimals - 1))",
        feature="precision",
    ),
    Mutant(
        name="restore-iceberg-full-slice",
        path="engine/snapshot.py",
        old="shown=od.shown",
        new="shown=od.display",
        feature="after_restore",
        from_snapshot=True,
    ),
]


@dataclass
class _Script:
    """Commands in journal order, stamped with seq and ts as the sequencer would."""

    cmds: list[Command] = field(default_factory=list)
    marks: dict[str, int] = field(default_factory=dict)
    adds: int = 0  # AddOrders so far: roughly the engine's next order id, for cancels

    def add(self, *cmds: Command, mark: str | None = None) -> None:
        """Append `cmds`; with `mark`, the last of them is where that feature diverges."""
        for cmd in cmds:
            cmd.seq = len(self.cmds) + 1
            cmd.ts = T0 + cmd.seq * STEP_NS
            self.cmds.append(cmd)
            self.adds += isinstance(cmd, AddOrder)
        if mark is not None:
            self.marks[mark] = self.cmds[-1].seq

    @property
    def last_seq(self) -> int:
        return len(self.cmds)


def _deposits(script: _Script) -> None:
    for account in BACKGROUND_ACCOUNTS:
        for asset in ("ZUSD", "XXBT", "XETH"):
            script.add(
                Deposit(
                    account=account, asset=asset, amount=BACKGROUND_FUNDS, ref=f"{account}{asset}"
                )
            )
    # feature accounts: 11.. time priority, 21.. fees, 31.. trigger, 41 stp, 51.. iceberg,
    # 61 precision, 71.. the iceberg a restore must get right
    for account in (11, 12, 13, 21, 22, 31, 32, 33, 41, 51, 52, 53, 61, 71, 72):
        for asset in ("ZUSD", "XXBT", "SOL"):
            script.add(Deposit(account=account, asset=asset, amount=FUNDS, ref=f"{account}{asset}"))


def _warm_up(script: _Script, rng: random.Random, n: int) -> None:
    """Resting ETH/USD orders far apart (bids at 1,000 to 1,050 USD, asks at 3,000 to
    3,050), ticks and cancels: nothing ever trades, so no mutant can diverge here."""
    for _ in range(n):
        account = rng.choice(BACKGROUND_ACCOUNTS)
        r = rng.random()
        if r < 0.2:
            oid = rng.randint(max(1, script.adds - 20), max(1, script.adds))
            script.add(CancelOrder(account=account, order_id=oid))
        elif r < 0.3:
            script.add(Tick())
        else:
            side = rng.choice((BUY, SELL))
            price = (100_000 if side == BUY else 300_000) + rng.randint(0, 50) * 100
            qty = rng.randint(1, 5) * 200_000
            script.add(AddOrder(account=account, pair=ETH, side=side, qty=qty, price=price))


def _features(script: _Script) -> None:
    """One scenario per feature, each at its own price on XBT/USD. Trade costs here are
    multiples of 5,000 quote units (XBT/USD quote units are 1e-10 USD, a cost is price x
    qty x 10) so that every fee is exact, except in the fee-rounding scenario."""
    # time priority: two makers at one price; the taker fills only the older one
    script.add(
        AddOrder(account=11, pair=XBT, side=SELL, qty=20_000, price=5_000_000),
        AddOrder(account=12, pair=XBT, side=SELL, qty=20_000, price=5_000_000),
    )
    script.add(
        AddOrder(account=13, pair=XBT, side=BUY, qty=20_000, price=5_000_000), mark="time_priority"
    )
    script.add(CancelAll(account=12), Tick())

    # fee rounding: a cost of 617,250,123,450 units at 0.26 % is 1,604,850,320.97 units
    script.add(AddOrder(account=21, pair=XBT, side=SELL, qty=12_345, price=5_000_001))
    script.add(
        AddOrder(account=22, pair=XBT, side=BUY, qty=12_345, price=5_000_001), mark="fee_rounding"
    )
    script.add(Tick())

    # trigger: a buy stop at 510,000.0 USD, then a trade at exactly that price fires it
    # (it then buys the ask above); the last price before is 500,000.1
    script.add(
        AddOrder(account=31, pair=XBT, side=BUY, ordertype=STOP_LOSS, qty=10_000, price=5_100_000),
        AddOrder(account=32, pair=XBT, side=SELL, qty=10_000, price=5_100_000),
        AddOrder(account=32, pair=XBT, side=SELL, qty=10_000, price=5_100_500),
    )
    script.add(
        AddOrder(account=33, pair=XBT, side=BUY, qty=10_000, price=5_100_000), mark="trigger"
    )
    script.add(CancelAll(account=31), CancelAll(account=32), Tick())

    # self-trade prevention: the account's buy meets its own resting sell; cancel-newest
    # cancels the buy and leaves the sell (cancel-oldest would do the reverse and rest
    # the buy)
    script.add(AddOrder(account=41, pair=XBT, side=SELL, qty=10_000, price=5_200_000))
    script.add(
        AddOrder(
            account=41, pair=XBT, side=BUY, qty=10_000, price=5_200_000, stp=STP_CANCEL_NEWEST
        ),
        mark="stp",
    )
    script.add(CancelAll(account=41), Tick())

    # iceberg refill: the first taker consumes the visible slice exactly; the refilled
    # slice joins the back of the level, so the second taker fills the order behind it
    script.add(
        AddOrder(
            account=51,
            pair=XBT,
            side=SELL,
            ordertype=ICEBERG,
            qty=100_000,
            display_qty=10_000,
            price=5_300_000,
        ),
        AddOrder(account=52, pair=XBT, side=SELL, qty=10_000, price=5_300_000),
        AddOrder(account=53, pair=XBT, side=BUY, qty=10_000, price=5_300_000),
        Tick(),
    )
    script.add(
        AddOrder(account=53, pair=XBT, side=BUY, qty=10_000, price=5_300_000), mark="iceberg_refill"
    )
    script.add(CancelAll(account=51), CancelAll(account=52), Tick())

    # precision: "540000.1" (XBT/USD's one decimal) is accepted, "540000.15" refused
    script.add(AddOrder(account=61, pair=XBT, side=SELL, qty=10_000, price=5_400_001, price_dp=1))
    script.add(
        AddOrder(account=61, pair=XBT, side=SELL, qty=10_000, price=54_000_015, price_dp=2),
        mark="precision",
    )
    script.add(CancelAll(account=61), Tick())


def _background(script: _Script, rng: random.Random, n: int) -> None:
    """Random XBT/USD flow between the background accounts: limit, market, IOC and
    post-only orders, stops, cancels of recent ids and ticks. It self-trades, queues
    orders at shared prices and fires triggers, which is why it only starts after the
    features. (Its fees are all exact: prices of 10 units times lots of 10,000.)"""
    for _ in range(n):
        account = rng.choice(BACKGROUND_ACCOUNTS)
        r = rng.random()
        side = rng.choice((BUY, SELL))
        qty = rng.randint(1, 40) * 10_000
        price = BACKGROUND_MID + rng.randint(-30, 30) * 10
        if r < 0.1:
            oid = rng.randint(max(1, script.adds - 60), max(1, script.adds))
            script.add(CancelOrder(account=account, order_id=oid))
        elif r < 0.15:
            script.add(Tick())
        elif r < 0.18:
            away = rng.randint(1, 30) * 10
            up = rng.random() < 0.5  # a trigger above the market, or below it
            script.add(
                AddOrder(
                    account=account,
                    pair=XBT,
                    side=side,
                    ordertype=STOP_LOSS if up == (side == BUY) else TAKE_PROFIT,
                    qty=qty,
                    price=BACKGROUND_MID + away if up else BACKGROUND_MID - away,
                )
            )
        else:
            script.add(
                AddOrder(
                    account=account,
                    pair=XBT,
                    side=side,
                    qty=qty,
                    price=price,
                    ordertype=rng.choice((LIMIT, LIMIT, LIMIT, MARKET)),
                    tif=IOC if rng.random() < 0.1 else "GTC",
                    post_only=rng.random() < 0.05,
                    stp=rng.choice((STP_CANCEL_NEWEST, STP_CANCEL_OLDEST, STP_CANCEL_BOTH)),
                )
            )


def _script() -> tuple[_Script, int]:
    """The whole scenario and the seq the snapshot is taken at."""
    rng = random.Random(20240601)
    script = _Script()
    _deposits(script)
    _warm_up(script, rng, 120)
    _features(script)
    _background(script, rng, 700)
    # an iceberg of 0.3 SOL showing 0.03, of which 0.02 is bought: 0.01 stays visible
    script.add(
        AddOrder(
            account=71,
            pair=SOL,
            side=SELL,
            ordertype=ICEBERG,
            qty=30_000_000,
            display_qty=3_000_000,
            price=15_000,
        ),
        AddOrder(account=72, pair=SOL, side=BUY, qty=2_000_000, price=15_000),
    )
    _background(script, rng, 800)
    snapshot_seq = script.last_seq
    _background(script, rng, 250)
    # 0.02 SOL against the slice of 0.01: two trades (the refill comes back to the front of
    # its otherwise empty level); an iceberg restored with a full slice gives one
    script.add(
        AddOrder(account=72, pair=SOL, side=BUY, qty=2_000_000, price=15_000), mark="after_restore"
    )
    _background(script, rng, 1300)
    return script, snapshot_seq


def _batches(cmds: list[Command], cut: int, rng: random.Random) -> list[list[Command]]:
    """Batches of 5 to 20 commands, one of them ending at seq `cut`."""
    out: list[list[Command]] = []
    i = 0
    while i < len(cmds):
        j = min(i + rng.randint(5, 20), len(cmds))
        if i < cut < j:  # cmds[i:j] holds seqs i+1 .. j
            j = cut
        out.append(cmds[i:j])
        i = j
    return out


def write_production(data: DataDir) -> Production:
    """Journal the scenario into `data` (created if new) as the live sequencer does, with
    one snapshot at `snapshot_seq` (a batch boundary)."""
    data.create()
    script, snapshot_seq = _script()
    host = InProcessHost(data.config())
    journal = Journal(data.journal)
    store = SnapshotStore(data.snapshots)
    pending: list[list[Event]] = []
    for batch in _batches(script.cmds, snapshot_seq, random.Random(7)):
        journal.append(batch, journal.outputs_through + 1, pending)
        pending = host.apply(batch)
        if batch[-1].seq == snapshot_seq:
            store.write(snapshot_seq, host.snapshot())
    journal.append([], journal.outputs_through + 1, pending)
    journal.close()
    return Production(last_seq=script.last_seq, snapshot_seq=snapshot_seq, marks=script.marks)


def make_candidate(root: Path, mutant: Mutant | None) -> Path:
    """A checkout-like directory ``root/candidate`` holding ``src/cambio``: this repo's
    engine, with `mutant` applied if given. Returns the checkout."""
    checkout = root / "candidate"
    package = checkout / "src" / "cambio"
    shutil.copytree(
        Path(cambio.__file__).parent,
        package,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    if mutant is not None:
        target = package / mutant.path
        text = target.read_text("utf-8")
        count = text.count(mutant.old)
        assert count == 1, f"{mutant.name}: {mutant.old!r} occurs {count} times in {mutant.path}"
        target.write_text(text.replace(mutant.old, mutant.new), "utf-8")
    return checkout


def candidate_env(checkout: Path) -> dict[str, str]:
    """This process's environment with the checkout's ``src`` first on the import path (it
    comes before the venv's editable install of this repo)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(checkout / "src")
    return env


def candidate_host(checkout: Path, config_path: Path, snapshot: bytes | None) -> SubprocessHost:
    """The candidate engine of `checkout` in a child process, at genesis or restored from
    `snapshot`, for the markets in `config_path` (a data directory's ``markets``)."""
    return SubprocessHost(config_path, snapshot, python=sys.executable, env=candidate_env(checkout))
