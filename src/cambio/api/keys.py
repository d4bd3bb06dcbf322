"""Accounts and API keys: who may call the private API, with which permissions.

Kept in ``DIR/keys.db`` (SQLite through SQLAlchemy Core, file mode 0600), apart from the
read models (which are rebuildable and may be dropped) and from the journal (the engine
never sees a secret). A key's last accepted nonce is written through on every accepted
request, so a captured request cannot be replayed after a restart.

An account may have a second factor: a TOTP secret (RFC 6238 through pyotp: 30-second
steps, six digits, one step of clock drift either way). A code is accepted once: the time
step of the last accepted code is stored, and no code of that step or an earlier one is
accepted again. Withdrawals and changes to the account's withdrawal addresses ask for it
(cambio.api.kraken.funding).
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyotp
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

from cambio.api.kraken.limits import DEFAULT_TIER, TIERS

PERMISSIONS = ("query_funds", "query_orders", "trade", "withdraw")
DEFAULT_PERMISSIONS = ("query_funds", "query_orders", "trade")
MAX_WITHDRAW_ADDRESSES = 100  # per account and asset (Kraken: EFunding:Too many addresses)
MAX_ADDRESS_LEN = 128  # longer than any chain's address, with a memo or tag appended
MAX_KEY_LEN = 64
TOTP_ISSUER = "cambio"  # what authenticator apps show above the account's name
TOTP_WINDOW = 1  # time steps of clock drift accepted either way (30 s each)
# Six digits are guessed right ~3 times in a million tries (window included): after this
# many wrong codes in a row an account's codes are refused for a while, right or wrong.
TOTP_MAX_FAILURES = 5
TOTP_LOCKOUT_S = 15 * 60  # as Kraken's EGeneral:Temporary lockout

log = logging.getLogger("cambio.api.keys")

_meta = MetaData()
accounts = Table(
    "accounts",
    _meta,
    Column("account", BigInteger, primary_key=True, autoincrement=False),
    Column("name", String, nullable=False, unique=True),
    Column("created_ts", BigInteger, nullable=False),
    Column("tier", String, nullable=False, default=DEFAULT_TIER),  # rate limits
)
api_keys = Table(
    "api_keys",
    _meta,
    Column("api_key", String, primary_key=True),
    Column("secret", String, nullable=False),
    Column("account", BigInteger, nullable=False),
    Column("permissions", String, nullable=False),
    Column("created_ts", BigInteger, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("last_nonce", String, nullable=False, default="0"),  # up to 2**64: text
)

# The addresses a withdrawal may go to, registered ahead under a name (Kraken's "key").
withdraw_addresses = Table(
    "withdraw_addresses",
    _meta,
    Column("account", BigInteger, primary_key=True, autoincrement=False),
    Column("asset", String, primary_key=True),
    Column("key", String, primary_key=True),
    Column("address", String, nullable=False),
    Column("created_ts", BigInteger, nullable=False),
)
deposit_addresses = Table(
    "deposit_addresses",
    _meta,
    Column("address", String, primary_key=True),
    Column("account", BigInteger, nullable=False),
    Column("asset", String, nullable=False),
    Column("created_ts", BigInteger, nullable=False),
)
# An account's TOTP secret. `last_step` is the time step (unix time // 30) of the last
# accepted code: a code is good once. Disabling keeps the row (secret cleared) with when
# and why, for the audit; enabling again starts afresh with a new secret.
account_totp = Table(
    "account_totp",
    _meta,
    Column("account", BigInteger, primary_key=True, autoincrement=False),
    Column("secret", String, nullable=False),  # base32; "" once disabled
    Column("enabled_ts", BigInteger, nullable=False),
    Column("last_step", BigInteger, nullable=False, default=0),
    Column("disabled_ts", BigInteger, nullable=True),
    Column("disabled_reason", String, nullable=True),
)


class KeyStoreError(Exception):
    """A key-store request that cannot be met (unknown account, bad permission...)."""


class InvalidAddress(KeyStoreError):
    """A withdrawal address or its name (key) that does not look right; `field` says which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class AddressTaken(KeyStoreError):
    """The account already has a withdrawal address of that name for that asset."""


class TooManyAddresses(KeyStoreError):
    """The account has MAX_WITHDRAW_ADDRESSES addresses for the asset already."""


class SecondFactorRefused(KeyStoreError):
    """The account's second factor did not pass. `reason`: "missing" (TOTP is on and no
    code came), "invalid" (wrong, malformed or already used), "locked" (too many wrong
    codes lately), "not-enrolled" (the policy asks for TOTP and the account has none)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class TotpEnrolment:
    """What the account holder needs to set up an authenticator app."""

    account: int
    secret: str  # base32, for typing in
    uri: str  # otpauth://totp/cambio:NAME?secret=...&issuer=cambio, for a QR code


@dataclass
class ApiKey:
    api_key: str
    secret: str  # base64, as handed to the client
    account: int
    permissions: frozenset[str]
    last_nonce: int


def check_tier(tier: str) -> None:
    if tier not in TIERS:
        raise KeyStoreError(f"unknown tier {tier!r}; known: {tuple(TIERS)}")


def check_permissions(permissions: tuple[str, ...]) -> None:
    unknown = set(permissions) - set(PERMISSIONS)
    if unknown:
        raise KeyStoreError(f"unknown permission(s) {sorted(unknown)}; known: {PERMISSIONS}")


def check_withdraw_address(key: str, address: str) -> None:
    """A name a person can read back, and an address that could be one: printable ASCII
    without spaces (every chain's address is), so lookalike characters and pasted
    whitespace are refused rather than sent funds to."""
    if not key or len(key) > MAX_KEY_LEN or not key.isprintable() or key != key.strip():
        raise InvalidAddress(
            "key", f"key: 1 to {MAX_KEY_LEN} printable characters, no surrounding spaces"
        )
    if not 0 < len(address) <= MAX_ADDRESS_LEN or not all("!" <= c <= "~" for c in address):
        raise InvalidAddress(
            "address", f"address: 1 to {MAX_ADDRESS_LEN} printable ASCII characters, no spaces"
        )


class KeyStore:
    def __init__(self, path: Path) -> None:
        new = not path.exists()
        self.engine = create_engine(f"sqlite:///{path}")
        _meta.create_all(self.engine)
        if new:
            os.chmod(path, 0o600)
        self._lock = threading.Lock()
        self._keys: dict[str, ApiKey] = {}
        # account -> (wrong codes in a row, refused until (unix s)); in memory: a restart
        # forgives, and an attacker cannot cause one
        self._totp_failures: dict[int, tuple[int, float]] = {}
        with self.engine.begin() as conn:
            columns = {row[1] for row in conn.execute(text("PRAGMA table_info(accounts)"))}
            if "tier" not in columns:  # a keys.db from before rate-limit tiers
                conn.execute(
                    text(
                        f"ALTER TABLE accounts ADD COLUMN tier TEXT NOT NULL "
                        f"DEFAULT '{DEFAULT_TIER}'"
                    )
                )
            self._tiers: dict[int, str] = {
                r.account: r.tier for r in conn.execute(select(accounts))
            }
            for row in conn.execute(select(api_keys).where(api_keys.c.revoked.is_(False))):
                self._keys[row.api_key] = ApiKey(
                    row.api_key,
                    row.secret,
                    row.account,
                    frozenset(row.permissions.split(",")) - {""},
                    int(row.last_nonce),
                )

    def create_account(self, name: str, tier: str = DEFAULT_TIER) -> int:
        """A new account id (one above the highest so far; account 0 is the fee account)."""
        check_tier(tier)
        with self._lock, self.engine.begin() as conn:
            if conn.scalar(select(accounts.c.account).where(accounts.c.name == name)) is not None:
                raise KeyStoreError(f"an account named {name!r} exists")
            account = int(conn.scalar(select(func.max(accounts.c.account))) or 0) + 1
            conn.execute(
                insert(accounts).values(account=account, name=name, created_ts=_now(), tier=tier)
            )
            self._tiers[account] = tier
        return account

    def set_tier(self, account: int, tier: str) -> None:
        check_tier(tier)
        with self._lock, self.engine.begin() as conn:
            done = conn.execute(
                update(accounts).where(accounts.c.account == account).values(tier=tier)
            ).rowcount
            if not done:
                raise KeyStoreError(f"unknown account {account}")
            self._tiers[account] = tier

    def tier_of(self, account: int) -> str:
        """The account's rate-limit tier (accounts made outside the store: the default)."""
        return self._tiers.get(account, DEFAULT_TIER)

    def account_named(self, name: str) -> int | None:
        with self.engine.connect() as conn:
            found = conn.scalar(select(accounts.c.account).where(accounts.c.name == name))
        return None if found is None else int(found)

    def create_key(self, account: int, permissions: tuple[str, ...]) -> ApiKey:
        check_permissions(permissions)
        key = ApiKey(
            base64.b64encode(secrets.token_bytes(42)).decode(),
            base64.b64encode(secrets.token_bytes(64)).decode(),
            account,
            frozenset(permissions),
            0,
        )
        with self._lock, self.engine.begin() as conn:
            conn.execute(
                insert(api_keys).values(
                    api_key=key.api_key,
                    secret=key.secret,
                    account=account,
                    permissions=",".join(sorted(permissions)),
                    created_ts=_now(),
                    revoked=False,
                    last_nonce="0",
                )
            )
            self._keys[key.api_key] = key
        return key

    def revoke(self, api_key: str) -> bool:
        with self._lock, self.engine.begin() as conn:
            done = conn.execute(
                update(api_keys)
                .where(api_keys.c.api_key == api_key, api_keys.c.revoked.is_(False))
                .values(revoked=True)
            ).rowcount
            self._keys.pop(api_key, None)
        return bool(done)

    def get(self, api_key: str) -> ApiKey | None:
        return self._keys.get(api_key)

    def accept_nonce(self, key: ApiKey, nonce: int) -> bool:
        """True (and remembered) if `nonce` is above the key's last accepted one."""
        with self._lock:
            if nonce <= key.last_nonce:
                return False
            key.last_nonce = nonce
            with self.engine.begin() as conn:
                conn.execute(
                    update(api_keys)
                    .where(api_keys.c.api_key == key.api_key)
                    .values(last_nonce=str(nonce))
                )
        return True

    # ------------------------------------------------------------------ second factor
    def totp_enable(self, account: int) -> TotpEnrolment:
        """A new TOTP secret for the account. Refused while one is enabled: replacing it
        silently would strand the holder's authenticator (disable first, with a reason)."""
        with self._lock, self.engine.begin() as conn:
            name = conn.scalar(select(accounts.c.name).where(accounts.c.account == account))
            if name is None:
                raise KeyStoreError(f"unknown account {account}")
            if self._totp_secret(conn, account):
                raise KeyStoreError(f"account {account} has TOTP enabled already; disable it first")
            secret = pyotp.random_base32()  # 160 bits, RFC 4226's recommended length
            conn.execute(delete(account_totp).where(account_totp.c.account == account))
            conn.execute(
                insert(account_totp).values(
                    account=account, secret=secret, enabled_ts=_now(), last_step=0
                )
            )
            self._totp_failures.pop(account, None)
        uri = pyotp.TOTP(secret).provisioning_uri(name=str(name), issuer_name=TOTP_ISSUER)
        return TotpEnrolment(account, secret, uri)

    def totp_disable(self, account: int, reason: str) -> bool:
        """Turn the account's TOTP off (False if it was not on); the reason is kept."""
        t = account_totp.c
        with self._lock, self.engine.begin() as conn:
            done = conn.execute(
                update(account_totp)
                .where(t.account == account, t.secret != "")
                .values(secret="", disabled_ts=_now(), disabled_reason=reason)
            ).rowcount
            self._totp_failures.pop(account, None)
        if done:
            log.warning("TOTP disabled for account %d: %s", account, reason)
        return bool(done)

    def totp_enabled(self, account: int) -> bool:
        with self.engine.connect() as conn:
            return bool(self._totp_secret(conn, account))

    def totp_verify(self, account: int, code: str, at: float | None = None) -> bool:
        """True (and the code used up) if `code` is the account's TOTP code for the time
        step of `at` (default now) or the step before or after it (clock drift), and of a
        later step than the last code accepted. False for a wrong, malformed, reused or
        older code, or when the account has no TOTP. After TOTP_MAX_FAILURES wrong codes
        in a row: SecondFactorRefused("locked") for TOTP_LOCKOUT_S."""
        now = time.time() if at is None else at
        with self._lock, self.engine.begin() as conn:
            return self._totp_check(conn, account, code, now)

    def second_factor(
        self, account: int, code: str | None, *, required: bool = False, at: float | None = None
    ) -> None:
        """Pass, or raise SecondFactorRefused: with TOTP on, `code` must verify (and is
        used up); without it, only `required` (the exchange's policy) refuses."""
        now = time.time() if at is None else at
        with self._lock, self.engine.begin() as conn:
            self._second_factor(conn, account, code, required, now)

    @staticmethod
    def _totp_secret(conn: Connection, account: int) -> str:
        found = conn.scalar(select(account_totp.c.secret).where(account_totp.c.account == account))
        return str(found or "")

    def _second_factor(
        self, conn: Connection, account: int, code: str | None, required: bool, now: float
    ) -> None:
        """With the lock held and inside the caller's transaction: what the code
        authorises and the code's use are one change."""
        if not self._totp_secret(conn, account):
            if required:
                raise SecondFactorRefused(
                    "not-enrolled", "two-factor authentication required (TOTP is not enabled)"
                )
            return
        if code is None or code == "":  # not a guess: no failure counted
            raise SecondFactorRefused("missing", "a TOTP code is required")
        if not self._totp_check(conn, account, code, now):
            raise SecondFactorRefused("invalid", "wrong or already used TOTP code")

    def _totp_check(self, conn: Connection, account: int, code: str, now: float) -> bool:
        failures, until = self._totp_failures.get(account, (0, 0.0))
        if now < until:
            raise SecondFactorRefused(
                "locked", f"too many wrong TOTP codes; try again in {int(until - now) + 1} s"
            )
        t = account_totp.c
        row = conn.execute(select(t.secret, t.last_step).where(t.account == account)).first()
        if row is None or not row.secret:
            return False
        totp = pyotp.TOTP(row.secret)
        step = None
        code = code.strip()
        if len(code) == totp.digits and code.isascii() and code.isdigit():
            # pyotp's verify() answers only yes or no; asking it step by step across the
            # window (its constant-time comparison each time) also tells which step matched
            for drift in range(-TOTP_WINDOW, TOTP_WINDOW + 1):
                when = now + drift * totp.interval
                if when >= 0 and totp.verify(code, for_time=when):
                    step = totp.timecode(when)
                    break
        if step is None or step <= row.last_step:  # wrong, or used (or older than the used)
            failures += 1
            locked = failures >= TOTP_MAX_FAILURES
            self._totp_failures[account] = (0, now + TOTP_LOCKOUT_S) if locked else (failures, 0)
            if locked:
                log.warning("account %d: %d wrong TOTP codes in a row, locked", account, failures)
            return False
        self._totp_failures.pop(account, None)
        conn.execute(update(account_totp).where(t.account == account).values(last_step=step))
        return True

    # ------------------------------------------------------------------ addresses
    def add_withdraw_address(
        self,
        account: int,
        asset: str,
        key: str,
        address: str,
        *,
        otp: str | None = None,
        require_otp: bool = False,
        at: float | None = None,
    ) -> None:
        """Register `address` under `key`, checking the second factor (second_factor)
        last, so that a refused address does not use up the holder's code, and in the
        same transaction as the insert."""
        check_withdraw_address(key, address)
        now = time.time() if at is None else at
        w = withdraw_addresses.c
        with self._lock, self.engine.begin() as conn:
            if conn.scalar(select(accounts.c.account).where(accounts.c.account == account)) is None:
                raise KeyStoreError(f"unknown account {account}")
            found = select(w.address).where(w.account == account, w.asset == asset, w.key == key)
            if conn.scalar(found) is not None:
                raise AddressTaken(f"account {account} already has {asset} address {key!r}")
            count = conn.scalar(select(func.count()).where(w.account == account, w.asset == asset))
            if int(count or 0) >= MAX_WITHDRAW_ADDRESSES:
                raise TooManyAddresses(
                    f"account {account} has {MAX_WITHDRAW_ADDRESSES} {asset} addresses already"
                )
            self._second_factor(conn, account, otp, require_otp, now)
            conn.execute(
                insert(withdraw_addresses).values(
                    account=account, asset=asset, key=key, address=address, created_ts=_now()
                )
            )

    def remove_withdraw_address(
        self, account: int, asset: str, key: str, *, otp: str | None = None, at: float | None = None
    ) -> bool:
        """Forget the address named `key` (False if there is none). Withdrawals already
        requested to it keep their address. With TOTP on, the code is asked for; the
        policy does not demand TOTP here: a removal only narrows where funds may go."""
        now = time.time() if at is None else at
        w = withdraw_addresses.c
        where = (w.account == account, w.asset == asset, w.key == key)
        with self._lock, self.engine.begin() as conn:
            if conn.scalar(select(w.address).where(*where)) is None:
                return False
            self._second_factor(conn, account, otp, False, now)
            conn.execute(delete(withdraw_addresses).where(*where))
        return True

    def withdraw_addresses(
        self, account: int, asset: str | None = None
    ) -> list[tuple[str, str, str]]:
        """(asset, key, address) of the account's registered withdrawal addresses."""
        w = withdraw_addresses.c
        q = select(w.asset, w.key, w.address).where(w.account == account).order_by(w.created_ts)
        if asset is not None:
            q = q.where(w.asset == asset)
        with self.engine.connect() as conn:
            return [(r.asset, r.key, r.address) for r in conn.execute(q)]

    def deposit_addresses(
        self, account: int, asset: str, make: Callable[[], str], new: bool
    ) -> list[tuple[str, bool]]:
        """The account's deposit addresses for `asset` (address, just made), newest first;
        one is made with `make` (custody's) when there is none or `new` is asked."""
        d = deposit_addresses.c
        q = select(d.address).where(d.account == account, d.asset == asset)
        with self._lock, self.engine.begin() as conn:
            have = [r.address for r in conn.execute(q.order_by(d.created_ts.desc()))]
            if have and not new:
                return [(a, False) for a in have]
            address = make()
            conn.execute(
                insert(deposit_addresses).values(
                    address=address, account=account, asset=asset, created_ts=_now()
                )
            )
        return [(address, True)] + [(a, False) for a in have]

    def deposit_owner(self, address: str) -> int | None:
        """The account a deposit address was handed to, if any."""
        d = deposit_addresses.c
        with self.engine.connect() as conn:
            row = conn.execute(select(d.account).where(d.address == address)).first()
        return None if row is None else int(row.account)

    def close(self) -> None:
        self.engine.dispose()


def _now() -> int:
    return time.time_ns()
