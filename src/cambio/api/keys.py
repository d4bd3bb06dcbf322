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
    update,
)

PERMISSIONS = ("query_funds", "query_orders", "trade", "withdraw")
DEFAULT_PERMISSIONS = ("query_funds", "query_orders", "trade")

_meta = MetaData()
accounts = Table(
    "accounts",
    _meta,
    Column("account", BigInteger, primary_key=True, autoincrement=False),
    Column("name", String, nullable=False, unique=True),
    Column("created_ts", BigInteger, nullable=False),
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


class KeyStoreError(Exception):
    """A key-store request that cannot be met (unknown account, bad permission...)."""


@dataclass
class ApiKey:
    api_key: str
    secret: str  # base64, as handed to the client
    account: int
    permissions: frozenset[str]
    last_nonce: int


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
        with self.engine.connect() as conn:
            for row in conn.execute(select(api_keys).where(api_keys.c.revoked.is_(False))):
                self._keys[row.api_key] = ApiKey(
                    row.api_key,
                    row.secret,
                    row.account,
                    frozenset(row.permissions.split(",")) - {""},
                    int(row.last_nonce),
                )

    def create_account(self, name: str) -> int:
        """A new account id (one above the highest so far; account 0 is the fee account)."""
        with self._lock, self.engine.begin() as conn:
            if conn.scalar(select(accounts.c.account).where(accounts.c.name == name)) is not None:
                raise KeyStoreError(f"an account named {name!r} exists")
            account = int(conn.scalar(select(func.max(accounts.c.account))) or 0) + 1
            conn.execute(insert(accounts).values(account=account, name=name, created_ts=_now()))
        return account

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

    def close(self) -> None:
        self.engine.dispose()


def _now() -> int:
    return time.time_ns()
