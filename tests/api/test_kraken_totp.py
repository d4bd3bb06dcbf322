"""Two-factor funding through Kraken's API with unmodified clients: TOTP codes (in the
``otp`` parameter, where krakenex and Kraken's other clients put it) for Withdraw and for
adding and removing withdrawal addresses, the operator's commands, and the policy of
``serve --require-2fa-withdrawals``. Every refusal changes nothing: not the balance, not
the journal, not the address list.

A code is good once and the server accepts the step before and after the current one,
so an account can use two codes in a row at once (this step's, then the next's) and a
third only after the clock moves on: each test uses accounts of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from unittest.mock import MagicMock

import httpx
import pyotp
import pytest
from starlette.applications import Starlette
from test_kraken_rest import Krakenex, admin
from test_server import cambio, start

from cambio.api.admin import accounts as admin_accounts
from cambio.api.admin.context import AdminContext
from cambio.api.keys import KeyStore
from cambio.api.kraken.errors import KrakenError
from cambio.api.kraken.funding import FundingApi
from cambio.model.commands import RequestWithdrawal
from cambio.model.config import load_config

COLD = "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"
HOT = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
EVERY = "query_funds,query_orders,trade,withdraw"
INVALID_OTP = ["EAPI:Invalid OTP"]
NOT_ENROLLED = ["EGeneral:Permission denied:two-factor authentication required"]


def serve_knows_the_policy() -> bool:
    from cambio.cli import serve

    return any(p.name == "require_2fa_withdrawals" for p in serve.params)


def codes(secret: str) -> list[str]:
    """Two codes the server takes one after the other: this step's, then the next's (early,
    within the window); even if the step turns meanwhile, both stay in the window."""
    totp, now = pyotp.TOTP(secret), time.time()
    return [totp.at(now), totp.at(now + 30)]


def wrong(secret: str) -> str:
    totp, now = pyotp.TOTP(secret), time.time()
    near = {totp.at(now + d * 30) for d in range(-3, 4)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in near)


class Bank:
    """One running server and the operator's view of it."""

    def __init__(self, data: Path, info: dict[str, Any]) -> None:
        self.data, self.info = data, info
        token = (data / "admin.token").read_text().strip()
        self.http = httpx.Client(
            base_url=info["admin_url"], headers={"Authorization": f"Bearer {token}"}
        )

    def journal_seq(self) -> int:
        seq: int = self.http.get("/v1/state").json()["result"]["journal_seq"]
        return seq

    def holder(self, name: str, totp: bool = True, **kx_keys: str) -> Holder:
        """A funded account with every permission, a registered XBT address ("cold",
        added before TOTP, which then needs no code) and, with `totp`, TOTP on."""
        made = admin(self.data, "account", "create", name, "--deposit", "XBT=1",
                     "--permissions", EVERY, "--tier", "unlimited")  # fmt: skip
        admin(self.data, "address", "add", name, "XBT", "cold", COLD)
        secret = admin(self.data, "account", "totp", "enable", name)["secret"] if totp else ""
        return Holder(self, name, made["api_key"], made["api_secret"], secret)


class Holder:
    def __init__(self, bank: Bank, name: str, key: str, secret: str, totp: str) -> None:
        self.bank, self.name, self.totp = bank, name, totp
        self.kx = Krakenex(key=key, secret=secret)
        self.kx.uri = bank.info["api_url"]

    def call(self, method: str, **params: Any) -> Any:
        return self.kx.query_private(method, params)

    def xbt(self) -> str:
        return str(self.call("Balance")["result"]["XXBT"])

    def addresses(self) -> list[tuple[str, str]]:
        return [(a["key"], a["address"]) for a in self.call("WithdrawAddresses")["result"]]

    def state(self) -> tuple[str, int, list[tuple[str, str]], int]:
        """What a refusal must leave as it was."""
        withdrawals = len(self.call("WithdrawStatus")["result"])
        return self.xbt(), withdrawals, self.addresses(), self.bank.journal_seq()


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bank]:
    data = tmp_path_factory.mktemp("totp") / "data"
    proc, info = start(data, "--tick-interval", "0")  # no ticks: the journal moves for us only
    try:
        yield Bank(data, info)
    finally:
        proc.terminate()
        proc.wait(30)


WITHDRAW = {"asset": "XBT", "key": "cold", "amount": "0.1"}


def test_withdraw_needs_the_current_code_once(bank: Bank) -> None:
    alice = bank.holder("alice")
    before = alice.state()
    assert alice.call("Withdraw", **WITHDRAW)["error"] == INVALID_OTP
    assert alice.call("Withdraw", **WITHDRAW, otp="")["error"] == INVALID_OTP
    assert alice.call("Withdraw", **WITHDRAW, otp=wrong(alice.totp))["error"] == INVALID_OTP
    assert alice.state() == before
    # read-only calls need no code
    info = alice.call("WithdrawInfo", asset="XBT", key="cold", amount="0.1")
    assert info["error"] == [] and info["result"]["amount"] == "0.1000000000"

    code, _ = codes(alice.totp)
    # refused for another reason: the code is not used up
    assert alice.call("Withdraw", **{**WITHDRAW, "amount": "0.0001"}, otp=code)["error"] == [
        "EFunding:Invalid amount"
    ]
    sent = alice.call("Withdraw", **WITHDRAW, otp=code)
    assert sent["error"] == [] and sent["result"]["refid"].startswith("F")
    after = alice.xbt()
    assert float(before[0]) - float(after) == pytest.approx(0.10015)  # amount and fee held
    seq = bank.journal_seq()
    assert alice.call("Withdraw", **WITHDRAW, otp=code)["error"] == INVALID_OTP  # replayed
    assert (alice.xbt(), bank.journal_seq()) == (after, seq)
    (pending,) = alice.call("WithdrawStatus", asset="XBT")["result"]
    assert (pending["refid"], pending["status"]) == (sent["result"]["refid"], "Pending")


def test_add_withdraw_address_needs_the_code(bank: Bank) -> None:
    bob = bank.holder("bob")
    first, second = codes(bob.totp)
    add = {"asset": "XBT", "key": "hot", "address": HOT}
    before = bob.state()
    assert bob.call("AddWithdrawAddress", **add)["error"] == INVALID_OTP
    assert bob.call("AddWithdrawAddress", **add, otp=wrong(bob.totp))["error"] == INVALID_OTP
    refusals = {
        "EGeneral:Invalid arguments:address": {**add, "address": "bc1q ar0s"},
        "EGeneral:Invalid arguments:key": {**add, "key": "cold"},  # taken
        "EFunding:Unknown asset": {**add, "asset": "NOPE"},
    }
    for expected, params in refusals.items():  # each before the code is looked at
        assert bob.call("AddWithdrawAddress", **params, otp=first)["error"] == [expected]
    too_long = {**add, "address": "x" * 129}
    assert bob.call("AddWithdrawAddress", **too_long, otp=first)["error"] == [
        "EGeneral:Invalid arguments:address"
    ]
    assert bob.state() == before

    added = bob.call("AddWithdrawAddress", **add, otp=first)
    assert added == {"error": [], "result": {"address": HOT, "asset": "XXBT",
                     "method": "Bitcoin", "key": "hot", "verified": True}}  # fmt: skip
    assert bob.addresses() == [("cold", COLD), ("hot", HOT)]
    again = {**add, "key": "hot2"}
    assert bob.call("AddWithdrawAddress", **again, otp=first)["error"] == INVALID_OTP  # used
    sent = bob.call("Withdraw", **{**WITHDRAW, "key": "hot"}, otp=second)
    assert sent["error"] == []
    (w,) = bob.call("WithdrawStatus", asset="XBT")["result"]
    assert (w["key"], w["info"]) == ("hot", HOT)


def test_adding_addresses_needs_the_withdraw_permission(bank: Bank) -> None:
    bank.holder("carol", totp=False)
    reader = admin(bank.data, "key", "create", "carol")  # query_funds, query_orders, trade
    k = Krakenex(key=reader["api_key"], secret=reader["api_secret"])
    k.uri = bank.info["api_url"]
    for method, params in (("AddWithdrawAddress", {"key": "hot", "address": HOT}),
                           ("RemoveWithdrawAddress", {"key": "cold"})):  # fmt: skip
        answer = k.query_private(method, {"asset": "XBT", **params})
        assert answer["error"] == ["EGeneral:Permission denied"]


def test_remove_withdraw_address(bank: Bank) -> None:
    dave = bank.holder("dave")
    (code, _) = codes(dave.totp)
    before = dave.state()
    assert dave.call("RemoveWithdrawAddress", asset="XBT", key="cold")["error"] == INVALID_OTP
    assert dave.state() == before
    assert dave.call("RemoveWithdrawAddress", asset="XBT", key="warm", otp=code)["error"] == [
        "EFunding:Unknown withdraw key"
    ]
    assert dave.call("RemoveWithdrawAddress", asset="XBT", key="cold", otp=code) == {
        "error": [], "result": True
    }  # fmt: skip
    assert dave.addresses() == []
    gone = dave.call("Withdraw", **WITHDRAW, otp=code)
    assert gone["error"] == ["EFunding:Unknown withdraw key"]


def test_without_totp_nothing_is_asked(bank: Bank) -> None:
    erin = bank.holder("erin", totp=False)
    added = erin.call("AddWithdrawAddress", asset="XBT", key="hot", address=HOT)
    assert added["error"] == []
    assert erin.call("Withdraw", **WITHDRAW)["error"] == []
    assert erin.call("Withdraw", **{**WITHDRAW, "key": "hot"}, otp="123456")["error"] == []
    assert erin.call("RemoveWithdrawAddress", asset="XBT", key="hot")["error"] == []


def test_the_operator_adds_an_address_with_the_holders_code(bank: Bank) -> None:
    frank = bank.holder("frank")
    args = ("admin", "--data", str(bank.data), "address", "add", "frank", "XBT", "hot", HOT)
    refused = cambio(*args)
    assert refused.returncode != 0 and "EAPI:Invalid OTP" in refused.stderr
    refused = cambio(*args, "--otp", wrong(frank.totp))
    assert refused.returncode != 0 and "EAPI:Invalid OTP" in refused.stderr
    assert frank.addresses() == [("cold", COLD)]
    code, _ = codes(frank.totp)
    added = admin(bank.data, "address", "add", "frank", "XBT", "hot", HOT, "--otp", code)
    assert added["key"] == "hot" and frank.addresses() == [("cold", COLD), ("hot", HOT)]


def test_the_operator_enables_and_disables_totp(bank: Bank) -> None:
    gina = bank.holder("gina")
    again = cambio("admin", "--data", str(bank.data), "account", "totp", "enable", "gina")
    assert again.returncode != 0 and "enabled already" in again.stderr
    no_reason = cambio("admin", "--data", str(bank.data), "account", "totp", "disable", "gina")
    assert no_reason.returncode != 0 and "--reason" in no_reason.stderr
    assert gina.call("Withdraw", **WITHDRAW)["error"] == INVALID_OTP
    done = admin(bank.data, "account", "totp", "disable", "gina", "--reason", "lost phone")
    assert done == {"account": done["account"], "disabled": True, "reason": "lost phone"}
    assert gina.call("Withdraw", **WITHDRAW)["error"] == []
    twice = cambio("admin", "--data", str(bank.data), "account", "totp", "disable", "gina",
                   "--reason", "again")  # fmt: skip
    assert twice.returncode != 0 and "no TOTP enabled" in twice.stderr
    fresh = admin(bank.data, "account", "totp", "enable", "gina")
    assert fresh["secret"] != gina.totp
    assert pyotp.parse_uri(fresh["uri"]).name == "gina"
    assert gina.call("Withdraw", **WITHDRAW, otp=codes(gina.totp)[0])["error"] == INVALID_OTP
    assert gina.call("Withdraw", **WITHDRAW, otp=codes(fresh["secret"])[0])["error"] == []


def test_wrong_codes_in_a_row_lock_withdrawals(bank: Bank) -> None:
    hank = bank.holder("hank")
    bad = wrong(hank.totp)
    for _ in range(5):
        assert hank.call("Withdraw", **WITHDRAW, otp=bad)["error"] == INVALID_OTP
    before = hank.state()
    locked = hank.call("Withdraw", **WITHDRAW, otp=codes(hank.totp)[0])
    assert locked["error"] == ["EGeneral:Temporary lockout"]
    assert hank.state() == before


@pytest.mark.skipif(
    not serve_knows_the_policy(), reason="serve --require-2fa-withdrawals is not wired yet"
)
def test_serve_can_require_totp_for_withdrawals(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc, info = start(data, "--tick-interval", "0", "--require-2fa-withdrawals")
    try:
        bank = Bank(data, info)
        made = admin(data, "account", "create", "ivy", "--deposit", "XBT=1",
                     "--permissions", EVERY, "--tier", "unlimited")  # fmt: skip
        ivy = Holder(bank, "ivy", made["api_key"], made["api_secret"], "")
        refused = cambio("admin", "--data", str(data), "address", "add", "ivy", "XBT", "cold",
                         COLD)  # fmt: skip
        assert refused.returncode != 0 and NOT_ENROLLED[0] in refused.stderr
        add = {"asset": "XBT", "key": "cold", "address": COLD}
        assert ivy.call("AddWithdrawAddress", **add)["error"] == NOT_ENROLLED
        assert ivy.call("Withdraw", **WITHDRAW)["error"] == NOT_ENROLLED
        secret = admin(data, "account", "totp", "enable", "ivy")["secret"]
        first, second = codes(secret)
        assert ivy.call("AddWithdrawAddress", **add)["error"] == INVALID_OTP
        assert ivy.call("AddWithdrawAddress", **add, otp=first)["error"] == []
        assert ivy.call("Withdraw", **WITHDRAW, otp=second)["error"] == []
    finally:
        proc.terminate()
        proc.wait(30)


# ---------------------------------------------------------------- the policy, in process
class FakeTrading:
    """Trading.run as FundingApi uses it: the commands it would journal."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def run(self, cmd: Any) -> None:
        self.sent.append(cmd)


def test_the_policy_refuses_accounts_without_totp(tmp_path: Path) -> None:
    """FundingApi and the operator endpoint with require_2fa on, as serve's flag sets them."""
    config = load_config()
    keys = KeyStore(tmp_path / "keys.db")
    try:
        plain, enrolled = keys.create_account("plain"), keys.create_account("enrolled")
        keys.add_withdraw_address(plain, "XXBT", "cold", COLD)
        keys.add_withdraw_address(enrolled, "XXBT", "cold", COLD)
        secret = keys.totp_enable(enrolled).secret
        trading = FakeTrading()
        funding = FundingApi(config, MagicMock(), cast(Any, trading), MagicMock(), MagicMock(),
                             keys, require_2fa=True)  # fmt: skip

        def refused(method: Any, account: int, params: dict[str, Any]) -> list[str]:
            with pytest.raises(KrakenError) as caught:
                asyncio.run(method(account, params))
            return caught.value.errors

        add = {"asset": "XBT", "key": "hot", "address": HOT}
        assert refused(funding.withdraw, plain, WITHDRAW) == NOT_ENROLLED
        assert refused(funding.add_withdraw_address, plain, add) == NOT_ENROLLED
        assert trading.sent == [] and keys.withdraw_addresses(plain) == [("XXBT", "cold", COLD)]
        # removing only narrows where funds may go: allowed
        assert asyncio.run(funding.remove_withdraw_address(plain, {"asset": "XBT", "key": "cold"}))

        assert refused(funding.withdraw, enrolled, WITHDRAW) == INVALID_OTP
        first, second = codes(secret)
        asyncio.run(funding.add_withdraw_address(enrolled, {**add, "otp": first}))
        asyncio.run(funding.withdraw(enrolled, {**WITHDRAW, "key": "hot", "otp": second}))
        (cmd,) = trading.sent
        assert isinstance(cmd, RequestWithdrawal) and (cmd.key, cmd.address) == ("hot", HOT)

        service = MagicMock(config=config)
        ctx = AdminContext(service, keys, MagicMock(), require_2fa_withdrawals=True)
        app = Starlette(routes=admin_accounts.routes(ctx))
        body = {"account": "plain", "asset": "XBT", "key": "cold", "address": COLD}

        async def post() -> Any:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://admin") as http:
                return (await http.post("/v1/withdraw-addresses", json=body)).json()

        assert asyncio.run(post())["error"] == NOT_ENROLLED
        assert keys.withdraw_addresses(plain) == []
    finally:
        keys.close()
