"""Benchmark cambio's public API end to end: REST AddOrder/s and WebSocket v2 add_order/s
sustained, with per-order acknowledgement latency, driven by separate load processes over
loopback.

One command: ``.venv/bin/python bench/api.py`` (``--help`` for the options).

What it does:

1. Starts ``cambio serve --port 0`` on a fresh data directory (on the repository's disk,
   never tmpfs, so every group commit pays a real ``fdatasync``), or attaches to the server
   already running on ``--data DIR``. By default (``--pin``) the server is pinned to CPU 0
   and the load processes to the other CPUs, so on a 2-core machine the exchange gets one
   core and the load the other.
2. Creates ``--accounts`` funded accounts with ``cambio admin`` (``--tier unlimited`` when
   that option exists, so Kraken's per-pair order rate limiter lets the flow through), an
   API key per REST client and a WebSocket token per account.
3. Runs each phase in ``--processes`` separate load processes (``multiprocessing``, spawn),
   started together: a ``--warmup`` that is not counted, then ``--duration`` seconds
   measured, then up to ``--drain`` seconds for the last answers.

   * ``rest``: ``--rest-clients`` HTTP/1.1 keep-alive clients (httpx), each signing its own
     ``POST /0/private/AddOrder`` with its own key and a counter nonce, one request at a
     time (closed loop).
   * ``ws``: ``--connections`` WebSocket v2 connections, each with ``--window`` add_order
     requests outstanding (closed loop: every acknowledgement sends the next one), or, with
     ``--rate R``, an open loop that sends R orders/s in total on a fixed schedule whatever
     the answers do, round-robin over the connections: the latency at a given offered load,
     which is not the latency at saturation.

   Latency is per order, from just before the request is written to the moment its
   answer (matched by ``req_id``, or the HTTP response) is read, on ``time.monotonic_ns``.
   An order counts when it was sent inside the measured window; ``ops/s`` is the orders
   acknowledged with success divided by the window. Errors are answers with
   ``success: false`` (or a non-empty ``error``); lost orders had no answer by the end of
   the drain.

The order flow keeps the book bounded and never runs out of funds: each client repeats
resting buy, resting sell (GTC limits 0.1 to 5.0 USD either side of 40,000), a buy IOC and
a sell IOC 6 USD through the mid, all for 0.001 BTC. An IOC takes the best opposite order
or expires; it meets its own account's orders with self-trade prevention cancel-oldest
(that order is cancelled, the IOC goes on), so every IOC removes at least one resting order
while the book crosses it, and the book stays small.

Reported per phase: orders sent, acknowledged, errors (the first few strings), lost,
sustained ops/s, latency p50/p90/p99/p99.9/max, CPU use during the window of the server
(its main thread, the event loop, and its other threads: journal writer, read-model
projection), of the load processes and of everything else on the machine, and the
server's average group commit (commands per journal write). ``--json`` adds one JSON line
with all of it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from array import array
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

REPO = Path(__file__).resolve().parent.parent
FALLBACK_SCRATCH = REPO / ".bench-tmp"
CAMBIO = [sys.executable, "-m", "cambio"]
CLK_TCK = os.sysconf("SC_CLK_TCK")
PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99.9", 0.999))

# the order flow (BTC/USD: tick 0.1 USD, prices sent as integer ticks)
MID = 400_000  # 40,000.0 USD
LEVELS = 50  # resting orders 1..50 ticks from the mid
THROUGH = 60  # IOC orders 60 ticks through the mid
QTY = "0.001"
ADD_ORDER = "/0/private/AddOrder"


# ---------------------------------------------------------------------- order flow
class OrderFlow:
    """One client's endless order stream: resting buy, resting sell, buy IOC, sell IOC."""

    def __init__(self, seed: int) -> None:
        self.n = seed * 4  # each client starts on its own levels

    def next(self) -> tuple[str, str, bool]:
        """(side, price text, ioc) of the next order."""
        k = self.n
        self.n += 1
        step = k & 3
        level = 1 + (k >> 2) * 17 % LEVELS
        if step == 0:
            side, ticks, ioc = "buy", MID - level, False
        elif step == 1:
            side, ticks, ioc = "sell", MID + level, False
        elif step == 2:
            side, ticks, ioc = "buy", MID + THROUGH, True
        else:
            side, ticks, ioc = "sell", MID - THROUGH, True
        return side, f"{ticks // 10}.{ticks % 10}", ioc

    def ws_text(self, token: str, req_id: int) -> str:
        side, price, ioc = self.next()
        tif = ',"time_in_force":"ioc","stp_type":"cancel_oldest"' if ioc else ""
        return (
            '{"method":"add_order","params":{"order_type":"limit","side":"'
            f'{side}","order_qty":{QTY},"symbol":"BTC/USD","limit_price":{price}{tif},'
            f'"token":"{token}"}},"req_id":{req_id}}}'
        )

    def rest_body(self, nonce: int) -> bytes:
        side, price, ioc = self.next()
        tif = "&timeinforce=IOC&stptype=cancel-oldest" if ioc else ""
        return (
            f"nonce={nonce}&ordertype=limit&pair=XBTUSD&price={price}&type={side}&volume={QTY}{tif}"
        ).encode()


def sign(path: str, nonce: int, body: bytes, secret: bytes) -> str:
    """Kraken's API-Sign: HMAC-SHA512(secret, path + SHA256(nonce + body)), base64."""
    inner = hashlib.sha256(str(nonce).encode() + body).digest()
    return base64.b64encode(
        hmac.new(secret, path.encode() + inner, hashlib.sha512).digest()
    ).decode()


# ---------------------------------------------------------------------- load processes
@dataclass
class LoadSpec:
    """What one load process runs (pickled to it)."""

    phase: str  # "rest" or "ws"
    api_url: str
    clients: list[tuple[str, str]]  # rest: (api_key, api_secret); ws: (token, "")
    window: int
    rate: float  # orders/s for this process; 0: closed loop
    warmup: float
    duration: float
    drain: float
    cpus: list[int] | None
    seed: int


@dataclass
class LoadResult:
    sent: int = 0  # sent inside the measured window
    acked: int = 0  # of those, answered with success
    acked_in_window: int = 0  # successes received inside the window (the throughput)
    errors: Counter[str] = field(default_factory=Counter)
    lost: int = 0  # of those, unanswered at the end of the drain
    latency_ns: bytes = b""  # array('q') of the acknowledged ones
    lag_ns: bytes = b""  # open loop: how late each send was against its schedule
    cpu_s: float = 0.0  # this process's CPU time during the measured window
    total_sent: int = 0


class Loader:
    def __init__(self, spec: LoadSpec, progress: Any) -> None:
        self.spec = spec
        self.progress = progress
        self.result = LoadResult()
        self.latency = array("q")
        self.lag = array("q")
        self.answered = 0
        self.rest_in_flight: dict[int, int] = {}  # REST client -> monotonic ns sent
        self.next_id = spec.seed * 1_000_000_000
        self.t0 = self.w0 = self.w1 = 0
        self.cpu0 = 0.0

    def in_window(self, sent_ns: int) -> bool:
        return self.w0 <= sent_ns < self.w1

    def count_sent(self, sent_ns: int) -> None:
        self.result.total_sent += 1
        if self.w0 <= sent_ns < self.w1:
            self.result.sent += 1

    def record(self, sent_ns: int, now_ns: int, error: str | None) -> None:
        self.answered += 1
        if error is None and self.w0 <= now_ns < self.w1:
            self.result.acked_in_window += 1
        if not self.w0 <= sent_ns < self.w1:
            return
        if error is None:
            self.result.acked += 1
            self.latency.append(now_ns - sent_ns)
        else:
            self.result.errors[error] += 1

    async def main(self, ready: Any, start_at: Any) -> LoadResult:
        spec = self.spec
        if spec.phase == "ws":
            conns = [await WsConn.open(self, token) for token, _ in spec.clients]
        else:
            conns = []
        ready.put(os.getpid())
        while start_at.value == 0:
            await asyncio.sleep(0.002)
        self.t0 = start_at.value
        self.w0 = self.t0 + int(spec.warmup * 1e9)
        self.w1 = self.w0 + int(spec.duration * 1e9)
        await sleep_until(self.t0)
        tasks = [asyncio.create_task(self._report())]
        if spec.phase == "ws":
            tasks += [asyncio.create_task(c.receive()) for c in conns]
            if spec.rate > 0:
                tasks.append(asyncio.create_task(self._pace(conns)))
            else:
                for c in conns:
                    for _ in range(spec.window):
                        await c.send()
        else:
            tasks += [
                asyncio.create_task(self._rest_client(key, secret, i))
                for i, (key, secret) in enumerate(spec.clients)
            ]
        await sleep_until(self.w0)
        self.cpu0 = time.process_time()
        await sleep_until(self.w1)
        self.result.cpu_s = time.process_time() - self.cpu0
        deadline = self.w1 + int(spec.drain * 1e9)
        while time.monotonic_ns() < deadline:
            if spec.phase == "ws" and not any(c.pending for c in conns):
                break
            if spec.phase == "rest" and all(t.done() for t in tasks[1:]):
                break
            await asyncio.sleep(0.005)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.result.lost = sum(self.in_window(t) for t in self.rest_in_flight.values())
        for c in conns:
            self.result.lost += sum(self.in_window(t) for t in c.pending.values())
            await c.sock.close()
        self.progress.value = self.answered
        self.result.latency_ns = self.latency.tobytes()
        self.result.lag_ns = self.lag.tobytes()
        return self.result

    async def _report(self) -> None:
        while True:
            self.progress.value = self.answered
            await asyncio.sleep(0.1)

    async def _pace(self, conns: list[WsConn]) -> None:
        """Open loop: order n is due at t0 + n / rate, whatever the answers do."""
        per_ns = 1e9 / self.spec.rate
        n = 0
        while True:
            now = time.monotonic_ns()
            if now >= self.w1:
                return
            due = int((now - self.t0) / per_ns) + 1
            while n < due:
                scheduled = self.t0 + int(n * per_ns)
                if scheduled >= self.w1:
                    return
                sent = await conns[n % len(conns)].send()
                if sent >= self.w0:
                    self.lag.append(sent - scheduled)
                n += 1
            await asyncio.sleep(0.001)  # a tick: sends what fell due, in a burst

    async def _rest_client(self, key: str, secret_b64: str, index: int) -> None:
        secret = base64.b64decode(secret_b64)
        flow = OrderFlow(self.spec.seed * 1000 + index)
        nonce = time.time_ns()
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=self.spec.api_url, limits=limits, timeout=30) as cl:
            while time.monotonic_ns() < self.w1:
                nonce += 1
                body = flow.rest_body(nonce)
                headers = {
                    "API-Key": key,
                    "API-Sign": sign(ADD_ORDER, nonce, body, secret),
                    "Content-Type": "application/x-www-form-urlencoded",
                }
                sent = time.monotonic_ns()
                self.count_sent(sent)
                self.rest_in_flight[index] = sent
                try:
                    reply = await cl.post(ADD_ORDER, content=body, headers=headers)
                    errors = reply.json().get("error") or []
                    error = ", ".join(errors) if errors else None
                    if reply.status_code != 200:
                        error = f"HTTP {reply.status_code}: {error or reply.text[:80]}"
                except (httpx.HTTPError, ValueError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                del self.rest_in_flight[index]
                self.record(sent, time.monotonic_ns(), error)


class WsConn:
    """One WebSocket v2 connection: requests in flight by req_id."""

    def __init__(self, loader: Loader, sock: Any, token: str, flow: OrderFlow) -> None:
        self.loader = loader
        self.sock = sock
        self.token = token
        self.flow = flow
        self.pending: dict[int, int] = {}  # req_id -> monotonic ns sent

    @classmethod
    async def open(cls, loader: Loader, token: str) -> WsConn:
        url = loader.spec.api_url.replace("http", "ws", 1) + "/v2"  # http: ws, https: wss
        sock = await connect(url, compression=None, max_queue=None, ping_interval=None)
        msgspec.json.decode(await sock.recv())  # the status message sent on connect
        loader.next_id += 1
        return cls(loader, sock, token, OrderFlow(loader.next_id))

    async def send(self) -> int:
        loader = self.loader
        loader.next_id += 1
        req_id = loader.next_id
        text = self.flow.ws_text(self.token, req_id)
        sent = time.monotonic_ns()
        self.pending[req_id] = sent
        loader.count_sent(sent)
        try:
            await self.sock.send(text)
        except ConnectionClosed as exc:  # the server dropped us: this order is an error
            del self.pending[req_id]
            loader.record(sent, time.monotonic_ns(), f"connection closed: {exc}")
        return sent

    async def receive(self) -> None:
        loader = self.loader
        closed_loop = loader.spec.rate <= 0
        decode = msgspec.json.decode
        with contextlib.suppress(ConnectionClosed):
            async for message in self.sock:
                now = time.monotonic_ns()
                reply = decode(message)
                sent = self.pending.pop(reply.get("req_id", -1), None)
                if sent is None:
                    continue
                error = None if reply.get("success") else str(reply.get("error"))
                loader.record(sent, now, error)
                if closed_loop and now < loader.w1:
                    await self.send()


async def sleep_until(t_ns: int) -> None:
    delay = (t_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)


def loader_main(
    spec: LoadSpec,
    ready: Any,
    results: Any,
    start_at: Any,
    progress: Any,
) -> None:
    """A load process: run the spec on uvloop (when installed), send back the result."""
    if spec.cpus:
        os.sched_setaffinity(0, spec.cpus)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    run: Callable[[Coroutine[Any, Any, LoadResult]], LoadResult]
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    try:
        results.put(run(Loader(spec, progress).main(ready, start_at)))
    except BaseException:
        results.put(traceback.format_exc())
        ready.put(-1)


# ---------------------------------------------------------------------- the server
def is_tmpfs(path: Path) -> bool:
    """Whether the file system holding `path` is tmpfs/ramfs (per /proc/mounts)."""
    best, fstype = "", ""
    real = str(path.resolve())
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            mnt, kind = line.split()[1:3]
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                best, fstype = mnt, kind
    return fstype in ("tmpfs", "ramfs")


def scratch_root() -> Path:
    """The system temp dir if it is on the repository's disk and not tmpfs, else .bench-tmp."""
    tmp = Path(tempfile.gettempdir())
    if tmp.stat().st_dev == REPO.stat().st_dev and not is_tmpfs(tmp):
        return tmp
    FALLBACK_SCRATCH.mkdir(exist_ok=True)
    return FALLBACK_SCRATCH


def read_serve_info(data: Path, pid: int | None = None) -> dict[str, Any] | None:
    try:
        info: dict[str, Any] = json.loads((data / "serve.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if pid is not None and info.get("pid") != pid:
        return None
    return info


def start_server(
    data: Path, log: Path, cpus: list[int] | None
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*CAMBIO, "serve", "--data", str(data), "--port", "0", "--status-page", "off"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if cpus:
        os.sched_setaffinity(proc.pid, cpus)  # before it starts its threads
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"cambio serve exited {proc.returncode}:\n{log.read_text()}")
        info = read_serve_info(data, proc.pid)
        if info is not None:
            return proc, info
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("cambio serve did not start within 120 s")


def stop_server(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def admin_cli(data: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [*CAMBIO, "admin", "--data", str(data), *args], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise SystemExit(f"cambio admin {' '.join(args)} failed:\n{done.stderr}{done.stdout}")
    reply: dict[str, Any] = json.loads(done.stdout)
    return reply


def tier_args(data: Path, *command: str) -> list[str]:
    """``--tier unlimited`` if this cambio's ``admin <command>`` knows the option."""
    done = subprocess.run(
        [*CAMBIO, "admin", "--data", str(data), *command, "--help"], capture_output=True, text=True
    )
    return ["--tier", "unlimited"] if "--tier" in done.stdout else []


@dataclass
class Credentials:
    accounts: list[dict[str, Any]]  # account create replies
    rest_keys: list[tuple[str, str]]  # one (api_key, api_secret) per REST client
    tokens: list[str]  # one WebSocket token per account
    tier: bool


def private_post(api_url: str, key: str, secret: str, method: str) -> dict[str, Any]:
    path = f"/0/private/{method}"
    nonce = time.time_ns()
    body = f"nonce={nonce}".encode()
    headers = {
        "API-Key": key,
        "API-Sign": sign(path, nonce, body, base64.b64decode(secret)),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    reply: dict[str, Any] = httpx.post(api_url + path, content=body, headers=headers).json()
    if reply.get("error"):
        raise SystemExit(f"{method}: {reply['error']}")
    return reply


def make_credentials(data: Path, api_url: str, accounts: int, rest_clients: int) -> Credentials:
    account_tier = tier_args(data, "account", "create")
    key_tier = tier_args(data, "key", "create")
    prefix = f"bench{os.getpid()}-{int(time.time())}"
    funds = ["--deposit", "USD=100000000", "--deposit", "XBT=1000", *account_tier]

    def account(i: int) -> dict[str, Any]:
        return admin_cli(data, "account", "create", f"{prefix}-{i}", *funds)

    def key(i: int) -> dict[str, Any]:
        return admin_cli(data, "key", "create", str(made[i % accounts]["account"]), *key_tier)

    with ThreadPoolExecutor(4) as pool:
        made = list(pool.map(account, range(accounts)))
        keys = list(pool.map(key, range(rest_clients)))
    tokens = []
    for a in made:
        reply = private_post(api_url, a["api_key"], a["api_secret"], "GetWebSocketsToken")
        tokens.append(reply["result"]["token"])
    return Credentials(
        made, [(k["api_key"], k["api_secret"]) for k in keys], tokens, bool(account_tier)
    )


def server_state(admin_url: str, token: str) -> dict[str, Any]:
    reply = httpx.get(
        admin_url + "/v1/state", headers={"Authorization": f"Bearer {token}"}, timeout=60
    ).json()
    state: dict[str, Any] = reply["result"]
    return state


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds used so far by `pid`'s main thread (the event loop) and by its others."""
    out = {"main thread": 0.0, "other threads": 0.0}
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                stat = (task / "stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                name = "main thread" if task.name == str(pid) else "other threads"
                out[name] += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all CPUs, per /proc/stat)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK_TCK  # minus idle and iowait
    return 0.0


# ---------------------------------------------------------------------- a phase
@dataclass
class PhaseReport:
    name: str
    mode: str
    duration: float
    sent: int
    acked: int
    errors: int
    first_errors: list[str]
    lost: int
    ops_per_s: float
    latency_ms: dict[str, float]
    lag_p99_ms: float | None
    server_cpu_pct: float | None
    server_threads_pct: dict[str, float]
    loader_cpu_pct: float
    other_cpu_pct: float  # everything else on the machine during the window
    avg_batch: float | None
    projection_lag: int | None


def percentiles(values: array[int]) -> dict[str, float]:
    if not values:
        return {}
    s = sorted(values)
    n = len(s)
    out = {name: s[min(n - 1, int(q * n))] / 1e6 for name, q in PERCENTILES}
    out["max"] = s[-1] / 1e6
    return out


class Bench:
    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self.server_pid: int | None = None
        self.admin: tuple[str, str] | None = None  # admin url, token
        self.loader_cpus: list[int] | None = None

    def settle(self, timeout: float = 120.0) -> dict[str, Any] | None:
        """The server's state once it has stopped applying commands (an overloaded open
        loop leaves a backlog in the sockets that it still works off), so the next phase
        starts clean."""
        if self.admin is None:
            return None
        state = server_state(*self.admin)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(1.0)
            now = server_state(*self.admin)
            if now["applied_seq"] - state["applied_seq"] <= 2:  # ticks only
                return now
            state = now
        return state

    def run_phase(self, name: str, phase: str, specs: list[LoadSpec]) -> PhaseReport:
        a = self.args
        ctx = mp.get_context("spawn")
        ready, results = ctx.Queue(), ctx.Queue()
        start_at = ctx.Value("q", 0, lock=False)
        counters = [ctx.Value("q", 0, lock=False) for _ in specs]
        procs = [
            ctx.Process(target=loader_main, args=(s, ready, results, start_at, c), name=f"load-{i}")
            for i, (s, c) in enumerate(zip(specs, counters, strict=True))
        ]
        for p in procs:
            p.start()
        try:
            for _ in procs:
                if ready.get(timeout=120) == -1:
                    raise SystemExit(f"a load process failed:\n{results.get(timeout=10)}")
            before = self.admin and server_state(*self.admin)
            t0 = time.monotonic_ns() + 300_000_000
            w0, w1 = t0 + int(a.warmup * 1e9), t0 + int((a.warmup + a.duration) * 1e9)
            start_at.value = t0
            cpu0: dict[str, float] = {}
            cpu1: dict[str, float] = {}
            busy0 = busy1 = own0 = own1 = 0.0
            total = a.warmup + a.duration
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=self.console, transient=True) as bar:
                task = bar.add_task(name, total=total, rate="")
                last_n, last_t = 0, time.monotonic_ns()
                while (now := time.monotonic_ns()) < w1:
                    if not busy0 and now >= w0:
                        busy0, own0 = machine_busy(), time.process_time()
                        if self.server_pid:
                            cpu0 = thread_cpu(self.server_pid)
                    boundary = w0 if now < w0 else w1  # sample CPU use right at both
                    time.sleep(min(0.25, max(0.0005, (boundary - now) / 1e9)))
                    n, t = sum(c.value for c in counters), time.monotonic_ns()
                    rate = (n - last_n) / ((t - last_t) / 1e9)
                    label = "warm-up" if t < w0 else "measuring"
                    bar.update(
                        task,
                        completed=max(0.0, (t - t0) / 1e9),
                        rate=f"{label} {rate:,.0f} orders/s answered",
                    )
                    last_n, last_t = n, t
                busy1, own1 = machine_busy(), time.process_time()
                if self.server_pid:
                    cpu1 = thread_cpu(self.server_pid)
                bar.update(task, description=f"{name}: draining", rate="")
                got: list[LoadResult] = []
                for _ in procs:
                    r = results.get(timeout=a.drain + 120)
                    if isinstance(r, str):
                        raise SystemExit(f"a load process failed:\n{r}")
                    got.append(r)
            after = self.admin and self.settle()
        finally:
            for p in procs:
                p.join(10)
                if p.is_alive():
                    p.terminate()
        latency: array[int] = array("q")
        lag: array[int] = array("q")
        errors: Counter[str] = Counter()
        for r in got:
            latency.frombytes(r.latency_ns)
            lag.frombytes(r.lag_ns)
            errors.update(r.errors)
        window = (w1 - w0) / 1e9
        server_cpu = server_threads = None
        if cpu0 and cpu1:
            server_threads = {k: 100 * (v - cpu0[k]) / window for k, v in cpu1.items()}
            server_cpu = sum(server_threads.values())
        avg_batch = projection_lag = None
        if before and after:
            commits = after["group_commits"] - before["group_commits"]
            applied = after["applied_seq"] - before["applied_seq"]
            avg_batch = applied / commits if commits else None
            projection_lag = after["applied_seq"] - after["projected_seq"]
        lag_stats = percentiles(lag)
        mode = (
            f"{sum(len(s.clients) for s in specs)} clients, closed loop"
            if phase == "rest"
            else (
                f"{sum(len(s.clients) for s in specs)} connections, open loop {a.rate:,.0f}/s"
                if a.rate
                else f"{sum(len(s.clients) for s in specs)} connections × window {a.window}"
            )
        )
        return PhaseReport(
            name=name,
            mode=mode,
            duration=window,
            sent=sum(r.sent for r in got),
            acked=sum(r.acked for r in got),
            errors=sum(errors.values()),
            first_errors=[f"{n} × {e}" for e, n in errors.most_common(5)],
            lost=sum(r.lost for r in got),
            ops_per_s=sum(r.acked_in_window for r in got) / window,
            latency_ms=percentiles(latency),
            lag_p99_ms=lag_stats.get("p99"),
            server_cpu_pct=server_cpu,
            server_threads_pct=server_threads or {},
            loader_cpu_pct=100 * sum(r.cpu_s for r in got) / window,
            other_cpu_pct=max(
                0.0,
                100 * (busy1 - busy0 - (own1 - own0) - sum(r.cpu_s for r in got)) / window
                - (server_cpu or 0.0),
            ),
            avg_batch=avg_batch,
            projection_lag=projection_lag,
        )


def split(items: list[Any], parts: int) -> list[list[Any]]:
    return [items[i::parts] for i in range(parts) if items[i::parts]]


def phase_table(r: PhaseReport) -> Table:
    t = Table(title=f"{r.name} — {r.mode}, {r.duration:.0f} s measured", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("orders sent", f"{r.sent:,}")
    t.add_row("acknowledged", f"{r.acked:,}")
    t.add_row("errors", f"{r.errors:,}" + ("".join(f"\n  {e}" for e in r.first_errors)))
    t.add_row("lost (no answer)", f"{r.lost:,}")
    t.add_row("sustained", f"{r.ops_per_s:,.0f} orders/s")
    if r.latency_ms:
        t.add_row(
            "ack latency ms",
            "  ".join(f"{k} {v:.2f}" for k, v in r.latency_ms.items()),
        )
    if r.lag_p99_ms is not None:
        t.add_row("send lag p99 (open loop)", f"{r.lag_p99_ms:.2f} ms")
    if r.server_cpu_pct is not None:
        threads = ", ".join(f"{k} {v:.0f}%" for k, v in list(r.server_threads_pct.items())[:4])
        t.add_row("server CPU", f"{r.server_cpu_pct:.0f}% of a core ({threads})")
    t.add_row("load processes CPU", f"{r.loader_cpu_pct:.0f}% of a core")
    t.add_row("other CPU use on the machine", f"{r.other_cpu_pct:.0f}% of a core")
    if r.avg_batch is not None:
        t.add_row("avg group commit", f"{r.avg_batch:.1f} commands")
    if r.projection_lag is not None:
        t.add_row("read-model lag at end", f"{r.projection_lag:,} commands")
    return t


def summary_table(reports: list[PhaseReport]) -> Table:
    t = Table(title="summary")
    for col in ("phase", "mode", "orders/s", "p50 ms", "p99 ms", "p99.9 ms", "errors",
                "server CPU", "load CPU", "other CPU"):  # fmt: skip
        t.add_column(col, justify="left" if col in ("phase", "mode") else "right")
    for r in reports:
        lat = r.latency_ms
        t.add_row(
            r.name,
            r.mode,
            f"{r.ops_per_s:,.0f}",
            f"{lat.get('p50', 0):.2f}",
            f"{lat.get('p99', 0):.2f}",
            f"{lat.get('p99.9', 0):.2f}",
            f"{r.errors + r.lost:,}",
            f"{r.server_cpu_pct:.0f}%" if r.server_cpu_pct is not None else "—",
            f"{r.loader_cpu_pct:.0f}%",
            f"{r.other_cpu_pct:.0f}%",
        )
    return t


# ---------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(
        prog="bench/api.py",
        description=doc.split("\n\n")[0],
        epilog="""examples:
  .venv/bin/python bench/api.py                         # both phases, closed loop
  .venv/bin/python bench/api.py --phases ws --rate 20000  # WS latency at 20k orders/s
  .venv/bin/python bench/api.py --connections 64 --window 1 --duration 20
  .venv/bin/python bench/api.py --data cambio-data      # load the server running there
  .venv/bin/python bench/api.py --no-pin --processes 2  # let the OS place everything

Closed loop (the default) measures saturation: throughput is the most the server
acknowledges with that many requests in flight, and latency is then mostly queueing
(Little's law: in flight / throughput). cambio handles one connection's requests one
after another (each waits for its group commit), so a connection adds at most one order
to each group commit: throughput comes from --connections, a --window above 1 only
queues on the server. --rate gives the latency at a given offered load;
if "send lag p99" grows, the load processes could not keep the schedule and the figure
is not trustworthy. A phase reports the server's CPU (per thread) and the load's CPU:
whichever sits at ~100% of its core is the limit.""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--phases", default="rest,ws", help="comma-separated: rest, ws (default: %(default)s)"
    )
    ap.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="measured seconds per phase (default: %(default)s)",
    )
    ap.add_argument(
        "--warmup",
        type=float,
        default=2.0,
        help="seconds of load before measuring (default: %(default)s)",
    )
    ap.add_argument(
        "--drain",
        type=float,
        default=10.0,
        help="seconds to wait for the last answers (default: %(default)s)",
    )
    ap.add_argument(
        "--connections",
        type=int,
        default=64,
        help="WebSocket connections in all (default: %(default)s)",
    )
    ap.add_argument(
        "--window",
        type=int,
        default=2,
        help="add_order requests outstanding per connection, closed loop (default: %(default)s)",
    )
    ap.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="WS open loop: send R orders/s in total on a fixed schedule (default: closed loop)",
    )
    ap.add_argument(
        "--rest-clients",
        type=int,
        default=8,
        help="concurrent REST clients, one request each in flight (default: %(default)s)",
    )
    ap.add_argument(
        "--processes",
        type=int,
        default=max(1, (os.cpu_count() or 2) - 1),
        help="load processes (default: CPUs - 1 = %(default)s)",
    )
    ap.add_argument(
        "--accounts",
        type=int,
        default=4,
        help="trading accounts, connections and clients spread over them (default: %(default)s)",
    )
    ap.add_argument(
        "--data",
        type=Path,
        help="attach to the server running on DATA (or start one there); "
        "default: a fresh temp directory, removed afterwards",
    )
    ap.add_argument(
        "--url", help="public API base URL to load (default: api_url from DATA/serve.json)"
    )
    ap.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=(os.cpu_count() or 1) >= 2,
        help="pin the server to CPU 0 and the load to the others (default: on with 2+ CPUs)",
    )
    ap.add_argument(
        "--keep",
        action="store_true",
        help="keep the temp data directory (the server is stopped cleanly; "
        "`cambio verify --data DIR` audits it)",
    )
    ap.add_argument(
        "--json", action="store_true", help="also print one JSON line with every figure"
    )
    a = ap.parse_args(argv)
    a.phases = [p.strip() for p in a.phases.split(",") if p.strip()]
    if not set(a.phases) <= {"rest", "ws"} or not a.phases:
        ap.error("--phases: rest and/or ws")
    if min(a.connections, a.window, a.rest_clients, a.processes, a.accounts) < 1:
        ap.error("--connections, --window, --rest-clients, --processes, --accounts: at least 1")
    return a


@contextlib.contextmanager
def exchange(
    a: argparse.Namespace, console: Console
) -> Iterator[tuple[Path, dict[str, Any], int | None]]:
    """(data dir, serve.json, pid of a server we started or None), stopped afterwards."""
    ncpu = os.cpu_count() or 1
    server_cpus = [0] if a.pin and ncpu >= 2 else None
    if a.data is not None:
        info = read_serve_info(a.data)
        if info is not None and Path(f"/proc/{info['pid']}").exists():
            console.print(f"attached to the server on {a.data} (pid {info['pid']})")
            yield a.data, info, None
            return
    work = None
    if a.data is None:
        work = Path(tempfile.mkdtemp(prefix="cambio-api-bench-", dir=scratch_root()))
        data = work / "data"
    else:
        data = a.data
    log = work / "serve.log" if work else data.parent / f"{data.name}-serve.log"
    console.print(f"starting cambio serve on {data} (tmpfs: {is_tmpfs(data.parent)}, log {log})")
    proc, info = start_server(data, log, server_cpus)
    try:
        yield data, info, proc.pid
    finally:
        code = stop_server(proc)
        if code != 0:
            console.print(f"[red]cambio serve exited {code}[/red]; log tail:")
            console.print("\n".join(log.read_text(errors="replace").splitlines()[-30:]))
        if work is not None and not a.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif work is not None:
            console.print(f"kept {data} (server log {log})")


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)
    ncpu = os.cpu_count() or 1
    loader_cpus = list(range(1, ncpu)) if a.pin and ncpu >= 2 else None
    reports: list[PhaseReport] = []
    with exchange(a, console) as (data, info, pid):
        if loader_cpus:
            os.sched_setaffinity(0, loader_cpus)
        api_url = a.url or info["api_url"]
        token = (data / "admin.token").read_text().strip()
        creds = make_credentials(data, api_url, a.accounts, a.rest_clients)
        console.print(
            f"{a.accounts} accounts, {a.rest_clients} REST keys"
            f" (rate-limit tier: {'unlimited' if creds.tier else 'option not available'});"
            f" server pid {info['pid']}, load: {a.processes} process(es)"
            f"{f' on CPU {loader_cpus}' if loader_cpus else ''}"
        )
        bench = Bench(a, console)
        bench.server_pid = int(info["pid"])
        bench.admin = (info["admin_url"], token)

        def specs(phase: str, clients: list[tuple[str, str]]) -> list[LoadSpec]:
            groups = split(clients, a.processes)
            return [
                LoadSpec(
                    phase=phase,
                    api_url=api_url,
                    clients=g,
                    window=a.window,
                    rate=a.rate * len(g) / len(clients) if phase == "ws" else 0.0,
                    warmup=a.warmup,
                    duration=a.duration,
                    drain=a.drain,
                    cpus=loader_cpus,
                    seed=i + 1,
                )
                for i, g in enumerate(groups)
            ]

        for phase in a.phases:
            if phase == "rest":
                report = bench.run_phase("REST AddOrder", "rest", specs("rest", creds.rest_keys))
            else:
                ws_clients = [(creds.tokens[i % a.accounts], "") for i in range(a.connections)]
                report = bench.run_phase("WS add_order", "ws", specs("ws", ws_clients))
            console.print(phase_table(report))
            reports.append(report)
        console.print(summary_table(reports))
        if pid is not None and not Path(f"/proc/{pid}").exists():
            console.print("[red]the server died during the run[/red]")
    if a.json:
        print(json.dumps({"phases": [asdict(r) for r in reports]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
