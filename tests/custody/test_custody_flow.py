"""Funding through custody on a real server (``serve --custody sim``) with krakenex:
a deposit credited once confirmed, a withdrawal sent, broadcast (Settled, no longer
cancellable) and confirmed (Success), a payout that fails and is returned, a halt that
holds what custody has not paid yet, and `cambio verify` reconciling ledger and chain."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from test_kraken_rest import Krakenex, admin
from test_server import cambio, drain, start, wait_for

from cambio.custody.backends import open_simchain
from cambio.custody.simchain import SimChain
from cambio.model.config import load_config

CONFIG = load_config()
EVERY = "query_funds,query_orders,trade,withdraw"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("custody") / "data"
    proc, info = start(data, "--custody", "sim", "--chain-block-s", "0", "--funding-poll",
                       "0.05")  # fmt: skip
    log = drain(proc)
    alice = admin(data, "account", "create", "alice", "--permissions", EVERY,
                  "--tier", "unlimited")  # fmt: skip
    k = Krakenex(key=alice["api_key"], secret=alice["api_secret"])
    k.uri = info["api_url"]
    chain = open_simchain(data, CONFIG, block_s=0)
    world = {"data": data, "proc": proc, "k": k, "chain": chain, "log": log, "alice": alice}
    try:
        yield world
    finally:
        chain.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def call(k: Krakenex, name: str, **params: Any) -> Any:
    return k.query_private(name, params)


def balance(k: Krakenex, asset: str) -> Decimal:
    return Decimal(call(k, "Balance")["result"].get(asset, "0"))


def units(asset: str, text: str) -> int:
    return int(Decimal(text) * 10 ** CONFIG.asset(asset).units)


def status_of(k: Krakenex, asset: str, refid: str) -> dict[str, Any]:
    (entry,) = [e for e in call(k, "WithdrawStatus", asset=asset)["result"] if e["refid"] == refid]
    return entry


def test_a_deposit_is_credited_once_it_has_its_confirmations(world: dict[str, Any]) -> None:
    k, chain = world["k"], world["chain"]
    (addr,) = call(k, "DepositAddresses", asset="XBT", method="Bitcoin")["result"]
    txid = chain.pay_in(addr["address"], units("XXBT", "0.75"))
    chain.mine(2)  # XBT needs 3 confirmations: seen, on its way, not credited

    def arriving() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = call(k, "DepositStatus", asset="XBT")["result"]
        return found

    wait_for(lambda: [d.get("confirmations") for d in arriving()] == [2], "the deposit seen")
    (seen,) = arriving()
    assert (seen["status"], seen["txid"], seen["amount"]) == ("Pending", txid, "0.7500000000")
    assert seen["confirmations_needed"] == 3
    assert balance(k, "XXBT") == 0
    chain.mine()
    wait_for(lambda: balance(k, "XXBT") == Decimal("0.75"), "the deposit credited", 10)
    (dep,) = call(k, "DepositStatus", asset="XBT")["result"]
    assert (dep["txid"], dep["refid"], dep["status"], dep["amount"]) == (
        txid,
        txid,
        "Success",
        "0.7500000000",
    )
    chain.mine(5)  # more confirmations never credit it again
    (dep,) = call(k, "DepositStatus", asset="XBT")["result"]
    assert balance(k, "XXBT") == Decimal("0.75")


def test_a_withdrawal_is_sent_broadcast_then_confirmed(world: dict[str, Any]) -> None:
    k, chain, data = world["k"], world["chain"], world["data"]
    dest = "bc1qdestinationaddressforalice0000000000"
    admin(data, "address", "add", "alice", "XBT", "ledger", dest)
    before = balance(k, "XXBT")
    refid = call(k, "Withdraw", asset="XBT", key="ledger", amount="0.25")["result"]["refid"]
    wait_for(lambda: status_of(k, "XBT", refid)["status"] == "Settled", "the broadcast", 10)
    entry = status_of(k, "XBT", refid)
    payout = chain.payout(refid)
    assert payout is not None and entry["txid"] == payout.txid
    assert (payout.address, payout.amount) == (dest, units("XXBT", "0.25"))
    # in custody's hands: its owner can no longer take it back
    refused = call(k, "WithdrawCancel", asset="XBT", refid=refid)
    assert refused["error"] == ["EFunding:Withdrawal already processing"]
    chain.mine()
    wait_for(lambda: status_of(k, "XBT", refid)["status"] == "Success", "the completion", 10)
    fee = Decimal(CONFIG.asset("XXBT").withdraw_fee).scaleb(-CONFIG.asset("XXBT").units)
    assert balance(k, "XXBT") == before - Decimal("0.25") - fee
    assert len([p for p in chain.payouts() if p.withdrawal_id == refid]) == 1


def test_a_failed_payout_is_returned_to_its_owner(world: dict[str, Any]) -> None:
    k, chain, data = world["k"], world["chain"], world["data"]
    blocked = "bc1qblockedaddress0000000000000000000000"
    admin(data, "address", "add", "alice", "XBT", "blocked", blocked)
    chain.fail_address(blocked, "rejected by the network")
    before = balance(k, "XXBT")
    refid = call(k, "Withdraw", asset="XBT", key="blocked", amount="0.1")["result"]["refid"]
    wait_for(lambda: status_of(k, "XBT", refid)["status"] == "Settled", "the broadcast", 10)
    chain.mine()
    wait_for(lambda: status_of(k, "XBT", refid)["status"] == "Failure", "the return", 10)
    assert status_of(k, "XBT", refid)["status-prop"] == "return"
    assert balance(k, "XXBT") == before


def test_a_halt_signs_nothing_new_and_resume_waits_for_withdrawals(
    world: dict[str, Any],
) -> None:
    k, chain, data = world["k"], world["chain"], world["data"]
    # ETH: credited off-chain by the operator, and the hot wallet is empty, so custody
    # cannot pay it yet: it waits, sent, retried every step
    admin(data, "account", "deposit", "alice", "ETH", "2")
    admin(data, "address", "add", "alice", "ETH", "hw", "0x" + "ab" * 20)
    refid = call(k, "Withdraw", asset="ETH", key="hw", amount="1")["result"]["refid"]
    wait_for(lambda: any("hot wallet holds too little" in line for line in world["log"]),
             "custody refusing for lack of funds", 10, world["log"])  # fmt: skip
    admin(data, "halt", "--reason", "engine upgrade")
    chain.fund("XETH", units("XETH", "5"))
    chain.mine()
    time.sleep(0.5)  # ten worker steps: none may pay while halted
    assert chain.payout(refid) is None
    admin(data, "resume", "--reason", "trading back")
    assert status_of(k, "ETH", refid)["status"] == "Pending"
    assert chain.payout(refid) is None  # withdrawals stay off until the operator says so
    admin(data, "funding", "set", "ETH", "--withdrawals", "on", "--reason", "withdrawals back")
    wait_for(lambda: chain.payout(refid) is not None, "the payout", 10)
    chain.mine()
    wait_for(lambda: status_of(k, "ETH", refid)["status"] == "Success", "the completion", 10)


def test_verify_reconciles_the_ledger_with_the_chain(world: dict[str, Any]) -> None:
    proc, data = world["proc"], world["data"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    out = cambio("verify", "--data", str(data))
    report = json.loads(out.stdout)
    assert out.returncode == 0 and report["ok"], report["problems"]
    custody = report["custody"]
    assert custody["deposits"] == 1 + 1  # alice's, and the ETH top-up
    assert custody["payouts"] == 3
    assert custody["per_asset"]["XXBT"]["credited_from_chain"] == "0.7500000000"
    assert custody["per_asset"]["XXBT"]["paid_out"] == "0.2500000000"
    assert custody["per_asset"]["XETH"]["paid_out"] == "1.0000000000"


def test_verify_finds_a_withdrawal_paid_and_returned(world: dict[str, Any]) -> None:
    data, chain = world["data"], world["chain"]
    if world["proc"].poll() is None:
        pytest.skip("runs after the server stopped (module order)")
    # the worst case, forged: custody confirms the payout that the ledger returned
    failed = [p for p in chain.payouts() if p.state == "failed"]
    assert len(failed) == 1
    forge = SimChain(data / "simchain.sqlite", {}, 0)
    forge._db.execute("UPDATE payouts SET state='confirmed', height=1 WHERE state='failed'")
    forge.close()
    report = json.loads(cambio("verify", "--data", str(data)).stdout)
    assert not report["ok"]
    assert any("AND returned" in p for p in report["problems"]), report["problems"]
