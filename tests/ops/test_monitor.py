"""Monitors: each breach is provoked (a forced crossed book and a forced negative balance
in an engine that lies, funds minted in a real engine's state, a price jump and a
volatile market) and the affected market drops to cancel_only (or the exchange halts)
with an alert an operator can act on; a lag raises one warning per episode; an engine
fault during an upgrade's verification rolls the cutover back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_kraken_rest import Krakenex, admin
from test_server import drain, start

from cambio.model.commands import (
    BUY,
    SELL,
    AddOrder,
    Command,
    CompleteWithdrawal,
    Deposit,
    Halt,
    RequestWithdrawal,
    Resume,
    SetMarketMode,
    Transfer,
)
from cambio.model.config import load_config
from cambio.model.events import (
    Event,
    MarketModeChanged,
    OrderAccepted,
    Trade,
    WithdrawalCompleted,
)
from cambio.ops.monitor import Alert, Monitor
from cambio.runtime.host import InProcessHost
from cambio.upgrade.manager import UpgradeManager

CONFIG = load_config()
XBT = CONFIG.pair("XXBTZUSD")
USD = CONFIG.asset("ZUSD")
S = 10**9  # ns in a second


class LyingHost:
    """An engine host that answers what the test says: a crossed book, a debt. Its
    totals are its balances', so conservation holds unless a test says otherwise."""

    def __init__(self) -> None:
        self.touch: dict[str, list[int]] = {}
        self.balances: dict[int, dict[str, list[int]]] = {}

    def query(self, name: str, *args: Any) -> Any:
        if name == "touch":
            return self.touch.get(args[0], [0, 0])
        if name == "totals":
            supply = {spec.id: 0 for spec in CONFIG.assets}
            for held in self.balances.values():
                for asset, values in held.items():
                    supply[asset] += sum(values)
            accounts = [[a, {k: sum(v) for k, v in b.items()}] for a, b in self.balances.items()]
            return {"supply": supply, "accounts": accounts}
        assert name == "balances"
        return self.balances.get(args[0], {})


class Sink:
    def __init__(self) -> None:
        self.sent: list[Command] = []
        self.applied_seq = 0

    def submit_nowait(self, cmd: Command) -> None:
        self.sent.append(cmd)


class Service:
    def __init__(self) -> None:
        self.host, self.sequencer, self.config = LyingHost(), Sink(), CONFIG
        self.lag = {"journal": 0, "engine": 0, "readmodels": 0}

    def lags(self) -> dict[str, int]:
        return dict(self.lag)


class Engine(Service):
    """A real engine in this process, fed batch by batch by the test; what the monitor
    sends is kept in the sink, not applied."""

    def __init__(self) -> None:
        super().__init__()
        self.host: InProcessHost = InProcessHost(CONFIG)  # type: ignore[assignment]
        self.seq = 0

    def run(self, *cmds: Command, ts: int = 10**18) -> tuple[list[Command], list[list[Event]]]:
        for cmd in cmds:
            self.seq += 1
            cmd.seq, cmd.ts = self.seq, ts
        self.sequencer.applied_seq = self.seq
        return list(cmds), self.host.apply(list(cmds))


def batch(*events: Event, ts: int = 10**18) -> tuple[list[Command], list[list[Event]]]:
    cmd = AddOrder(account=1, pair=XBT.id, side=0, qty=1, seq=7, ts=ts)
    return [cmd], [list(events)]


def accepted(account: int = 1) -> OrderAccepted:
    return OrderAccepted(order_id=1, account=account, pair=XBT.index, side=0, ordertype="limit",
                         qty=1, price=1, price2=0, display_qty=0, tif="GTC", expire_ts=0,
                         post_only=False, fee_in_base=False, stp="cancel-newest", userref=None,
                         cl_ord_id=None, status="open")  # fmt: skip


def trade(price: int) -> Trade:
    return Trade(trade_id=1, ledger_id=1, pair=XBT.index, price=price, qty=1, cost=price,
                 taker_side=0, maker_order=1, maker_account=2, taker_order=2, taker_account=3,
                 maker_fee=0, taker_fee=0, maker_fee_base=False, taker_fee_base=False)  # fmt: skip


def test_a_crossed_book_moves_its_market_to_cancel_only_once() -> None:
    service = Service()
    monitor = Monitor(service)  # type: ignore[arg-type]
    monitor.after_batch(*batch(accepted()))
    assert service.sequencer.sent == []  # a sound book says nothing
    service.host.touch[XBT.id] = [500010, 500000]
    monitor.after_batch(*batch(accepted()))
    (cmd,) = service.sequencer.sent
    assert isinstance(cmd, SetMarketMode) and (cmd.pair, cmd.mode) == (XBT.id, "cancel_only")
    assert cmd.reason == "monitor: XXBTZUSD: book crossed, best bid 50001.0 >= best ask 50000.0"
    (alert,) = monitor.report()["alerts"]
    assert (alert["kind"], alert["pairs"], alert["seq"]) == ("crossed_book", [XBT.id], 7)
    monitor.after_batch(*batch(accepted()))  # still crossed: alerted, not re-sent
    assert len(service.sequencer.sent) == 1 and monitor.trips == {"crossed_book": 2}
    # the operator reopens the market: the breaker is armed again
    monitor.after_batch(*batch(MarketModeChanged(pair=XBT.index, mode="online", reason="ok")))
    assert len(service.sequencer.sent) == 2


def test_a_negative_balance_is_caught_for_the_accounts_a_batch_touched() -> None:
    service = Service()
    monitor = Monitor(service)  # type: ignore[arg-type]
    service.host.balances[9] = {"ZUSD": [-1, 0, 0]}
    monitor.after_batch(*batch(accepted(account=1)))
    assert monitor.trips == {}  # account 9 was not in the batch
    monitor.after_batch(*batch(accepted(account=9)))
    (cmd,) = service.sequencer.sent
    assert cmd.reason.startswith("monitor: account 9: negative ZUSD balance")  # type: ignore[attr-defined]


def test_a_price_jump_within_the_window_trips_the_band_and_a_later_one_does_not() -> None:
    service = Service()
    monitor = Monitor(service, band_pct=10, window_s=60)  # type: ignore[arg-type]
    s = 10**9
    monitor.after_batch(*batch(trade(500000), ts=1000 * s))  # the reference
    monitor.after_batch(*batch(trade(545000), ts=1010 * s))  # +9 %: inside the band
    assert service.sequencer.sent == []
    monitor.after_batch(*batch(trade(560000), ts=1020 * s))  # +12 %
    (cmd,) = service.sequencer.sent
    assert "trade at 56000.0 is 12.0% from 50000.0 within 60 s (band 10%)" in cmd.reason  # type: ignore[attr-defined]
    other = Service()
    calm = Monitor(other, band_pct=10, window_s=60)  # type: ignore[arg-type]
    calm.after_batch(*batch(trade(500000), ts=1000 * s))
    calm.after_batch(*batch(trade(560000), ts=1061 * s))  # a new window: a new reference
    assert other.sequencer.sent == []


def test_the_halt_policy_halts_the_exchange() -> None:
    service = Service()
    monitor = Monitor(service, policy="halt")  # type: ignore[arg-type]
    service.host.touch[XBT.id] = [2, 1]
    monitor.after_batch(*batch(accepted()))
    (cmd,) = service.sequencer.sent
    assert isinstance(cmd, Halt) and "book crossed" in cmd.reason
    with pytest.raises(ValueError, match="policy"):
        Monitor(service, policy="panic")  # type: ignore[arg-type]


def trade_at(price: int, trade_id: int = 1) -> Trade:
    t = trade(price)
    t.trade_id = trade_id
    return t


def test_funds_are_conserved_through_deposits_fees_transfers_and_withdrawals() -> None:
    engine = Engine()
    monitor = Monitor(engine)  # type: ignore[arg-type]
    monitor.start()
    batches: list[list[Command]] = [
        [Deposit(account=1, asset="ZUSD", amount=10**16, ref="a"),
         Deposit(account=2, asset="XXBT", amount=10**14, ref="b")],
        [AddOrder(account=2, pair=XBT.id, side=SELL, qty=2_000_000, price=5_000_000),
         AddOrder(account=1, pair=XBT.id, side=BUY, qty=1_000_000, price=5_000_000)],
        [Transfer(src=1, dst=3, asset="ZUSD", amount=10**12)],
        [RequestWithdrawal(account=1, asset="ZUSD", amount=10**12, ref="w", fee=10**9)],
        [CompleteWithdrawal(ref="w")],
    ]  # fmt: skip
    events: list[Event] = []
    for cmds in batches:
        applied, results = engine.run(*cmds)
        monitor.after_batch(applied, results)  # each batch checked as it is applied
        events += [ev for evs in results for ev in evs]
    trades = [ev for ev in events if isinstance(ev, Trade)]
    assert trades and trades[0].taker_fee > 0  # the fee account was credited unnamed
    assert any(isinstance(ev, WithdrawalCompleted) and ev.fee for ev in events)
    assert monitor.trips == {} and engine.sequencer.sent == []
    assert monitor.report()["conservation"] is True


def test_minted_funds_halt_the_exchange_once_whatever_the_policy() -> None:
    engine = Engine()
    monitor = Monitor(engine, policy="cancel_only")  # type: ignore[arg-type]
    monitor.start()
    monitor.after_batch(*engine.run(Deposit(account=1, asset="ZUSD", amount=10**16, ref="a")))
    # the engine's state goes wrong where no event says so: 5 USD appear in account 1
    engine.host.engine.accounts[1].avail[USD.index] += 5 * 10**USD.units
    order = AddOrder(account=1, pair=XBT.id, side=BUY, qty=1_000_000, price=4_000_000)
    monitor.after_batch(*engine.run(order))  # touches account 1: the change shows
    (cmd,) = engine.sequencer.sent
    assert isinstance(cmd, Halt)
    assert cmd.reason == (
        "monitor: ZUSD not conserved: expected 0.0000000000 (the batch's deposits - "
        "withdrawals), found 5.0000000000 (the change in the holdings of the accounts it "
        "touched)"
    )
    (alert,) = monitor.report()["alerts"]
    assert (alert["kind"], alert["pairs"], alert["seq"]) == ("conservation", [], 2)
    # the holdings are taken as they are now: the next batch adds up again
    monitor.after_batch(*engine.run(Deposit(account=1, asset="ZUSD", amount=7, ref="c")))
    assert len(engine.sequencer.sent) == 1 and monitor.trips == {"conservation": 1}
    # a fresh monitor's full look at start sees the engine's supply does not match
    again = Monitor(engine)  # type: ignore[arg-type]
    again.start()
    assert again.trips == {"conservation": 1}
    halt = engine.sequencer.sent.pop()  # (the same sink: taken out again)
    assert isinstance(halt, Halt) and halt.reason == (
        "monitor: ZUSD not conserved: expected 1000000.0000000007 (the supply, deposits - "
        "withdrawals), found 1000005.0000000007 (held by all accounts)"
    )
    # a second breach while halted does not halt again; after a resume it does
    engine.host.engine.accounts[1].avail[USD.index] += 1
    monitor.after_batch(*engine.run(order))
    assert len(engine.sequencer.sent) == 1 and monitor.trips == {"conservation": 2}
    monitor.after_batch(*engine.run(Resume(reason="checked")))
    engine.host.engine.accounts[1].avail[USD.index] += 1
    monitor.after_batch(*engine.run(order))
    assert [type(c) for c in engine.sequencer.sent] == [Halt, Halt]


def test_a_market_ranging_too_far_in_small_steps_trips_the_volatility_breaker() -> None:
    # every step is inside the 10 % band of its own 60 s window; the 300 s range is 24 %
    steps = [(0, 500000), (30, 540000), (61, 540000), (90, 580000), (122, 580000),
             (150, 620000)]  # fmt: skip

    def feed(**settings: Any) -> Service:
        service = Service()
        monitor = Monitor(service, band_pct=10, window_s=60, **settings)  # type: ignore[arg-type]
        for i, (at, price) in enumerate(steps):
            monitor.after_batch(*batch(trade_at(price, i), ts=(1000 + at) * S))
        return service

    (cmd,) = feed(vol_pct=20, vol_window_s=300).sequencer.sent
    assert isinstance(cmd, SetMarketMode) and (cmd.pair, cmd.mode) == (XBT.id, "cancel_only")
    assert cmd.reason == ("monitor: XXBTZUSD: trades ranged from 50000.0 to 62000.0 (24.0%) "
                          "within 300 s (limit 20%)")  # fmt: skip
    # a shorter window has forgotten the low by then (540000 to 620000: 14.8 %)
    assert feed(vol_pct=20, vol_window_s=100).sequencer.sent == []
    assert feed(vol_pct=0, vol_window_s=300).sequencer.sent == []  # 0: off


def test_the_volatility_breaker_alerts_once_per_batch_and_rearms_with_a_fresh_window() -> None:
    service = Service()
    monitor = Monitor(service, band_pct=1000, vol_pct=20, vol_window_s=300)  # type: ignore[arg-type]
    monitor.after_batch(*batch(trade_at(500000, 1), ts=1000 * S))
    sweep = [trade_at(price, i) for i, price in enumerate(range(610000, 660000, 10000), 2)]
    monitor.after_batch(*batch(*sweep, ts=1001 * S))  # five trades beyond the range
    assert len(service.sequencer.sent) == 1 and monitor.trips == {"volatility": 1}
    reopen = MarketModeChanged(pair=XBT.index, mode="online", reason="checked")
    monitor.after_batch(*batch(reopen, ts=1002 * S))
    # the operator accepted the new level: the window starts again from the next trade
    monitor.after_batch(*batch(trade_at(650000, 9), ts=1003 * S))
    monitor.after_batch(*batch(trade_at(700000, 10), ts=1004 * S))  # +7.7 %: calm
    assert len(service.sequencer.sent) == 1
    monitor.after_batch(*batch(trade_at(800000, 11), ts=1005 * S))  # +23 %: trips again
    assert len(service.sequencer.sent) == 2


def test_a_lasting_lag_raises_one_warning_per_episode_and_changes_no_mode() -> None:
    service = Service()
    now = [0.0]
    monitor = Monitor(service, lag_commands=10_000, lag_s=5, clock=lambda: now[0])  # type: ignore[arg-type]
    service.lag["engine"] = 20_000
    monitor.check_lag()
    now[0] = 4.0
    monitor.check_lag()
    assert monitor.alerts == []  # not for long enough yet
    now[0] = 6.0
    monitor.after_batch(*batch(accepted()))  # checked after a batch too
    (alert,) = monitor.alerts
    assert (alert.kind, alert.pairs, alert.engine_fault) == ("lag", [], False)
    assert alert.text == "engine lag 20,000 commands for 6 s (alert above 10,000 for 5 s)"
    now[0] = 60.0
    monitor.check_lag()
    assert len(monitor.alerts) == 1  # the same episode
    service.lag["engine"] = 0
    monitor.check_lag()  # over
    service.lag["journal"] = 10_001
    now[0] = 61.0
    monitor.check_lag()
    now[0] = 67.0
    monitor.check_lag()
    assert [a.text.split(" lag")[0] for a in monitor.alerts] == ["engine", "journal"]
    assert service.sequencer.sent == []


def test_a_stuck_process_makes_no_batches_and_is_still_seen_lagging() -> None:
    service = Service()
    service.lag["readmodels"] = 50_000
    monitor = Monitor(service, lag_s=0.01)  # type: ignore[arg-type]

    async def watch() -> None:
        task = asyncio.create_task(monitor.watch(every_s=0.01))
        for _ in range(500):
            await asyncio.sleep(0.01)
            if monitor.alerts:
                break
        task.cancel()

    asyncio.run(watch())
    (alert,) = monitor.alerts
    assert alert.text.startswith("readmodels lag 50,000 commands for")


class Rollbacks:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    async def __call__(self, reason: str) -> dict[str, Any]:
        self.reasons.append(reason)
        await asyncio.sleep(0.01)
        return {}


def verifying(service: Service, policy: str = "rollback") -> tuple[UpgradeManager, Rollbacks]:
    manager = UpgradeManager(service, None, phase="verifying", policy=policy)  # type: ignore[arg-type]
    manager.shadow = object()  # type: ignore[assignment]  # the previous engine, shadowing
    rollbacks = Rollbacks()
    manager.roll_back = rollbacks  # type: ignore[method-assign]
    return manager, rollbacks


def test_an_engine_fault_while_a_cutover_is_verified_rolls_it_back_once() -> None:
    service = Service()
    monitor = Monitor(service)  # type: ignore[arg-type]
    manager, rollbacks = verifying(service)
    monitor.listeners.append(manager.on_breach)

    async def run() -> None:
        monitor.after_batch(*batch(trade_at(500000), ts=1000 * S))
        monitor.after_batch(*batch(trade_at(600000), ts=1001 * S))  # a market event
        await asyncio.sleep(0.05)
        assert monitor.trips == {"price_band": 1} and rollbacks.reasons == []
        service.host.touch[XBT.id] = [500010, 500000]
        monitor.after_batch(*batch(accepted()))
        monitor.after_batch(*batch(accepted()))  # still crossed: one rollback
        await asyncio.sleep(0.05)

    asyncio.run(run())
    assert rollbacks.reasons == [
        "monitor breach after the cutover: crossed_book: XXBTZUSD: book crossed, best bid "
        "50001.0 >= best ask 50000.0"
    ]


@pytest.mark.parametrize("phase, policy", [("completed", "rollback"), ("verifying", "cancel_only")])
def test_an_engine_fault_outside_verification_or_by_policy_does_not_roll_back(
    phase: str, policy: str
) -> None:
    service = Service()
    manager, rollbacks = verifying(service, policy)
    manager.phase = phase

    async def run() -> None:
        manager.on_breach(Alert(0.0, 1, "negative_balance", [], "account 9: negative ZUSD"))
        await asyncio.sleep(0.02)

    asyncio.run(run())
    assert rollbacks.reasons == []


# ---------------------------------------------------------------------- on a real server
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data: Path = tmp_path_factory.mktemp("monitor") / "data"
    proc, info = start(data, "--price-band", "5", "--vol-pct", "30", "--vol-window", "120")
    drain(proc)
    try:
        keys = {}
        for who in ("ann", "bo"):
            made = admin(data, "account", "create", who, "--deposit", "USD=1000000",
                         "--deposit", "XBT=10", "--tier", "unlimited")  # fmt: skip
            k = Krakenex(key=made["api_key"], secret=made["api_secret"])
            k.uri = info["api_url"]
            keys[who] = k
        yield {"data": data, "info": info, **keys}
    finally:
        proc.terminate()
        proc.wait(30)


def cross(server: dict[str, Any], price: str) -> list[str]:
    sell = server["ann"].query_private("AddOrder", {"pair": "XBTUSD", "type": "sell",
        "ordertype": "limit", "volume": "0.01", "price": price})  # fmt: skip
    assert sell["error"] == [], sell
    buy = server["bo"].query_private("AddOrder", {"pair": "XBTUSD", "type": "buy",
        "ordertype": "limit", "volume": "0.01", "price": price})  # fmt: skip
    errors: list[str] = buy["error"]
    return errors


def test_a_price_jump_on_a_real_server_stops_the_market(server: dict[str, Any]) -> None:
    assert cross(server, "50000") == []
    assert cross(server, "56000") == []  # +12 % against a 5 % band: trips after this batch
    refused = server["bo"].query_private("AddOrder", {"pair": "XBTUSD", "type": "buy",
        "ordertype": "limit", "volume": "0.01", "price": "50000"})  # fmt: skip
    assert refused["error"] == ["EService:Market in cancel_only mode"]
    token = (server["data"] / "admin.token").read_text().strip()
    reply = httpx.get(server["info"]["admin_url"] + "/v1/alerts",
                      headers={"Authorization": f"Bearer {token}"}, timeout=30).json()  # fmt: skip
    settings = {k: reply["result"][k] for k in ("band_pct", "vol_pct", "vol_window_s")}
    assert settings == {"band_pct": 5, "vol_pct": 30, "vol_window_s": 120}
    assert reply["result"]["conservation"] is True  # the full look was taken at start
    (alert,) = reply["result"]["alerts"]  # funds conserved all along, 12 % < 30 %
    assert alert["kind"] == "price_band" and alert["pairs"] == ["XXBTZUSD"]
    assert "is 12.0% from 50000.0" in alert["text"]
    eth = server["bo"].query_private("AddOrder", {"pair": "ETHUSD", "type": "buy",
        "ordertype": "limit", "volume": "0.1", "price": "1000"})  # fmt: skip
    assert eth["error"] == []  # only the market in trouble stops
    admin(server["data"], "mode", "set", "online", "--pair", "XBTUSD", "--reason", "checked")
    assert cross(server, "56000") == []
