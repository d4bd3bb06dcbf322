"""Crash-test harness: a real `cambio serve`, concurrent order flow, kill -9, restart, audit.

One `crash_round(seed, workdir)`:

1. starts `cambio serve` on a fresh data directory, armed (by seed) either with a
   crash point (cambio.crashpoints: during a journal write, right after its fsync, in the
   middle of writing a snapshot, in the middle of a read-model transaction) or with a
   timer that sends SIGKILL from outside; a kill during a journal write also tears that
   never-fsynced write, as a power cut would (kill -9 alone keeps the page cache);
2. drives it with several concurrent clients over the operator API (deposits, then
   limit and market orders, cancels) and records every acknowledgement it receives;
3. once the process is dead, restarts it, sends a few more commands, stops it cleanly;
4. checks that every acknowledged command is in the journal with the same events, that
   the read models caught up with the journal, and that `cambio verify` is ok.

Used by tests/runtime/test_crash.py (a fixed set of seeds in CI) and by
scripts/crash_soak.py (as many seeds as you like).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec

from cambio.journal.segments import SEGMENT_MAGIC, Journal, _parse
from cambio.model.events import Trade
from cambio.runtime.datadir import DataDir
from cambio.store.projector import ReadModels

CRASH_POINTS = ("journal.written", "journal.synced", "snapshot.writing", "projection.applying")
ACCOUNTS = range(1, 9)
_json_events = msgspec.json.Encoder()


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    admin_url: str
    token: str
    log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.admin_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )


def start_server(data: Path, env: dict[str, str] | None = None, timeout: float = 30) -> Server:
    log = data.parent / f"{data.name}-{time.monotonic_ns()}.log"
    argv = [sys.executable, "-m", "cambio", "serve", "--data", str(data), "--port", "0",
            "--status-page", "off"]  # fmt: skip
    argv += ["--tick-interval", "0.2", "--snapshot-every", "400"]
    proc = subprocess.Popen(
        argv,
        env={**os.environ, **(env or {})},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    info_path = data / "serve.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"cambio serve exited {proc.returncode}: {log.read_text()}")
        try:
            info = json.loads(info_path.read_text())
            if info["pid"] == proc.pid:
                token = (data / "admin.token").read_text().strip()
                return Server(proc, info["admin_url"], token, log)
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"cambio serve did not start in {timeout} s: {log.read_text()}")


@dataclass
class Acks:
    """What the clients were told: seq -> (command as sent, events as answered)."""

    by_seq: dict[int, tuple[dict[str, Any], list[Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, cmd: dict[str, Any], result: dict[str, Any]) -> None:
        with self.lock:
            assert result["seq"] not in self.by_seq, "two commands acknowledged with one seq"
            self.by_seq[result["seq"]] = (cmd, result["events"])


def random_command(rng: random.Random) -> dict[str, Any]:
    account = rng.choice(ACCOUNTS)
    r = rng.random()
    if r < 0.08:
        return {"type": "cancel_all", "account": account}
    if r < 0.2:
        return {"type": "cancel_order", "account": account, "order_id": rng.randint(1, 400)}
    qty = rng.randint(1, 50) * 10_000  # lots of 1e-8 BTC: 0.0001 .. 0.005 BTC
    order = {"type": "add_order", "account": account, "pair": "XXBTZUSD", "qty": qty}
    order["side"] = rng.randint(0, 1)
    if r < 0.3:
        return {**order, "ordertype": "market"}
    return {**order, "price": 5_000_000 + rng.randint(-50, 50) * 10}  # ~50,000.0 USD


def drive(server: Server, acks: Acks, seed: int, clients: int, seconds: float, fund: bool) -> None:
    """Concurrent clients sending commands until the server dies or time runs out; with
    `fund`, each client first deposits into its share of the accounts."""
    deadline = time.monotonic() + seconds

    def client(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        deposits = [
            {
                "type": "deposit",
                "account": a,
                "asset": asset,
                "amount": amt,
                "ref": f"{seed}-{a}{asset}",
            }
            for a in ACCOUNTS[k::clients]
            for asset, amt in (("ZUSD", 10**17), ("XXBT", 10**16))  # $10M, 1000 BTC
        ]
        with server.client() as http:
            while time.monotonic() < deadline:
                cmd = deposits.pop() if fund and deposits else random_command(rng)
                try:
                    reply = http.post("/v1/commands", json=cmd).json()
                except (httpx.TransportError, json.JSONDecodeError):
                    return  # the server died: this command may or may not be journaled
                assert reply["error"] == [], reply
                acks.add(cmd, reply["result"])

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def crash_round(seed: int, workdir: Path) -> dict[str, Any]:
    """One kill-and-recover round; raises AssertionError on any lost or changed ack."""
    rng = random.Random(seed)
    data = workdir / f"data-{seed}"
    point = CRASH_POINTS[seed % (len(CRASH_POINTS) + 1)] if seed % 5 != 4 else None
    env: dict[str, str] = {}
    if point is not None:
        count = {"snapshot.writing": rng.randint(1, 2)}.get(point, rng.randint(2, 60))
        env["CAMBIO_CRASH"] = f"{point}:{count}"
    acks = Acks()
    server = start_server(data, env)
    killer = None
    if point is None:
        delay = rng.uniform(0.3, 2.0)
        killer = threading.Timer(delay, lambda: server.proc.send_signal(signal.SIGKILL))
        killer.start()
    drive(server, acks, seed, clients=4, seconds=8.0, fund=True)
    if killer is not None:
        killer.join()
    if server.proc.poll() is None:  # the armed point was not reached in time: kill it now
        server.proc.send_signal(signal.SIGKILL)
    assert server.proc.wait(10) == -signal.SIGKILL, server.log.read_text()
    if point == "journal.written":
        tear_last_write(data / "journal", rng)

    # restart: recovery, then more flow, then a clean stop (final snapshot)
    server = start_server(data)
    after = Acks()
    drive(server, after, seed + 10_000, clients=2, seconds=0.7, fund=True)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0, server.log.read_text()
    if point == "journal.written":
        assert "cut off a torn write" in server.log.read_text(), server.log.read_text()
    return check(data, acks, after, point)


def tear_last_write(journal_dir: Path, rng: random.Random) -> None:
    """What a power cut (not just kill -9, which keeps the page cache) does to a write
    that was never fsynced: keep a random prefix of it."""
    segment = sorted(journal_dir.glob("*.seg"))[-1]
    buf = segment.read_bytes()
    start = end = len(SEGMENT_MAGIC)
    while (parsed := _parse(buf, end)) is not None:
        start, end = end, parsed[1]
    assert end == len(buf), "the killed write should be the last, complete record"
    os.truncate(segment, rng.randint(start, end - 1))


def check(data: Path, acks: Acks, after: Acks, point: str | None) -> dict[str, Any]:
    journal = Journal(DataDir(data).journal, readonly=True)
    assert journal.truncated_bytes == 0 and journal.outputs_through == journal.last_seq
    commands = {c.seq: c for c in journal.commands()}
    events = {seq: evs for seq, _, evs in journal.events()}
    for seq, (sent, answered) in sorted({**acks.by_seq, **after.by_seq}.items()):
        assert seq in commands, f"acknowledged seq {seq} is not in the journal"
        cmd = commands[seq]
        stored = {"type": type(cmd).__struct_config__.tag, **msgspec.structs.asdict(cmd)}
        for key, value in sent.items():
            assert stored[key] == value, f"seq {seq}: journal has {stored}, client sent {sent}"
        recorded = json.loads(_json_events.encode(events[seq]))
        assert recorded == answered, f"seq {seq}: recorded {recorded}, answered {answered}"
    if acks.by_seq and after.by_seq:
        assert min(after.by_seq) > max(acks.by_seq), "a seq was reused after the restart"
    models = ReadModels(DataDir(data).readmodels_url, DataDir(data).config())
    try:
        assert models.last_seq() == journal.last_seq, "read models did not catch up"
    finally:
        models.close()
    verify = subprocess.run(
        [sys.executable, "-m", "cambio", "verify", "--data", str(data)],
        capture_output=True,
        text=True,
    )
    report = json.loads(verify.stdout)
    assert verify.returncode == 0 and report["ok"], report
    trades = sum(1 for evs in events.values() for ev in evs if isinstance(ev, Trade))
    return {
        "point": point,
        "acked": len(acks.by_seq),
        "journal": journal.last_seq,
        "trades": trades,
        "commands": report["commands"],
    }
