"""The seed's weekend, rehearsed on a demo exchange from the operator's CLI only (the
runbook's "Rehearse the weekend" section, step by step):

halt for the engine upgrade (orders, balances and a withdrawal custody has not paid yet
kept exactly), trading back first in cancel_only then online on the server's own Ticks,
withdrawals later and only when turned on, spot fees waived until month end (margin
excluded), the waiver's worth computed per account, and `cambio verify` proving funds
safe and reconciled with custody at the end."""

from __future__ import annotations

import json
import signal
import time
from decimal import Decimal
from typing import Any

import pytest
from test_kraken_rest import Krakenex, admin
from test_server import cambio, drain, start, wait_for

from cambio.custody.backends import open_simchain
from cambio.model.config import load_config

CONFIG = load_config()


def call(k: Krakenex, method: str, **params: Any) -> dict[str, Any]:
    public = method in ("SystemStatus", "Ticker")
    reply: dict[str, Any] = (k.query_public if public else k.query_private)(method, params)
    return reply


def status(k: Krakenex) -> str:
    return str(call(k, "SystemStatus")["result"]["status"])


def test_the_whole_weekend_from_the_cli(tmp_path_factory: pytest.TempPathFactory) -> None:
    data = tmp_path_factory.mktemp("weekend") / "data"
    big = Decimal(0)
    proc, info = start(data, "--demo", "--chain-block-s", "0.2", "--tick-interval", "0.1",
                       "--funding-poll", "0.1")  # fmt: skip
    log = drain(proc)
    try:
        chain = open_simchain(data, CONFIG, block_s=0)
        eth = CONFIG.asset("XETH")
        wait_for(lambda: chain.balance("XETH") > 0, "the demo's hot wallet", 10, log)
        # more than the hot wallet holds (it backs only the demo's own funds), so custody
        # cannot pay carol's withdrawal before the halt: it waits, sent but unpaid
        big = Decimal(chain.balance("XETH")).scaleb(-eth.units).quantize(Decimal(1)) + 10
        carol = admin(data, "account", "create", "carol", "--deposit", "USD=50000",
                      "--deposit", f"ETH={2 * big}", "--permissions",
                      "query_funds,query_orders,trade,withdraw", "--tier", "unlimited")  # fmt: skip
        k = Krakenex(key=carol["api_key"], secret=carol["api_secret"])
        k.uri = info["api_url"]
        admin(data, "address", "add", "carol", "ETH", "hw", "0x" + "cd" * 20)
        wait_for(lambda: bool(call(k, "Ticker", pair="XBTUSD")["result"]), "demo trading")
        # Friday evening: a resting order, and the withdrawal
        resting = call(k, "AddOrder", pair="XBTUSD", type="buy", ordertype="limit",
                       volume="0.01", price="1000")["result"]["txid"][0]  # fmt: skip
        refid = call(k, "Withdraw", asset="ETH", key="hw", amount=str(big))["result"]["refid"]
        wait_for(lambda: any("hot wallet holds too little XETH" in line for line in log),
                 "custody short of ETH", 10, log)  # fmt: skip

        # 1. halt: one command, every market to maintenance, withdrawals off
        admin(data, "halt", "--reason", "engine upgrade: trading and withdrawals paused")
        assert status(k) == "maintenance"
        before = (call(k, "OpenOrders")["result"], call(k, "BalanceEx")["result"])
        chain = open_simchain(data, CONFIG, block_s=0)
        chain.fund("XETH", int(big.scaleb(eth.units)))  # the treasury tops up
        time.sleep(1)  # ten worker steps: a halt signs nothing new
        assert chain.payout(refid) is None
        assert (call(k, "OpenOrders")["result"], call(k, "BalanceEx")["result"]) == before
        assert resting in before[0]["open"]

        # 2. trading back first: cancel_only, then post_only, then online; withdrawals not
        admin(data, "resume", "--staged", "--cancel-only-for", "1", "--post-only-for", "1",
              "--reason", "upgrade verified: trading resumes, withdrawals later")  # fmt: skip
        assert status(k) == "cancel_only"
        refused = call(k, "AddOrder", pair="XBTUSD", type="buy", ordertype="limit",
                       volume="0.01", price="1000")  # fmt: skip
        assert refused["error"] == ["EService:Market in cancel_only mode"]
        seen: list[str] = []
        wait_for(lambda: seen.append(status(k)) or seen[-1] == "online", "online", 15,
                 [*log, f"statuses seen: {sorted(set(seen))}"])  # fmt: skip
        time.sleep(0.5)
        assert chain.payout(refid) is None  # still no withdrawals

        # 3. the waiver: spot fees to zero until month end, margin excluded
        promo = admin(data, "promo", "create", "--maker", "0", "--taker", "0", "--until",
                      "month-end", "--scope", "spot", "--reason",
                      "fees waived until month end: sorry for the weekend")  # fmt: skip
        assert promo["scope"] == "spot" and promo["state"] == "active"
        ask = Decimal(call(k, "Ticker", pair="XBTUSD")["result"]["XXBTZUSD"]["a"][0])
        bought = call(k, "AddOrder", pair="XBTUSD", type="buy", ordertype="limit",
                      volume="0.05", price=str(ask * 2), timeinforce="IOC")  # fmt: skip
        assert bought["error"] == []

        def carol_trades() -> list[dict[str, Any]]:
            return list(call(k, "TradesHistory")["result"]["trades"].values())

        wait_for(lambda: bool(carol_trades()), "carol's trade", 10, log)
        assert all(Decimal(t["fee"]) == 0 for t in carol_trades())

        # 4. withdrawals later, when the operator says so
        admin(data, "funding", "set", "all", "--withdrawals", "on", "--reason",
              "withdrawals resume; all funds were safe throughout")  # fmt: skip
        wait_for(lambda: chain.payout(refid) is not None, "the withdrawal paid", 10, log)

        def withdrawal() -> str:
            (w,) = [w for w in call(k, "WithdrawStatus", asset="ETH")["result"]
                    if w["refid"] == refid]  # fmt: skip
            return str(w["status"])

        wait_for(lambda: withdrawal() == "Success", "the withdrawal confirmed", 10, log)

        # 5. what the waiver was worth, per account (nobody is paid by a dry run)
        worth = admin(data, "compensate", "--basis", "waived", "--promotion",
                      promo["promo_id"])  # fmt: skip
        (mine,) = [a for a in worth["per_account"] if a["account"] == carol["account"]]
        assert mine["trades"] >= 1 and Decimal(mine["amounts"]["ZUSD"]["amount"]) > 0
        assert not worth["problems"]
        chain.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)

    # 6. funds verifiably safe: replay, invariants, reconciliation with custody
    report = json.loads(cambio("verify", "--data", str(data)).stdout)
    assert report["ok"], report["problems"]
    assert Decimal(report["custody"]["per_asset"]["XETH"]["paid_out"]) == big
