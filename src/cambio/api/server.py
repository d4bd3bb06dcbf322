"""`cambio serve`: the embedded exchange in one process: core service plus HTTP servers.

Start-up: take the data directory's lock, recover the engine (progress bar on a
terminal), take the monitor's full conservation look, bind the public API and the
loopback operator API, write DIR/serve.json with their URLs and this process's id, then
write DIR/heartbeat.json every `heartbeat_s` seconds (cambio.ops.heartbeat). SIGTERM or
SIGINT: heartbeats say "stopping", stop accepting connections, answer what was already
accepted, journal the last events, write the last heartbeat, a final snapshot, remove
serve.json. A halted sequencer (a failed disk write, a failing engine) stops the process
with exit code 1 and no snapshot: the journal is the truth, and the next start recovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import uvicorn
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from starlette.types import ASGIApp

from cambio import __version__
from cambio.api.admin import admin_app
from cambio.api.keys import KeyStore
from cambio.api.kraken.app import kraken_app
from cambio.api.kraken.history import History
from cambio.custody.adapter import CustodyAdapter
from cambio.custody.backends import open_custody
from cambio.custody.simchain import SimChain
from cambio.custody.worker import FundingWorker
from cambio.ops.heartbeat import FILENAME as HEARTBEAT_FILE
from cambio.ops.heartbeat import Heartbeat
from cambio.ops.metrics import Metrics
from cambio.ops.monitor import Monitor
from cambio.runtime.datadir import DataDir
from cambio.runtime.service import ExchangeService, ServiceOptions
from cambio.status.advisories import Advisories
from cambio.status.launch import ensure as ensure_status_page
from cambio.status.launch import stop as stop_status_page
from cambio.status.service import running as running_status_page
from cambio.upgrade.manager import UpgradeManager

if TYPE_CHECKING:
    from cambio.runtime.demo_bots import DemoBots

log = logging.getLogger("cambio.serve")


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    admin_port: int | None = None  # default: port + 1 (or any free port when port is 0)
    service: ServiceOptions | None = None
    demo: bool = False  # run the demo bots (cambio.runtime.demo_bots) and print a demo key
    demo_rate: float = 4.0  # their commands per second per pair
    ws_backlog: int = 10_000  # WebSocket messages a client may fall behind (feed.BACKLOG)
    price_band_pct: float = 10.0  # cambio.ops.monitor: a trade this far from the reference
    band_window_s: float = 60.0  # ... price, the first trade of a window this long
    breach_policy: str = "cancel_only"  # or "halt"
    status_page: str = "spawn"  # cambio.status.launch: spawn, external (its own) or off
    status_port: int | None = None  # default: port + 2 (or any free port when port is 0)
    custody: str = "none"  # cambio.custody.backends: none, sim or MODULE:CLASS
    chain_block_s: float = 5.0  # with custody "sim": seconds between simulated blocks
    funding_poll_s: float = 1.0  # seconds between the funding worker's steps
    vol_pct: float = 20.0  # cambio.ops.monitor: trades ranging this far (0: no breaker) ...
    vol_window_s: float = 300.0  # ... within this many seconds move the market
    heartbeat_s: float = 1.0  # seconds between writes of DIR/heartbeat.json
    require_2fa_withdrawals: bool = False  # TOTP mandatory to withdraw and add addresses


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: one process runs two servers and stops
    them together, in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server(app: ASGIApp) -> _Server:
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=10,  # a client holding a request open cannot stall a stop
    )
    return _Server(config)


def _recover_with_progress(service: ExchangeService) -> None:
    if not sys.stderr.isatty() or not service.data.journal.exists():
        service.start()
        return
    with Progress(
        TextColumn("recovering: replaying the journal"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("replay", total=None)
        service.start(progress=lambda n: bar.advance(task, n))


async def _start_demo(
    service: ExchangeService, keys: KeyStore, history: History, api_url: str, options: ServeOptions
) -> DemoBots | None:
    """With --demo: start the bots and print the demo account's key."""
    if not options.demo:
        return None
    from cambio.runtime.demo_bots import start_demo

    started = await start_demo(service, keys, api_url, history.last_trade, options.demo_rate)
    if started is None:
        return None
    print(started[1], file=sys.stderr, flush=True)
    return started[0]


def _back_demo_funds(service: ExchangeService, custody: CustodyAdapter | None) -> None:
    """The demo credits its accounts off-chain; a simulated hot wallet that holds the
    same lets their withdrawals be paid (an operator does this with `simchain fund`)."""
    if not isinstance(custody, SimChain):
        return
    supply = service.host.query("totals")["supply"]
    for asset in custody.networks:
        short = supply.get(asset, 0) - custody.balance(asset)
        if short > 0:
            custody.fund(asset, short)
    custody.mine()


async def _status_page(
    data: DataDir, options: ServeOptions
) -> tuple[dict[str, Any], subprocess.Popen[bytes] | None]:
    """The status page serving this data directory: found, started, or none."""
    if options.status_page == "off":
        return {}, None
    if options.status_page == "external":
        return running_status_page(data.root) or {}, None
    port = options.status_port
    if port is None:
        port = options.port + 2 if options.port else 0
    try:
        return await asyncio.to_thread(ensure_status_page, data.root, options.host, port)
    except RuntimeError as exc:  # the exchange runs without its page rather than not at all
        log.error("%s", exc)
        return {}, None


async def serve(data: DataDir, options: ServeOptions) -> int:
    data.create()
    data.lock()
    service = ExchangeService(data, options.service)
    started = time.perf_counter()
    _recover_with_progress(service)
    rec = service.recovered
    assert rec is not None
    print(
        f"recovered seq {rec.journal.last_seq} (snapshot {rec.snapshot_seq} + {rec.replayed} "
        f"replayed at {rec.replay_rate:.0f} commands/s) in {time.perf_counter() - started:.2f} s",
        file=sys.stderr,
    )
    api_sock = _bind(options.host, options.port)
    admin_port = options.admin_port
    if admin_port is None:
        admin_port = options.port + 1 if options.port else 0
    admin_sock = _bind("127.0.0.1", admin_port)
    keys = KeyStore(data.keys)
    history = History(service.config, data.readmodels_url)
    advisories = Advisories(data.root)
    custody = open_custody(options.custody, data.root, service.config, options.chain_block_s)
    worker = None
    if custody is not None:
        worker = FundingWorker(service, custody, keys.deposit_owner, options.funding_poll_s)
    kraken = kraken_app(service, keys, history, options.ws_backlog, custody,
                        options.require_2fa_withdrawals,
                        worker.pending_deposits if worker else None,
                        advisories.current)  # fmt: skip
    api = _server(kraken)
    upgrades = UpgradeManager(service, data)
    monitor = Monitor(service, options.price_band_pct, options.band_window_s,
                      options.breach_policy, options.vol_pct, options.vol_window_s)  # fmt: skip
    monitor.start()  # the full conservation look, before any new command
    monitor.listeners.append(upgrades.on_breach)  # an engine fault rolls a cutover back
    metrics = Metrics(service, lambda: len(kraken.state.feed.status_subscribers), upgrades.status,
                      lambda: monitor.trips)  # fmt: skip
    service.on_ack = metrics.ack.observe
    assert service.sequencer is not None
    service.sequencer.after_batch += [monitor.after_batch, metrics.after_batch]
    admin = _server(admin_app(service, keys, history, data.admin_token(), upgrades, metrics,
                              monitor, options.require_2fa_withdrawals))  # fmt: skip

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    core = loop.create_task(service.run())
    servers = [
        loop.create_task(api.serve(sockets=[api_sock])),
        loop.create_task(admin.serve(sockets=[admin_sock])),
    ]
    while not (api.started and admin.started):
        await asyncio.sleep(0.01)
    heartbeat = Heartbeat(service, data.root / HEARTBEAT_FILE, options.heartbeat_s,
                          lambda: len(kraken.state.feed.status_subscribers),
                          lambda: upgrades.phase, upgrades.figures,
                          lambda: sum(monitor.trips.values()))  # fmt: skip
    heartbeat.start()  # the gateways listen: from here on the heartbeat says so
    status_info, status_proc = await _status_page(data, options)
    watcher = loop.create_task(monitor.watch())
    data.write_serve_info(
        {
            "api_url": _url(api_sock),
            "admin_url": _url(admin_sock),
            "pid": os.getpid(),
            "data_dir": str(data.root),
            "version": __version__,
            "status_url": status_info.get("url"),
            "status_pid": status_info.get("pid"),
        }
    )
    print(f"cambio {__version__} serving {data.root}", file=sys.stderr)
    print(f"  api    {_url(api_sock)}", file=sys.stderr)
    print(f"  admin  {_url(admin_sock)}  (token in {data.admin_token_path})", file=sys.stderr)
    if status_info.get("url"):
        print(f"  status {status_info['url']}  (its own process, pid {status_info['pid']})",
              file=sys.stderr)  # fmt: skip
    demo = await _start_demo(service, keys, history, _url(api_sock), options)
    if demo is not None:
        _back_demo_funds(service, custody)

    funding = loop.create_task(worker.run()) if worker is not None else None

    stopper = loop.create_task(stop.wait())
    await asyncio.wait([core, stopper], return_when=asyncio.FIRST_COMPLETED)
    heartbeat.stopping = True  # said at once: a planned stop, not an outage
    heartbeat.write()
    if demo is not None:  # first, so that none of their commands is cut in half
        await demo.stop()
    if funding is not None:  # between two steps: each is safe to cut (cambio.custody.worker)
        funding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await funding
    # stop taking connections first, so every request already accepted gets its answer
    api.should_exit = admin.should_exit = True
    await asyncio.gather(*servers, return_exceptions=True)
    await service.shutdown()
    code = 0
    failure = None
    try:
        await core
    except BaseException as exc:
        log.critical("exchange halted: %r (restart to recover from the journal)", exc)
        code = 1
        failure = f"exchange halted: {exc!r}"
    stopper.cancel()
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    await heartbeat.stop(failure)  # the last one, while the engine can still answer
    upgrades.close()
    await service.finish()
    keys.close()
    history.close()
    advisories.close()
    if custody is not None:
        custody.close()
    if status_proc is not None:  # a clean stop: ours goes too (one it found stays)
        stop_status_page(status_proc)
    with contextlib.suppress(FileNotFoundError):
        data.serve_json.unlink()
    data.unlock()
    return code


def run(data: DataDir, options: ServeOptions) -> int:
    """Run `serve` on uvloop when it is installed."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve(data, options))
    return uvloop.run(serve(data, options))
