"""A simulated chain and hot wallet: the custody backend of the embedded default.

It stands in for the outside world (nodes, mempools, confirmations) so the whole funding
path runs on a laptop and in tests: deposit addresses in each network's usual look,
deposits paid in from outside (`pay_in`, or ``cambio simchain pay``), blocks mined every
`block_s` seconds of wall time or on demand (`mine`), payouts signed and broadcast into
the mempool and confirmed by the next block. Payouts to an address marked failing
(`fail_address`) are dropped from the mempool at the next block: the case where funds
must go back to the account.

One SQLite file (DIR/simchain.sqlite, WAL, synchronous=FULL) holds it all, so it survives
kill -9 like a real chain would: a payout recorded here was broadcast. `send` is
idempotent by withdrawal id (its primary key): the one rule that keeps a restarted worker
from paying twice. All networks share one block height: it is a simulation of timing,
not of any network.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from pathlib import Path

from cambio.custody.adapter import (
    BROADCAST,
    CONFIRMED,
    FAILED,
    CustodyError,
    Incoming,
    Payout,
)

FILE = "simchain.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS addresses (
    address TEXT PRIMARY KEY, asset TEXT NOT NULL, label TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS incoming (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, txid TEXT NOT NULL UNIQUE,
    address TEXT NOT NULL, asset TEXT NOT NULL, amount INTEGER NOT NULL, height INTEGER,
    seen_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS payouts (
    withdrawal_id TEXT PRIMARY KEY, txid TEXT NOT NULL UNIQUE, asset TEXT NOT NULL,
    address TEXT NOT NULL, amount INTEGER NOT NULL, state TEXT NOT NULL, height INTEGER,
    reason TEXT NOT NULL DEFAULT '', sent_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS failing (address TEXT PRIMARY KEY, reason TEXT NOT NULL);
"""


def address_like(network: str) -> str:
    """A fresh random address in the network's usual look."""
    if network == "Ethereum":
        return "0x" + secrets.token_hex(20)
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"  # base58
    if network == "Solana":
        return "".join(secrets.choice(alphabet) for _ in range(44))
    return "bc1q" + "".join(secrets.choice("023456789acdefghjklmnpqrstuvwxyz") for _ in range(38))


class SimChain:
    """The simulated chain (see the module docstring). Thread-safe; several processes
    may open the same file (the server mines and pays, the CLI pays in)."""

    def __init__(self, path: Path, networks: dict[str, str], block_s: float = 5.0) -> None:
        """`networks`: asset id -> network name, for the look of addresses."""
        self.path = path
        self.networks = networks
        self.block_s = block_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)

    # ------------------------------------------------------------------ chain
    def height(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key='height'").fetchone()
        return int(row[0]) if row else 0

    def mine(self, blocks: int = 1) -> int:
        """Mine `blocks` blocks; the first takes the mempool. The new height."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                first = self.height() + 1
                top = first + blocks - 1
                db.execute(
                    "UPDATE payouts SET state=?, height=NULL, reason=(SELECT reason FROM failing"
                    " f WHERE f.address=payouts.address) WHERE state=? AND address IN"
                    " (SELECT address FROM failing)",
                    (FAILED, BROADCAST),
                )
                db.execute("UPDATE payouts SET height=? WHERE state=?", (first, BROADCAST))
                db.execute("UPDATE payouts SET state=? WHERE state=?", (CONFIRMED, BROADCAST))
                db.execute("UPDATE incoming SET height=? WHERE height IS NULL", (first,))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('height', ?)", (top,))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('mined_at', ?)", (time.time(),))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return top

    def mine_due(self) -> int:
        """Mine the blocks due by wall time since the last one (at most one per call, so
        a long stop does not bury everything under instant confirmations)."""
        row = self._db.execute("SELECT value FROM meta WHERE key='mined_at'").fetchone()
        if row is None:
            with self._lock:
                self._db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('mined_at', ?)", (time.time(),)
                )
            return self.height()
        if self.block_s > 0 and time.time() - row[0] >= self.block_s:
            return self.mine()
        return self.height()

    def _confirmations(self, height: int | None) -> int:
        return 0 if height is None else self.height() - height + 1

    # ------------------------------------------------------------------ the outside world
    def pay_in(self, address: str, amount: int) -> str:
        """Someone outside pays `amount` to our `address`: the txid, in the mempool."""
        if amount <= 0:
            raise CustodyError("an amount above zero")
        row = self._db.execute("SELECT asset FROM addresses WHERE address=?", (address,))
        found = row.fetchone()
        if found is None:
            raise CustodyError(f"{address} is not one of the exchange's deposit addresses")
        txid = secrets.token_hex(32)
        with self._lock:
            self._db.execute(
                "INSERT INTO incoming (txid, address, asset, amount, seen_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (txid, address, found[0], amount, time.time()),
            )
        return txid

    def fund(self, asset: str, amount: int) -> str:
        """The operator moves `amount` from cold storage into the hot wallet (so payouts of
        funds credited off-chain can be made): the txid, in the mempool."""
        return self.pay_in(self.new_address(asset, "treasury"), amount)

    def fail_address(self, address: str, reason: str = "rejected by the network") -> None:
        """Payouts to `address` will be dropped instead of confirmed."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO failing VALUES (?, ?)", (address, reason))

    # ------------------------------------------------------------------ CustodyAdapter
    def new_address(self, asset: str, label: str) -> str:
        address = address_like(self.networks.get(asset, ""))
        with self._lock:
            self._db.execute("INSERT INTO addresses VALUES (?, ?, ?)", (address, asset, label))
        return address

    def incoming(self, after: int) -> list[Incoming]:
        rows = self._db.execute(
            "SELECT seq, txid, address, asset, amount, height, seen_at FROM incoming"
            " WHERE seq > ? ORDER BY seq",
            (after,),
        ).fetchall()
        return [
            Incoming(s, t, ad, a, n, self._confirmations(h), seen)
            for s, t, ad, a, n, h, seen in rows
        ]

    def send(self, withdrawal_id: str, asset: str, address: str, amount: int) -> Payout:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                done = self._payout(withdrawal_id)
                if done is None:
                    if amount > self._balance(asset):
                        raise CustodyError(f"the hot wallet holds too little {asset}")
                    # signing and broadcasting are one step here; the txid is derived
                    # from the id so a resend could not make a second transaction anyway
                    txid = hashlib.sha256(f"payout:{withdrawal_id}".encode()).hexdigest()
                    db.execute(
                        "INSERT INTO payouts (withdrawal_id, txid, asset, address, amount,"
                        " state, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (withdrawal_id, txid, asset, address, amount, BROADCAST, time.time()),
                    )
                    done = self._payout(withdrawal_id)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        assert done is not None
        return done

    def payout(self, withdrawal_id: str) -> Payout | None:
        return self._payout(withdrawal_id)

    def _payout(self, withdrawal_id: str) -> Payout | None:
        row = self._db.execute(
            "SELECT withdrawal_id, asset, address, amount, state, txid, height, reason"
            " FROM payouts WHERE withdrawal_id=?",
            (withdrawal_id,),
        ).fetchone()
        return None if row is None else self._as_payout(row)

    def _as_payout(self, row: tuple[object, ...]) -> Payout:
        wid, asset, address, amount, state, txid, height, reason = row
        assert isinstance(height, int | None)
        return Payout(
            str(wid), str(asset), str(address), int(str(amount)), str(state), str(txid),
            self._confirmations(height), str(reason),
        )  # fmt: skip

    def payouts(self) -> list[Payout]:
        rows = self._db.execute(
            "SELECT withdrawal_id, asset, address, amount, state, txid, height, reason"
            " FROM payouts ORDER BY sent_at"
        ).fetchall()
        return [self._as_payout(r) for r in rows]

    def balance(self, asset: str) -> int:
        return self._balance(asset)

    def _balance(self, asset: str) -> int:
        (came,) = self._db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM incoming WHERE asset=? AND height IS NOT NULL",
            (asset,),
        ).fetchone()
        (went,) = self._db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM payouts WHERE asset=? AND state != ?",
            (asset, FAILED),
        ).fetchone()
        return int(came) - int(went)

    def summary(self) -> dict[str, object]:
        """Height, and per asset: balance, deposits and payouts by state."""
        out: dict[str, object] = {"height": self.height()}
        for asset in sorted(set(self.networks)):
            pending = self._db.execute(
                "SELECT COUNT(*) FROM incoming WHERE asset=? AND height IS NULL", (asset,)
            ).fetchone()[0]
            states = dict(
                self._db.execute(
                    "SELECT state, COUNT(*) FROM payouts WHERE asset=? GROUP BY state", (asset,)
                ).fetchall()
            )
            out[asset] = {"balance": self._balance(asset), "deposits_in_mempool": pending,
                          "payouts": states}  # fmt: skip
        return out

    def tick(self) -> None:
        self.mine_due()

    def close(self) -> None:
        self._db.close()
