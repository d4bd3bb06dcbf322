"""The engine upgrade inside the running server: shadow, cutover, verify, roll back.

Phases (each transition a journaled `MarkUpgrade` command, so the record says which
engine produced which events, and status pages can follow without anyone typing):

    idle -> (rehearsing -> scheduled) -> shadowing -> in_progress -> verifying -> completed
                 |             |             `-> rolled_back (by hand, or on divergence)
                 `-> aborted   `-> aborted (a check failed: the old engine stays primary)

* **rehearsing**: `cambio upgrade rehearse` beside a running server reports its start,
  progress (with the rehearsal's own ETA) and verdict (with the cutover ETA and basis).
* **scheduled**: the operator announces the window (`cambio upgrade schedule --at`),
  with the clean rehearsal's cutover ETA as its expected length.
* **shadow**: the candidate starts from production's newest snapshot in its own process
  and follows the live stream (cambio.upgrade.shadow). Its first divergence is written
  as a rehearsal report and makes cutover refuse.
* **cutover**, only from a clean shadow that keeps up: pause intake (requests queue,
  none is dropped), wait until the candidate has applied the last command, compare the
  event hash chains, switch the primary, resume. The pause is measured. Any failed check
  resumes with the old engine primary. State hashes are compared where it costs the
  primary nothing: the candidate's restored state against the snapshot it started from
  (a state hash of 1M resting orders takes seconds; the chain, which covers every event
  since genesis, microseconds).
* **verifying**: the old engine keeps shadowing the new primary. A divergence rolls back
  automatically (policy `rollback`) or moves the affected market to cancel_only (policy
  `cancel_only`). So does an engine fault a monitor sees (crossed book, negative balance,
  conservation: `on_breach`, which the server connects to cambio.ops.monitor): the
  monitor has already moved the markets (or halted, for conservation), and policy
  `rollback` also puts the previous engine back, the reason naming the breach.
* **rollback**: the same pause and switch back to the old engine, then a snapshot at
  once, so a restart never replays the new engine's divergent events with the old one.
* **complete**: the old engine is let go.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cambio.engine.snapshot import snapshot_state_hash
from cambio.model.commands import MarkUpgrade, SetMarketMode
from cambio.runtime.datadir import DataDir
from cambio.runtime.host import EngineHost
from cambio.runtime.host_protocol import ProtocolError
from cambio.runtime.service import ExchangeService
from cambio.upgrade.candidate import Candidate, resolve
from cambio.upgrade.changes import load
from cambio.upgrade.rehearse import Divergence, Rehearsal, context_of, newest_snapshot
from cambio.upgrade.report import markdown, new_path
from cambio.upgrade.shadow import Shadow

log = logging.getLogger("cambio.upgrade")
CATCH_UP_S = 30.0  # how long a cutover waits for the shadow to come close before pausing
CLOSE_ENOUGH = 1_000  # commands behind at which a cutover may pause
PAUSE_TIMEOUT_S = 5.0  # the longest a cutover keeps intake paused before giving up
POLICIES = ("rollback", "cancel_only")
# phases from which an upgrade may go on to shadowing
IDLE = ("idle", "rehearsing", "scheduled", "completed", "rolled_back", "aborted")


class Breach(Protocol):
    """What the manager needs of a monitor's alert (cambio.ops.monitor.Alert)."""

    kind: str
    text: str

    @property
    def engine_fault(self) -> bool: ...


class UpgradeRefused(Exception):
    """The step cannot be taken now; the message says why."""


@dataclass
class UpgradeManager:
    service: ExchangeService
    data: DataDir
    phase: str = "idle"
    candidate: Candidate | None = None
    shadow: Shadow | None = None
    policy: str = "rollback"
    cutover: dict[str, Any] | None = None  # the last cutover's figures
    rollback: dict[str, Any] | None = None
    report: str | None = None  # path of the shadow's divergence report
    rehearsing: dict[str, Any] | None = None  # the last rehearsal reported: progress, ETA
    scheduled: dict[str, Any] | None = None  # the announced window
    history: list[dict[str, Any]] = field(default_factory=list)
    _busy: asyncio.Lock = field(default_factory=asyncio.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1))
    _rolling_back: asyncio.Task[None] | None = None  # an automatic rollback under way

    # ------------------------------------------------------------------ reading
    def figures(self) -> dict[str, Any] | None:
        """What the status page shows of an upgrade under way: the rehearsal's progress
        and ETA, the announced window, the shadow's lag; None when idle."""
        if self.phase == "idle" and not self.rehearsing:
            return None
        shadow = self.shadow
        seq = self.service.sequencer
        return {
            "phase": self.phase,
            "rehearsal": self.rehearsing,
            "scheduled": self.scheduled,
            "shadow_lag": shadow.lag(seq.applied_seq) if shadow and seq else None,
        }

    def status(self) -> dict[str, Any]:
        seq = self.service.sequencer
        assert seq is not None
        out: dict[str, Any] = {
            "phase": self.phase,
            "candidate": self.candidate.describe() if self.candidate else None,
            "policy": self.policy,
            "primary_seq": seq.applied_seq,
            "cutover": self.cutover,
            "rollback": self.rollback,
            "report": self.report,
            "rehearsal": self.rehearsing,
            "scheduled": self.scheduled,
            "history": self.history,
            "shadow": None,
        }
        if self.shadow is not None:
            s = self.shadow.status()
            out["shadow"] = {
                "engine": "candidate" if self.phase == "shadowing" else "previous primary",
                "state": s.state,
                "applied_seq": s.applied_seq,
                "lag": self.shadow.lag(seq.applied_seq),
                "following_since": self.shadow.following_since,
                "start_timings_s": self.shadow.timings,
                "declared": s.declared,
                "divergence": _divergence(s.divergence),
                "error": s.error,
            }
        return out

    # ------------------------------------------------------------------ steps
    async def rehearsal(self, report: dict[str, Any]) -> dict[str, Any]:
        """`cambio upgrade rehearse` reporting on a rehearsal it runs beside this server:
        "started" and "finished" are journaled (phase rehearsing), "progress" (done,
        total, rate, eta_s) only shown in the status."""
        kind = report.get("state")
        if kind not in ("started", "progress", "finished"):
            raise UpgradeRefused("a rehearsal report's state is started, progress or finished")
        async with self._busy:
            if kind == "started":
                if self.phase not in IDLE:
                    raise UpgradeRefused(f"an upgrade is {self.phase}: finish it first")
                self.rehearsing = dict(report)
                await self._mark("rehearsing", report, str(report.get("candidate", "")))
            elif self.phase != "rehearsing" or self.rehearsing is None:
                raise UpgradeRefused("no rehearsal was reported as started")
            else:
                self.rehearsing |= report
                if kind == "finished":
                    await self._mark("rehearsing", report, str(self.rehearsing["candidate"]))
            return self.status()

    async def schedule(self, at: datetime, note: str) -> dict[str, Any]:
        """Announce a cutover window (journaled phase scheduled): when (`at`, with its
        zone: the admin API checks), and for how long by
        the last clean rehearsal's ETA, with its basis, for the status page to show."""
        async with self._busy:
            rehearsal = self.rehearsing or {}
            if self.phase not in IDLE or rehearsal.get("verdict") != "clean":
                raise UpgradeRefused(
                    "schedule after a clean rehearsal run beside this server "
                    "(cambio upgrade rehearse --data DIR --candidate PATH)"
                )
            detail = {
                "at": at.astimezone(UTC).isoformat(),
                "expected_s": rehearsal.get("cutover_eta_s"),
                "basis": rehearsal.get("basis"),
                "note": note,
            }
            await self._mark("scheduled", detail, str(rehearsal.get("candidate", "")))
            self.scheduled = detail
            return self.status()

    async def start_shadow(self, path: str, from_snapshot: bool = True) -> dict[str, Any]:
        async with self._busy:
            if self.phase not in IDLE:
                raise UpgradeRefused(f"an upgrade is {self.phase}: abort or finish it first")
            loop = asyncio.get_running_loop()
            asked = time.perf_counter()
            try:
                candidate = await loop.run_in_executor(None, resolve, Path(path))
            except Exception as exc:
                raise UpgradeRefused(str(exc)) from None
            changes = load(candidate.declared_changes())
            seq = self.service.sequencer
            assert seq is not None
            found = time.perf_counter()
            start_seq, body = 0, None
            if from_snapshot:  # a big snapshot takes a while to read: not on the loop
                start_seq, body = await loop.run_in_executor(
                    None, newest_snapshot, self.data, seq.applied_seq
                )
            read = time.perf_counter()

            def make_host() -> EngineHost:
                return candidate.host(self.data.markets, body)

            start_hash: Future[str] | None = None
            if body is not None:  # judged by this build while the candidate restores it
                start_hash = self._pool.submit(snapshot_state_hash, body)
            shadow = Shadow(make_host, self.data.journal, start_seq, 0, {}, changes, start_hash)
            shadow.timings |= {"find_candidate": round(found - asked, 3),
                               "read_snapshot": round(read - found, 3)}  # fmt: skip
            shadow.on_divergence = lambda d: self._report(candidate, start_seq, body, d)
            # no await between these: the shadow's stream starts exactly after follow_from
            shadow.follow_from, shadow.known = seq.follow(shadow.push)
            shadow.start()
            self.candidate, self.shadow, self.report = candidate, shadow, None
            await self._mark("shadowing", {"start_seq": start_seq, "from": shadow.follow_from})
            return self.status()

    async def cut_over(self, policy: str = "rollback") -> dict[str, Any]:
        if policy not in POLICIES:
            raise UpgradeRefused(f"policy must be one of {', '.join(POLICIES)}")
        async with self._busy:
            shadow, seq = self.shadow, self.service.sequencer
            assert seq is not None
            if self.phase != "shadowing" or shadow is None:
                raise UpgradeRefused("no candidate is shadowing: start one with upgrade shadow")
            await self._until_close(shadow)
            await self._mark("in_progress", {"lag": shadow.lag(seq.applied_seq)})
            started = time.perf_counter()
            await seq.pause()
            try:
                target = seq.applied_seq
                new = await self._take(shadow, target)
                old = self.service.host
                # every event since genesis, hashed: equal chains from an equal start
                # state (checked when the shadow started) mean equal states, and cost
                # microseconds where a state hash of a big book costs seconds
                ours, theirs = old.chain(), new.chain()
                if ours != theirs:
                    new.close()
                    self.shadow = None
                    raise _Abort(
                        f"the event hash chains differ at seq {target}: primary {ours}, "
                        f"candidate {theirs}"
                    )
                self.service.switch_host(new)
                self.shadow = self._warm(old, target)
            except (_Abort, ProtocolError) as exc:  # ProtocolError: the candidate died
                seq.resume()
                self._drop_shadow()
                await self._mark("aborted", {"reason": str(exc)})
                raise UpgradeRefused(
                    f"cutover aborted, the old engine stays primary: {exc}"
                ) from None
            finally:
                seq.resume()
            pause_ms = (time.perf_counter() - started) * 1000
            self.policy = policy
            self.cutover = {"seq": target, "pause_ms": round(pause_ms, 3), "chain": ours}
            await self._mark("verifying", self.cutover)
            return self.status()

    async def roll_back(self, reason: str) -> dict[str, Any]:
        async with self._busy:
            shadow, seq = self.shadow, self.service.sequencer
            assert seq is not None
            if self.phase != "verifying" or shadow is None:
                raise UpgradeRefused("nothing to roll back to: no cutover is being verified")
            started = time.perf_counter()
            await seq.pause()
            try:
                target = seq.applied_seq
                try:
                    old = await self._take(shadow, target)
                except _Abort as exc:
                    raise UpgradeRefused(
                        f"rollback impossible, the new engine stays: {exc}"
                    ) from None
                replaced = self.service.switch_host(old)
                self.shadow = None
            finally:
                seq.resume()
            pause_ms = (time.perf_counter() - started) * 1000
            # after the pause: a child process holding a big book takes a while to exit
            await asyncio.get_running_loop().run_in_executor(None, replaced.close)
            # the journal's recent events are the new engine's: a snapshot now keeps a
            # restart from replaying them with the old one
            snap = await self.service.snapshot_now()
            self.rollback = {"seq": target, "pause_ms": round(pause_ms, 3), "reason": reason,
                             "snapshot_seq": snap}  # fmt: skip
            await self._mark("rolled_back", self.rollback)
            return self.status()

    async def complete(self) -> dict[str, Any]:
        async with self._busy:
            if self.phase != "verifying":
                raise UpgradeRefused("no cutover is being verified")
            self._drop_shadow()
            await self._mark("completed", self.cutover or {})
            return self.status()

    async def abort(self, reason: str) -> dict[str, Any]:
        async with self._busy:
            if self.phase != "shadowing":
                raise UpgradeRefused("only a shadowing candidate can be aborted")
            self._drop_shadow()
            await self._mark("aborted", {"reason": reason})
            return self.status()

    def close(self) -> None:
        """At shutdown: let the shadow go (the primary is closed by the service)."""
        self._drop_shadow()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ pieces
    async def _until_close(self, shadow: Shadow) -> None:
        seq = self.service.sequencer
        assert seq is not None
        deadline = time.monotonic() + CATCH_UP_S
        while shadow.state in ("starting", "catching_up", "following"):
            if shadow.state == "following" and shadow.lag(seq.applied_seq) <= CLOSE_ENOUGH:
                break
            if time.monotonic() > deadline:
                raise UpgradeRefused(
                    f"the candidate is {shadow.lag(seq.applied_seq):,} commands behind after "
                    f"{CATCH_UP_S:.0f} s: it cannot keep up"
                )
            await asyncio.sleep(0.01)
        if shadow.state != "following":
            why = shadow.error or (
                f"diverged at seq {shadow.divergence.seq}" if shadow.divergence else shadow.state
            )
            raise UpgradeRefused(f"cutover refused: the candidate shadow {why}")

    async def _take(self, shadow: Shadow, target: int) -> EngineHost:
        """With intake paused: wait for the shadow to apply `target`, then take its engine."""
        seq = self.service.sequencer
        assert seq is not None
        deadline = time.monotonic() + PAUSE_TIMEOUT_S
        while shadow.applied_seq < target:
            if shadow.state in ("failed", "stopped") or time.monotonic() > deadline:
                raise _Abort(f"the shadow reached {shadow.applied_seq}, not {target}")
            if shadow.state == "diverged" and shadow.stop_on_divergence:
                raise _Abort("the shadow diverged")
            await asyncio.sleep(0.0002)
        try:
            host = await asyncio.get_running_loop().run_in_executor(None, shadow.detach)
        except RuntimeError as exc:
            raise _Abort(str(exc)) from None
        seq.after_batch.remove(shadow.push)
        return host

    def _warm(self, old: EngineHost, seq_now: int) -> Shadow:
        """The previous primary, shadowing the new one from where both are."""
        seq = self.service.sequencer
        assert seq is not None
        shadow = Shadow(
            lambda: old,
            self.data.journal,
            seq_now,
            seq_now,
            {},
            stop_on_divergence=False,
            on_divergence=self._on_late_divergence,
        )
        seq.after_batch.append(shadow.push)
        shadow.start()
        return shadow

    def _on_late_divergence(self, d: Divergence) -> None:
        """From the shadow's thread, after a cutover: act by policy, on the loop."""
        loop = self._loop
        assert loop is not None
        reason = f"the new engine diverged from the previous one at seq {d.seq}"
        if self.policy == "rollback":
            loop.call_soon_threadsafe(self._begin_rollback, reason)
        else:
            pair = getattr(d.command, "pair", None)
            loop.call_soon_threadsafe(lambda: loop.create_task(self._halt_pair(pair, reason)))

    def on_breach(self, breach: Breach) -> None:
        """A monitor's alert (on the loop, from the sequencer's hook). One only an engine
        bug makes, during the verification after a cutover, makes the new engine the
        suspect: with policy `rollback` the previous one is put back, as on a divergence.
        Under policy cancel_only the monitor's own action (cancel_only, or a halt) stands.
        Market events (price band, volatility) and lags are no engine's fault."""
        if not breach.engine_fault or self.phase != "verifying" or self.shadow is None:
            return
        reason = f"monitor breach after the cutover: {breach.kind}: {breach.text}"
        if self.policy == "rollback":
            self._begin_rollback(reason)
        else:
            log.error("%s; policy cancel_only: roll back by hand if needed", reason)

    def _begin_rollback(self, reason: str) -> None:
        """Start an automatic rollback on the loop, unless one is under way (a divergence
        and a breach, or a burst of breaches, roll back once)."""
        if self._rolling_back is not None and not self._rolling_back.done():
            return
        self._rolling_back = asyncio.get_running_loop().create_task(self._auto_rollback(reason))

    async def _auto_rollback(self, reason: str) -> None:
        try:
            await self.roll_back(reason)
        except Exception:
            log.exception("automatic rollback failed")

    async def _halt_pair(self, pair: str | None, reason: str) -> None:
        if pair is None:
            log.error("%s; no market to put in cancel_only: roll back by hand", reason)
            return
        await self.service.execute(SetMarketMode(pair=pair, mode="cancel_only", reason=reason))

    def _report(self, candidate: Candidate, start_seq: int, body: bytes | None,
                d: Divergence) -> None:  # fmt: skip
        """From the shadow's thread: the rehearsal's report of the first divergence."""
        try:
            d.context = context_of(
                self.data, lambda snap: candidate.host(self.data.markets, snap), start_seq, body, d
            )
        except Exception:
            log.exception("could not rebuild the state around the divergence")
        result = Rehearsal(candidate, start_seq, d.seq, divergence=d)
        path = new_path(self.data.root, "shadow")
        path.write_text(markdown(result))
        self.report = str(path)

    def _drop_shadow(self) -> None:
        seq, shadow = self.service.sequencer, self.shadow
        if shadow is None:
            return
        if seq is not None and shadow.push in seq.after_batch:
            seq.after_batch.remove(shadow.push)
        shadow.stop()
        self.shadow = None

    async def _mark(self, phase: str, detail: dict[str, Any], label: str | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self.phase = phase
        if label is None:
            label = str(self.candidate.path) if self.candidate else ""
        text = json.dumps(detail, sort_keys=True)
        self.history.append({"phase": phase, "at": time.time(), "detail": detail})
        await self.service.execute(MarkUpgrade(phase=phase, candidate=label, detail=text))
        log.warning("upgrade %s: %s", phase, text)


class _Abort(Exception):
    """A check failed during a pause: resume with the engine that was primary."""


def _divergence(d: Divergence | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {"seq": d.seq, "command": type(d.command).__name__}
