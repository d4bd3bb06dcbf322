"""Monitors: each breach is provoked (a forced crossed book and a forced negative balance
in an engine that lies, a price jump in a real one) and the affected market drops to
cancel_only with an alert an operator can act on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_kraken_rest import Krakenex, admin
from test_server import drain, start

from cambio.model.commands import AddOrder, Command, Halt, SetMarketMode
from cambio.model.config import load_config
from cambio.model.events import Event, MarketModeChanged, OrderAccepted, Trade
from cambio.ops.monitor import Monitor

CONFIG = load_config()
XBT = CONFIG.pair("XXBTZUSD")


class LyingHost:
    """An engine host that answers what the test says: a crossed book, a debt."""

    def __init__(self) -> None:
        self.touch: dict[str, list[int]] = {}
        self.balances: dict[int, dict[str, list[int]]] = {}

    def query(self, name: str, *args: Any) -> Any:
        if name == "touch":
            return self.touch.get(args[0], [0, 0])
        assert name == "balances"
        return self.balances.get(args[0], {})


class Sink:
    def __init__(self) -> None:
        self.sent: list[Command] = []

    def submit_nowait(self, cmd: Command) -> None:
        self.sent.append(cmd)


class Service:
    def __init__(self) -> None:
        self.host, self.sequencer, self.config = LyingHost(), Sink(), CONFIG


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


# ---------------------------------------------------------------------- on a real server
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data: Path = tmp_path_factory.mktemp("monitor") / "data"
    proc, info = start(data, "--price-band", "5")
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
    (alert,) = reply["result"]["alerts"]
    assert alert["kind"] == "price_band" and alert["pairs"] == ["XXBTZUSD"]
    assert "is 12.0% from 50000.0" in alert["text"]
    eth = server["bo"].query_private("AddOrder", {"pair": "ETHUSD", "type": "buy",
        "ordertype": "limit", "volume": "0.1", "price": "1000"})  # fmt: skip
    assert eth["error"] == []  # only the market in trouble stops
    admin(server["data"], "mode", "set", "online", "--pair", "XBTUSD", "--reason", "checked")
    assert cross(server, "56000") == []
