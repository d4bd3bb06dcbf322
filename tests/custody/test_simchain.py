"""The simulated chain: addresses, deposits and confirmations, payouts idempotent by
withdrawal id across reopening (a restart), failing addresses, an empty hot wallet."""

from __future__ import annotations

from pathlib import Path

import pytest

from cambio.custody.adapter import BROADCAST, CONFIRMED, FAILED, CustodyError
from cambio.custody.simchain import SimChain

NETWORKS = {"XXBT": "Bitcoin", "XETH": "Ethereum"}


def chain(tmp_path: Path) -> SimChain:
    return SimChain(tmp_path / "simchain.sqlite", NETWORKS, block_s=0)


def test_addresses_look_like_their_network(tmp_path: Path) -> None:
    c = chain(tmp_path)
    assert c.new_address("XXBT", "account 1").startswith("bc1q")
    eth = c.new_address("XETH", "account 1")
    assert eth.startswith("0x") and len(eth) == 42


def test_deposits_gain_confirmations_block_by_block(tmp_path: Path) -> None:
    c = chain(tmp_path)
    address = c.new_address("XXBT", "account 1")
    txid = c.pay_in(address, 5_000)
    (tx,) = c.incoming(0)
    assert (tx.txid, tx.asset, tx.amount, tx.confirmations) == (txid, "XXBT", 5_000, 0)
    assert c.balance("XXBT") == 0  # unconfirmed money is not the wallet's yet
    c.mine()
    c.mine(2)
    (tx,) = c.incoming(0)
    assert tx.confirmations == 3 and c.balance("XXBT") == 5_000
    assert c.incoming(tx.seq) == []
    with pytest.raises(CustodyError, match="not one of the exchange's"):
        c.pay_in("bc1qnotours", 1)


def test_send_is_idempotent_by_withdrawal_id_even_after_a_restart(tmp_path: Path) -> None:
    c = chain(tmp_path)
    c.fund("XXBT", 10_000)
    c.mine()
    first = c.send("W1", "XXBT", "bc1qdest", 4_000)
    assert first.state == BROADCAST and first.confirmations == 0
    c.close()
    c = chain(tmp_path)  # the process died and came back
    again = c.send("W1", "XXBT", "bc1qdest", 4_000)
    assert again == first
    assert len(c.payouts()) == 1 and c.balance("XXBT") == 6_000
    c.mine()
    done = c.payout("W1")
    assert done is not None and (done.state, done.confirmations) == (CONFIRMED, 1)
    assert c.payout("W2") is None


def test_a_payout_to_a_failing_address_fails_and_never_confirms(tmp_path: Path) -> None:
    c = chain(tmp_path)
    c.fund("XXBT", 10_000)
    c.mine()
    c.fail_address("bc1qblocked", "address on a sanctions list")
    c.send("W1", "XXBT", "bc1qblocked", 3_000)
    assert c.balance("XXBT") == 7_000  # spent while in the mempool
    c.mine(3)
    p = c.payout("W1")
    assert p is not None and (p.state, p.reason) == (FAILED, "address on a sanctions list")
    assert c.balance("XXBT") == 10_000  # the dropped transaction gave it back


def test_the_hot_wallet_cannot_pay_what_it_does_not_hold(tmp_path: Path) -> None:
    c = chain(tmp_path)
    c.fund("XXBT", 1_000)
    with pytest.raises(CustodyError, match="too little"):
        c.send("W1", "XXBT", "bc1qdest", 500)  # the top-up is not confirmed yet
    assert c.payout("W1") is None  # nothing was sent: safe to retry
    c.mine()
    assert c.send("W1", "XXBT", "bc1qdest", 500).state == BROADCAST
