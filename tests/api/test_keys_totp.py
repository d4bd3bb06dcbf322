"""The key store's second factor (TOTP) and withdrawal-address rules, on a real keys.db.

Codes are made the way an authenticator app makes them (pyotp.TOTP(secret).at(time)) and
checked at chosen times, so the window and the replay rule are tested without waiting.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from cambio.api.keys import (
    MAX_ADDRESS_LEN,
    MAX_WITHDRAW_ADDRESSES,
    TOTP_LOCKOUT_S,
    TOTP_MAX_FAILURES,
    AddressTaken,
    InvalidAddress,
    KeyStore,
    KeyStoreError,
    SecondFactorRefused,
    TooManyAddresses,
    check_withdraw_address,
)

STEP = 30
T = 56_666_667 * STEP + 15  # 2023-11-14, the middle of a time step


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[KeyStore]:
    store = KeyStore(tmp_path / "keys.db")
    yield store
    store.close()


def enrolled(keys: KeyStore, name: str = "alice") -> tuple[int, pyotp.TOTP]:
    account = keys.create_account(name)
    return account, pyotp.TOTP(keys.totp_enable(account).secret)


def wrong(totp: pyotp.TOTP, at: float) -> str:
    """A well-formed code that no step of the window around `at` has."""
    near = {totp.at(at + d * STEP) for d in range(-3, 4)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in near)


def refusal(
    keys: KeyStore, account: int, code: str | None, required: bool = False, at: float = T
) -> str:
    """Why second_factor refuses `code` (it must)."""
    with pytest.raises(SecondFactorRefused) as caught:
        keys.second_factor(account, code, required=required, at=at)
    return caught.value.reason


def test_enable_gives_a_secret_and_a_provisioning_uri(keys: KeyStore) -> None:
    account = keys.create_account("alice")
    assert not keys.totp_enabled(account)
    made = keys.totp_enable(account)
    assert made.account == account and len(made.secret) == 32  # base32 of 160 bits
    assert made.uri.startswith("otpauth://totp/cambio:alice?")
    parsed = pyotp.parse_uri(made.uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert (parsed.secret, parsed.name, parsed.issuer) == (made.secret, "alice", "cambio")
    assert keys.totp_enabled(account)
    with pytest.raises(KeyStoreError, match="enabled already"):
        keys.totp_enable(account)  # a silent new secret would strand the authenticator
    assert keys.totp_verify(account, pyotp.TOTP(made.secret).at(T), at=T)  # still the first
    with pytest.raises(KeyStoreError, match="unknown account"):
        keys.totp_enable(account + 1)


def test_the_current_code_is_accepted_once(keys: KeyStore) -> None:
    account, totp = enrolled(keys)
    code = totp.at(T)
    assert keys.totp_verify(account, code, at=T)
    assert not keys.totp_verify(account, code, at=T)  # replayed
    assert not keys.totp_verify(account, code, at=T + 10)  # same step, later
    assert keys.totp_verify(account, totp.at(T + STEP), at=T + STEP)  # the next step's


def test_a_wrong_or_malformed_code_is_refused(keys: KeyStore) -> None:
    account, totp = enrolled(keys)
    for bad in (wrong(totp, T), "", "1234567", "abcdef"):  # one short of a lockout
        assert not keys.totp_verify(account, bad, at=T)
    assert keys.totp_verify(account, totp.at(T), at=T)  # a success clears the count
    digits = totp.at(T + STEP)
    for bad in (digits[:5], digits.translate(str.maketrans("0123456789", "０１２３４５６７８９"))):
        assert not keys.totp_verify(account, bad, at=T + STEP)
    assert keys.totp_verify(account, f" {digits} ", at=T + STEP)  # as pasted
    other, _ = enrolled(keys, "bob")
    assert not keys.totp_verify(other, totp.at(T + STEP), at=T + STEP)  # alice's secret


def test_the_window_is_one_step_either_way(keys: KeyStore) -> None:
    account, totp = enrolled(keys)
    assert not keys.totp_verify(account, totp.at(T - 2 * STEP), at=T)
    assert not keys.totp_verify(account, totp.at(T + 2 * STEP), at=T)
    assert keys.totp_verify(account, totp.at(T - STEP), at=T)  # a slow clock
    assert keys.totp_verify(account, totp.at(T), at=T)
    assert keys.totp_verify(account, totp.at(T + STEP), at=T)  # a fast one
    # once the next step's code is used, nothing older passes, in the window or not
    assert not keys.totp_verify(account, totp.at(T), at=T + STEP)
    assert keys.totp_verify(account, totp.at(T + 2 * STEP), at=T + STEP)


def test_an_older_code_is_refused_after_a_newer_one(keys: KeyStore) -> None:
    account, totp = enrolled(keys)
    assert keys.totp_verify(account, totp.at(T), at=T)
    assert not keys.totp_verify(account, totp.at(T - STEP), at=T)  # in the window, but older


def test_used_steps_survive_a_restart(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.db")
    account, totp = enrolled(store)
    assert store.totp_verify(account, totp.at(T), at=T)
    store.close()
    again = KeyStore(tmp_path / "keys.db")
    try:
        assert again.totp_enabled(account)
        assert not again.totp_verify(account, totp.at(T), at=T)
    finally:
        again.close()


def test_wrong_codes_in_a_row_lock_the_account_for_a_while(keys: KeyStore) -> None:
    account, totp = enrolled(keys)
    other, other_totp = enrolled(keys, "bob")
    bad = wrong(totp, T)
    for _ in range(TOTP_MAX_FAILURES):
        assert not keys.totp_verify(account, bad, at=T)
    with pytest.raises(SecondFactorRefused) as caught:
        keys.totp_verify(account, totp.at(T), at=T)  # even the right code
    assert caught.value.reason == "locked"
    assert refusal(keys, account, totp.at(T), at=T + 60) == "locked"
    assert keys.totp_verify(other, other_totp.at(T), at=T)  # one account only
    later = T + TOTP_LOCKOUT_S
    assert keys.totp_verify(account, totp.at(later), at=later)


def test_disable_keeps_the_reason_and_a_new_enable_starts_afresh(keys: KeyStore) -> None:
    account, totp = enrolled(keys)
    assert keys.totp_disable(account, "lost phone")
    assert not keys.totp_enabled(account)
    assert not keys.totp_verify(account, totp.at(T), at=T)
    assert not keys.totp_disable(account, "again")
    with keys.engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT secret, disabled_reason FROM account_totp WHERE account = ?", (account,)
        ).one()
    assert tuple(row) == ("", "lost phone")
    fresh = pyotp.TOTP(keys.totp_enable(account).secret)
    assert fresh.secret != totp.secret
    assert not keys.totp_verify(account, totp.at(T), at=T)
    assert keys.totp_verify(account, fresh.at(T), at=T)


def test_second_factor_applies_the_policy(keys: KeyStore) -> None:
    plain = keys.create_account("plain")
    keys.second_factor(plain, None)  # no TOTP, no policy: nothing asked
    keys.second_factor(plain, "123456")  # a code sent anyway is ignored
    assert refusal(keys, plain, None, required=True) == "not-enrolled"
    account, totp = enrolled(keys)
    assert refusal(keys, account, None, at=T) == "missing"
    assert refusal(keys, account, "", at=T) == "missing"
    assert refusal(keys, account, wrong(totp, T), at=T) == "invalid"
    keys.second_factor(account, totp.at(T), required=True, at=T)
    assert refusal(keys, account, totp.at(T), at=T) == "invalid"  # used


def test_addresses_look_like_addresses() -> None:
    check_withdraw_address("cold", "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh")
    check_withdraw_address("my ledger", "x" * MAX_ADDRESS_LEN)
    check_withdraw_address("k", "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh?dt=12345")
    for address in ("", "bc1q xy", " bc1q", "bc1q\n", "bc1qé", "\x00", "x" * (MAX_ADDRESS_LEN + 1)):
        with pytest.raises(InvalidAddress) as caught:
            check_withdraw_address("cold", address)
        assert caught.value.field == "address"
    for key in ("", " cold", "cold ", "a\tb", "k" * 65):
        with pytest.raises(InvalidAddress) as caught:
            check_withdraw_address(key, "bc1q")
        assert caught.value.field == "key"


def test_adding_an_address_asks_for_the_code_last(keys: KeyStore) -> None:
    account, totp = enrolled(keys)
    code = totp.at(T)
    with pytest.raises(SecondFactorRefused):
        keys.add_withdraw_address(account, "XXBT", "cold", "bc1qcold", at=T)
    with pytest.raises(InvalidAddress):  # refused before the code is looked at ...
        keys.add_withdraw_address(account, "XXBT", "cold", "bc1q cold", otp=code, at=T)
    assert keys.withdraw_addresses(account) == []
    keys.add_withdraw_address(account, "XXBT", "cold", "bc1qcold", otp=code, at=T)  # ... kept
    with pytest.raises(AddressTaken):
        keys.add_withdraw_address(account, "XXBT", "cold", "bc1qother", otp=code, at=T)
    with pytest.raises(SecondFactorRefused):  # used
        keys.add_withdraw_address(account, "XXBT", "hot", "bc1qhot", otp=code, at=T)
    assert keys.withdraw_addresses(account) == [("XXBT", "cold", "bc1qcold")]


def test_removing_an_address_asks_for_the_code(keys: KeyStore) -> None:
    account = keys.create_account("alice")
    keys.add_withdraw_address(account, "XXBT", "cold", "bc1qcold")  # before TOTP: no code
    totp = pyotp.TOTP(keys.totp_enable(account).secret)
    assert not keys.remove_withdraw_address(account, "XXBT", "nope", at=T)  # no code needed
    with pytest.raises(SecondFactorRefused):
        keys.remove_withdraw_address(account, "XXBT", "cold", at=T)
    assert keys.withdraw_addresses(account) == [("XXBT", "cold", "bc1qcold")]
    assert keys.remove_withdraw_address(account, "XXBT", "cold", otp=totp.at(T), at=T)
    assert keys.withdraw_addresses(account) == []


def test_an_account_holds_a_bounded_number_of_addresses(keys: KeyStore) -> None:
    account = keys.create_account("alice")
    for n in range(MAX_WITHDRAW_ADDRESSES):
        keys.add_withdraw_address(account, "XXBT", f"k{n}", f"bc1q{n}")
    with pytest.raises(TooManyAddresses):
        keys.add_withdraw_address(account, "XXBT", "one-more", "bc1qmore")
    keys.add_withdraw_address(account, "XETH", "eth", "0xabc")  # per asset
    assert keys.remove_withdraw_address(account, "XXBT", "k0")
    keys.add_withdraw_address(account, "XXBT", "one-more", "bc1qmore")
