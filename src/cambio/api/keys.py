"""Accounts and API keys: who may call the private API, with which permissions.

Kept in ``DIR/keys.db`` (SQLite through SQLAlchemy Core, file mode 0600), apart from the
read models (which are rebuildable and may be dropped) and from the journal (the engine
never sees a secret). A key's last accepted nonce is written through on every accepted
request, so a captured request cannot be replayed after a restart.
"""

from __future__ import annotations

import base64
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    insert,
    select,
    text,
    update,
)

from cambio.api.kraken.limits import DEFAULT_TIER, TIERS

PERMISSIONS = ("query_funds", "query_orders", "trade", "withdraw")
DEFAULT_PERMISSIONS = ("query_funds", "query_orders", "trade")

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


class KeyStoreError(Exception):
    """A key-store request that cannot be met (unknown account, bad permission...)."""


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


class KeyStore:
    def __init__(self, path: Path) -> None:
        new = not path.exists()
        self.engine = create_engine(f"sqlite:///{path}")
        _meta.create_all(self.engine)
        if new:
            os.chmod(path, 0o600)
        self._lock = threading.Lock()
        self._keys: dict[str, ApiKey] = {}
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

    # ------------------------------------------------------------------ addresses
    def add_withdraw_address(self, account: int, asset: str, key: str, address: str) -> None:
        if not key or not address:
            raise KeyStoreError("a withdrawal address needs a name (key) and an address")
        with self._lock, self.engine.begin() as conn:
            if conn.scalar(select(accounts.c.account).where(accounts.c.account == account)) is None:
                raise KeyStoreError(f"unknown account {account}")
            found = select(withdraw_addresses.c.address).where(
                withdraw_addresses.c.account == account,
                withdraw_addresses.c.asset == asset,
                withdraw_addresses.c.key == key,
            )
            if conn.scalar(found) is not None:
                raise KeyStoreError(f"account {account} already has {asset} address {key!r}")
            conn.execute(
                insert(withdraw_addresses).values(
                    account=account, asset=asset, key=key, address=address, created_ts=_now()
                )
            )

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
        self, account: int, asset: str, network: str, new: bool
    ) -> list[tuple[str, bool]]:
        """The account's deposit addresses for `asset` (address, just made), newest first;
        one is made when there is none or `new` is asked."""
        d = deposit_addresses.c
        q = select(d.address).where(d.account == account, d.asset == asset)
        with self._lock, self.engine.begin() as conn:
            have = [r.address for r in conn.execute(q.order_by(d.created_ts.desc()))]
            if have and not new:
                return [(a, False) for a in have]
            address = _address(network)
            conn.execute(
                insert(deposit_addresses).values(
                    address=address, account=account, asset=asset, created_ts=_now()
                )
            )
        return [(address, True)] + [(a, False) for a in have]

    def close(self) -> None:
        self.engine.dispose()


def _address(network: str) -> str:
    """A fresh address in the network's usual look. cambio keeps no chain wallet: deposits
    to it are credited by the operator (`cambio admin account deposit`)."""
    if network == "Ethereum":
        return "0x" + secrets.token_hex(20)
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"  # base58
    if network == "Solana":
        return "".join(secrets.choice(alphabet) for _ in range(44))
    return "bc1q" + "".join(secrets.choice("023456789acdefghjklmnpqrstuvwxyz") for _ in range(38))


def _now() -> int:
    return time.time_ns()
