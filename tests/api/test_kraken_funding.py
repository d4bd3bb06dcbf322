"""Funding through Kraken's API with unmodified clients: deposit addresses, withdrawals to a
registered address (held, completed by the operator with a txid, or cancelled by their
owner), their status, and every refusal the reference lists, each changing nothing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import ccxt
import pytest
from test_kraken_rest import Krakenex, admin
from test_server import start

COLD = "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("funding") / "data"
    proc, info = start(data)
    try:
        every = "query_funds,query_orders,trade,withdraw"
        # unlimited: these tests call faster than Kraken's REST counter allows (test_limits)
        alice = admin(data, "account", "create", "alice", "--deposit", "XBT=1.5", "--deposit",
                      "USD=1000", "--permissions", every, "--tier", "unlimited")  # fmt: skip
        bob = admin(data, "account", "create", "bob", "--deposit", "XBT=1", "--permissions", every)
        no_withdraw = admin(data, "key", "create", "alice")
        added = admin(data, "address", "add", "alice", "XBT", "cold", COLD)
        assert added == {"account": alice["account"], "asset": "XXBT", "key": "cold",
                         "address": COLD}  # fmt: skip
        yield {"data": data, "info": info, "alice": alice, "bob": bob, "nw": no_withdraw}
    finally:
        proc.terminate()
        proc.wait(30)


def kx(bank: dict[str, Any], who: str) -> Krakenex:
    k = Krakenex(key=bank[who]["api_key"], secret=bank[who]["api_secret"])
    k.uri = bank["info"]["api_url"]
    return k


def call(k: Krakenex, name: str, **params: Any) -> Any:
    return k.query_private(name, params)


def ccxt_for(bank: dict[str, Any], who: str) -> Any:
    ex = ccxt.kraken({"apiKey": bank[who]["api_key"], "secret": bank[who]["api_secret"]})
    ex.urls["api"] = {k: bank["info"]["api_url"] for k in ("public", "private")}
    ex.enableRateLimit = False
    return ex


def xbt(k: Krakenex) -> str:
    return str(call(k, "Balance")["result"]["XXBT"])


def test_deposit_methods_and_addresses(bank: dict[str, Any]) -> None:
    alice = kx(bank, "alice")
    (method,) = call(alice, "DepositMethods", asset="XBT")["result"]
    assert method["method"] == "Bitcoin" and method["gen-address"] is True
    assert method["limit"] is False
    first = call(alice, "DepositAddresses", asset="XBT", method="Bitcoin")["result"]
    assert len(first) == 1 and first[0]["address"].startswith("bc1q") and first[0]["new"]
    again = call(alice, "DepositAddresses", asset="XXBT", method="Bitcoin")["result"]
    assert [a["address"] for a in again] == [first[0]["address"]] and "new" not in again[0]
    fresh = call(alice, "DepositAddresses", asset="XBT", method="Bitcoin", new="true")["result"]
    assert len(fresh) == 2 and fresh[0]["new"] and fresh[1]["address"] == first[0]["address"]
    # ccxt's fetch_deposit_address sends its hard-coded method name for BTC
    assert ccxt_for(bank, "alice").fetch_deposit_address("BTC")["address"] == fresh[0]["address"]
    eth = call(alice, "DepositAddresses", asset="ETH", method="Ether (Hex)")["result"]
    assert eth[0]["address"].startswith("0x") and len(eth[0]["address"]) == 42
    bob = call(kx(bank, "bob"), "DepositAddresses", asset="XBT", method="Bitcoin")["result"]
    assert bob[0]["address"] not in {a["address"] for a in fresh}
    assert call(alice, "DepositAddresses", asset="USD", method="x")["error"] == [
        "EFunding:No funding method"
    ]
    assert call(alice, "DepositMethods", asset="NOPE")["error"] == ["EFunding:Unknown asset"]


def test_deposits_show_in_deposit_status(bank: dict[str, Any]) -> None:
    admin(bank["data"], "account", "deposit", "alice", "XBT", "0.25")
    deposits = ccxt_for(bank, "alice").fetch_deposits("BTC")
    amounts = sorted(d["amount"] for d in deposits)
    assert amounts == [0.25, 1.5]
    assert {d["status"] for d in deposits} == {"ok"} and {d["type"] for d in deposits} == {
        "deposit"
    }
    raw = call(kx(bank, "alice"), "DepositStatus", asset="XBT")["result"]
    assert (raw[0]["amount"], raw[0]["status"], raw[0]["method"]) == (
        "0.2500000000", "Success", "Bitcoin",
    )  # fmt: skip


def test_a_withdrawal_is_held_then_completed_by_the_operator(bank: dict[str, Any]) -> None:
    alice, ex = kx(bank, "alice"), ccxt_for(bank, "alice")
    before = call(alice, "BalanceEx")["result"]["XXBT"]
    info = call(alice, "WithdrawInfo", asset="XBT", key="cold", amount="0.1")["result"]
    assert info["method"] == "Bitcoin" and info["fee"] == "0.0001500000"
    assert info["amount"] == "0.1000000000"

    sent = ex.withdraw("BTC", 0.1, COLD, params={"key": "cold"})
    refid = sent["id"]
    assert refid.startswith("F") and len(refid) == 30
    # Balance is net of the pending withdrawal and its fee
    after = call(alice, "BalanceEx")["result"]["XXBT"]
    assert float(before["balance"]) - float(after["balance"]) == pytest.approx(0.10015)
    (pending,) = [w for w in ex.fetch_withdrawals("BTC") if w["id"] == refid]
    assert (pending["status"], pending["amount"], pending["address"]) == ("pending", 0.1, COLD)
    assert pending["fee"]["cost"] == 0.00015

    listed = admin(bank["data"], "withdrawal", "list")["withdrawals"]
    assert [(w["refid"], w["key"], w["address"]) for w in listed] == [(refid, "cold", COLD)]
    admin(bank["data"], "withdrawal", "complete", refid, "--txid", "f00dbabe")
    (done,) = [w for w in ex.fetch_withdrawals("BTC") if w["id"] == refid]
    assert (done["status"], done["txid"]) == ("ok", "f00dbabe")
    assert call(alice, "BalanceEx")["result"]["XXBT"] == after
    assert admin(bank["data"], "withdrawal", "list")["withdrawals"] == []
    ledger = call(alice, "Ledgers", type="withdrawal")["result"]["ledger"]
    (entry,) = ledger.values()
    assert (entry["amount"], entry["fee"], entry["refid"]) == (
        "-0.1000000000", "0.0001500000", refid,
    )  # fmt: skip


def test_an_owner_cancels_a_pending_withdrawal(bank: dict[str, Any]) -> None:
    alice, bob = kx(bank, "alice"), kx(bank, "bob")
    before = xbt(alice)
    refid = call(alice, "Withdraw", asset="XBT", key="cold", amount="0.2")["result"]["refid"]
    assert xbt(alice) != before
    assert call(bob, "WithdrawCancel", asset="XBT", refid=refid)["error"] == [
        "EFunding:Unknown reference id"
    ]  # someone else's
    assert call(alice, "WithdrawCancel", asset="XBT", refid=refid) == {"error": [], "result": True}
    assert xbt(alice) == before
    status = call(alice, "WithdrawStatus", asset="XBT")["result"]
    mine = next(w for w in status if w["refid"] == refid)
    assert (mine["status"], mine["status-prop"], mine["key"]) == ("Failure", "canceled", "cold")
    assert call(alice, "WithdrawCancel", asset="XBT", refid=refid)["error"] == [
        "EFunding:Unknown reference id"
    ]


def test_refused_withdrawals_change_nothing(bank: dict[str, Any]) -> None:
    alice = kx(bank, "alice")
    before = (xbt(alice), len(call(alice, "WithdrawStatus")["result"]))
    ok = {"asset": "XBT", "key": "cold", "amount": "0.1"}
    refusals = {
        "EFunding:Unknown withdraw key": {**ok, "key": "hot"},
        "EFunding:Invalid withdrawal address": {**ok, "address": "bc1qsomewhereelse"},
        "EFunding:Max fee exceeded": {**ok, "max_fee": "0.0001"},
        "EFunding:Invalid amount": {**ok, "amount": "0.0001"},  # below the minimum
        "EOrder:Insufficient funds": {**ok, "amount": "100"},
        "EFunding:Unknown asset": {**ok, "asset": "NOPE"},
    }
    for expected, params in refusals.items():
        assert call(alice, "Withdraw", **params)["error"] == [expected], params
    assert call(alice, "Withdraw", **{**ok, "amount": "0.1x"})["error"] == [
        "EFunding:Invalid amount"
    ]
    assert call(kx(bank, "nw"), "Withdraw", **ok)["error"] == ["EGeneral:Permission denied"]
    assert call(kx(bank, "bob"), "Withdraw", **ok)["error"] == ["EFunding:Unknown withdraw key"]
    assert (xbt(alice), len(call(alice, "WithdrawStatus")["result"])) == before


def test_withdraw_methods_addresses_and_cursor_paging(bank: dict[str, Any]) -> None:
    alice = kx(bank, "alice")
    methods = call(alice, "WithdrawMethods", asset="XBT")["result"]
    assert methods == [{"asset": "XXBT", "method": "Bitcoin", "network": "Bitcoin",
                        "minimum": "0.0005000000", "fee": "0.0001500000"}]  # fmt: skip
    (addr,) = call(alice, "WithdrawAddresses", asset="XBT")["result"]
    assert (addr["address"], addr["key"], addr["verified"]) == (COLD, "cold", True)
    for _ in range(3):
        call(alice, "Withdraw", asset="XBT", key="cold", amount="0.001")
    seen: list[str] = []
    cursor: Any = "true"
    while cursor:
        page = call(alice, "WithdrawStatus", asset="XBT", cursor=cursor, limit=2)["result"]
        assert len(page["withdrawals"]) <= 2
        seen += [w["refid"] for w in page["withdrawals"]]
        cursor = page["next_cursor"]
    everything = [w["refid"] for w in call(alice, "WithdrawStatus", asset="XBT")["result"]]
    assert seen == everything and len(set(seen)) == len(seen) >= 5


def test_the_operator_is_refused_what_cannot_be_settled(bank: dict[str, Any]) -> None:
    def refused(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "cambio", "admin", "--data",
                              str(bank["data"]), *args], capture_output=True, text=True,
                             timeout=60)  # fmt: skip
        assert out.returncode != 0 and out.stdout == ""
        return out.stderr

    alice = kx(bank, "alice")
    before = (xbt(alice), call(alice, "WithdrawStatus")["result"])
    assert "withdrawal refused: EFunding:Unknown reference id" in refused(
        "withdrawal", "complete", "Fnope-nope", "--txid", "x"
    )
    assert "withdrawal refused: EFunding:Unknown reference id" in refused(
        "withdrawal", "return", "Fnope-nope"
    )
    assert "unknown asset" in refused("address", "add", "alice", "NOPE", "k", "addr")
    assert "already has" in refused("address", "add", "alice", "XBT", "cold", "elsewhere")
    assert (xbt(alice), call(alice, "WithdrawStatus")["result"]) == before
    assert admin(bank["data"], "account", "tier", "bob", "starter") == {
        "account": bank["bob"]["account"], "tier": "starter",
    }  # fmt: skip
    assert "'platinum' is not one of" in refused("account", "tier", "bob", "platinum")
