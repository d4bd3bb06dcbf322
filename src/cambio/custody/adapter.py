"""The custody adapter interface: what the funding worker needs from a wallet backend.

A backend keeps the exchange's coins (a node and hot wallet, a custody provider's API, or
the simulated chain). The contract that keeps funds safe across crashes:

* `send` is idempotent by withdrawal id: asked again for the same id (after a crash, a
  restart, a retry) it returns the payout it already made and never pays twice;
* `payout` answers for any id it was ever asked to send, so a restarted worker finds
  where each withdrawal stopped;
* a payout that is `failed` will never confirm later: only then may the exchange return
  the funds to the account.

Amounts are integers in the asset's engine units (`AssetSpec.units` decimals).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# a payout's states, in order; `failed` ends it without paying
SIGNED, BROADCAST, CONFIRMED, FAILED = "signed", "broadcast", "confirmed", "failed"


class CustodyError(Exception):
    """The backend cannot do this now (e.g. the hot wallet is short); retry later."""


@dataclass(frozen=True)
class Incoming:
    """A transaction paying one of the exchange's deposit addresses."""

    seq: int  # custody's own order of arrival, from 1
    txid: str
    address: str
    asset: str
    amount: int
    confirmations: int  # 0 while in the mempool
    seen_at: float = 0.0  # wall time custody first saw it


@dataclass(frozen=True)
class Payout:
    """A withdrawal as custody sees it."""

    withdrawal_id: str
    asset: str
    address: str
    amount: int
    state: str  # signed, broadcast, confirmed or failed
    txid: str
    confirmations: int
    reason: str = ""  # why it failed


class CustodyAdapter(Protocol):
    def new_address(self, asset: str, label: str) -> str:
        """A fresh deposit address for `asset`; `label` names its owner for custody's
        own records (the exchange keeps which account it belongs to)."""
        ...

    def incoming(self, after: int) -> list[Incoming]:
        """Deposits to our addresses that arrived after `after` (a `seq`; 0: all), in
        arrival order, with their confirmations now."""
        ...

    def send(self, withdrawal_id: str, asset: str, address: str, amount: int) -> Payout:
        """Sign and broadcast a payout, once per withdrawal id (see the module docstring)."""
        ...

    def payout(self, withdrawal_id: str) -> Payout | None:
        """The payout made for `withdrawal_id`, or None if it was never sent."""
        ...

    def payouts(self) -> list[Payout]:
        """Every payout ever made (for reconciliation)."""
        ...

    def balance(self, asset: str) -> int:
        """What the wallet holds: confirmed deposits minus payouts not failed."""
        ...

    def tick(self) -> None:
        """Called before every funding step: a backend that needs a clock uses it (the
        simulated chain mines its blocks here)."""
        ...

    def close(self) -> None: ...
