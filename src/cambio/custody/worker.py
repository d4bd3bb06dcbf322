"""The funding worker: moves money between custody and the ledger, one journaled step at
a time, so that a crash anywhere leaves a state it resumes from without paying twice.

Deposits: every transaction custody sees paying an account's deposit address is credited
(a `Deposit` command whose ref is the txid) once it has the asset's confirmations and
deposits of the asset are on. The engine refuses a ref it has seen, so a restart that
credits again changes nothing; on start the worker asks the engine which txids it already
credited instead of re-submitting them.

Withdrawals, each step a command acknowledged before the next starts:

1. ``SendWithdrawal``: from now on the owner cannot cancel it. The engine refuses it
   while the asset's withdrawals are off, which is how a halt holds the queue.
2. ``custody.send(ref, ...)``: idempotent by withdrawal id, so resending after a crash
   between 1 and 3 returns the same payout. Not while withdrawals are off either: a
   halt signs nothing new, but what is already broadcast still settles.
3. ``MarkWithdrawalBroadcast(ref, txid)``: the status shows Settled with its txid.
4. Once custody reports it confirmed, ``CompleteWithdrawal``; if custody reports it
   failed (it will then never confirm), ``ReturnWithdrawal(failed=True)`` gives the funds
   back.

Fiat assets (no network) are left to the operator (``cambio admin withdrawal ...``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from cambio.crashpoints import crashpoint
from cambio.custody.adapter import (
    CONFIRMED,
    FAILED,
    CustodyAdapter,
    CustodyError,
    Incoming,
    Payout,
)
from cambio.model.commands import (
    STAGE_QUEUED,
    STAGE_SENT,
    CompleteWithdrawal,
    Deposit,
    MarkWithdrawalBroadcast,
    ReturnWithdrawal,
    SendWithdrawal,
)
from cambio.model.config import MarketConfig
from cambio.model.events import CommandRejected
from cambio.runtime.sequencer import SequencerStopped
from cambio.runtime.service import ExchangeService

log = logging.getLogger("cambio.funding")


class FundingWorker:
    def __init__(
        self,
        service: ExchangeService,
        custody: CustodyAdapter,
        owner_of: Callable[[str], int | None],
        poll_s: float = 1.0,
    ) -> None:
        """`owner_of(address)`: the account a deposit address belongs to (None: not an
        account's, e.g. the exchange's own treasury top-ups)."""
        self.service = service
        self.custody = custody
        self.owner_of = owner_of
        self.poll_s = poll_s
        self.config: MarketConfig = service.config
        self.cursor = 0  # every incoming tx up to here is credited or not an account's
        self.credited: set[str] = set()
        self.started = False
        self.waiting: dict[int, list[Incoming]] = {}  # account -> deposits not credited yet
        self.problems: dict[str, str] = {}  # ref -> last trouble, logged once per change
        self.steps = 0

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except SequencerStopped:
                return
            except Exception:  # the worker must outlive one bad step; it retries
                log.exception("funding step failed; retrying")
            await asyncio.sleep(self.poll_s)

    async def step(self) -> None:
        await asyncio.to_thread(self.custody.tick)
        status = self.service.host.query("status")
        await self._deposits(status["funding"])
        await self._withdrawals(status["funding"])
        self.steps += 1

    # ------------------------------------------------------------------ deposits
    async def _deposits(self, funding: dict[str, list[bool]]) -> None:
        seen = await asyncio.to_thread(self.custody.incoming, self.cursor)
        if not self.started:  # after a restart: what did the journal already credit?
            refs = [tx.txid for tx in seen]
            self.credited.update(self.service.host.query("known_refs", refs))
            self.started = True
        settled = True  # still in the prefix of done transactions
        waiting: dict[int, list[Incoming]] = {}
        for tx in seen:
            account = self.owner_of(tx.address)
            done = account is None or tx.txid in self.credited
            if not done and account is not None:
                spec = self.config.asset(tx.asset)
                if tx.confirmations >= spec.confirmations and funding[spec.id][0]:
                    crashpoint("funding.deposit")
                    cmd = Deposit(account=account, asset=spec.id, amount=tx.amount, ref=tx.txid)
                    await self._run(cmd, tx.txid)
                    crashpoint("funding.credited")
                    self.credited.add(tx.txid)  # credited now, or refused as seen before
                    done = True
                else:
                    waiting.setdefault(account, []).append(tx)
            if settled and done:
                self.cursor = tx.seq
                self.credited.discard(tx.txid)  # behind the cursor: never asked again
            settled = settled and done
        self.waiting = waiting

    def pending_deposits(self, account: int) -> list[Incoming]:
        """The account's deposits custody has seen but the ledger has not credited yet
        (too few confirmations, or deposits off), as of the last step."""
        return self.waiting.get(account, [])

    # ------------------------------------------------------------------ withdrawals
    async def _withdrawals(self, funding: dict[str, list[bool]]) -> None:
        for w in self.service.host.query("withdrawals"):
            spec = self.config.asset(w["asset"])
            if not spec.network:
                continue
            ref, stage = w["ref"], w["stage"]
            if stage in (STAGE_QUEUED, STAGE_SENT) and not funding[spec.id][1]:
                continue  # withdrawals off: sign nothing new; what is broadcast settles
            if stage == STAGE_QUEUED:
                if not await self._run(SendWithdrawal(ref=ref), ref):
                    continue
                crashpoint("funding.sent")
                stage = STAGE_SENT
            if stage == STAGE_SENT:
                payout = await self._send(w)
                if payout is None:
                    continue
                crashpoint("funding.paid")
                await self._run(MarkWithdrawalBroadcast(ref=ref, txid=payout.txid), ref)
                crashpoint("funding.broadcast")
            else:
                payout = await asyncio.to_thread(self.custody.payout, ref)
                if payout is None:  # recorded as broadcast: custody must know it
                    self._trouble(ref, "custody has no payout for a broadcast withdrawal")
                    continue
            await self._settle(ref, payout)

    async def _send(self, w: dict[str, Any]) -> Payout | None:
        try:
            payout = await asyncio.to_thread(
                self.custody.send, w["ref"], w["asset"], w["address"], w["amount"]
            )
        except CustodyError as exc:  # nothing was sent: retried at the next step
            self._trouble(w["ref"], str(exc))
            return None
        self.problems.pop(w["ref"], None)
        return payout

    async def _settle(self, ref: str, payout: Payout) -> None:
        if payout.state == CONFIRMED:
            crashpoint("funding.confirmed")
            await self._run(CompleteWithdrawal(ref=ref, txid=payout.txid), ref)
        elif payout.state == FAILED:
            reason = f"failed on the network: {payout.reason or 'dropped'}"
            await self._run(ReturnWithdrawal(ref=ref, reason=reason, failed=True), ref)

    # ------------------------------------------------------------------ helpers
    async def _run(self, cmd: Any, ref: str) -> bool:
        """Whether the engine took `cmd`; a refusal is logged against `ref`."""
        _, events = await self.service.execute(cmd)
        if events and isinstance(events[0], CommandRejected):
            self._trouble(ref, f"{type(cmd).__name__} refused: {events[0].error}")
            return False
        return True

    def _trouble(self, ref: str, text: str) -> None:
        if self.problems.get(ref) != text:
            self.problems[ref] = text
            log.warning("funding %s: %s", ref, text)
