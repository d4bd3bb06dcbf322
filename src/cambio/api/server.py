"""`cambio serve`: the embedded exchange in one process: core service plus HTTP servers.

Start-up: take the data directory's lock, recover the engine (progress bar on a
terminal), bind the public API and the loopback operator API, write DIR/serve.json with
their URLs and this process's id. SIGTERM or SIGINT: stop accepting connections, answer
what was already accepted, journal the last events, write a final snapshot, remove
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
import sys
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import uvicorn
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from starlette.types import ASGIApp

from cambio import __version__
from cambio.api.admin import admin_app
from cambio.api.keys import KeyStore
from cambio.api.kraken.app import kraken_app
from cambio.api.kraken.history import History
from cambio.ops.metrics import Metrics
from cambio.ops.monitor import Monitor
from cambio.runtime.datadir import DataDir
from cambio.runtime.service import ExchangeService, ServiceOptions
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
    kraken = kraken_app(service, keys, history, options.ws_backlog)
    api = _server(kraken)
    upgrades = UpgradeManager(service, data)
    monitor = Monitor(service, options.price_band_pct, options.band_window_s,
                      options.breach_policy)  # fmt: skip
    metrics = Metrics(service, lambda: len(kraken.state.feed.status_subscribers), upgrades.status,
                      lambda: monitor.trips)  # fmt: skip
    service.on_ack = metrics.ack.observe
    assert service.sequencer is not None
    service.sequencer.after_batch += [monitor.after_batch, metrics.after_batch]
    admin = _server(admin_app(service, keys, history, data.admin_token(), upgrades, metrics,
                              monitor))  # fmt: skip

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
    data.write_serve_info(
        {
            "api_url": _url(api_sock),
            "admin_url": _url(admin_sock),
            "pid": os.getpid(),
            "data_dir": str(data.root),
            "version": __version__,
        }
    )
    print(f"cambio {__version__} serving {data.root}", file=sys.stderr)
    print(f"  api    {_url(api_sock)}", file=sys.stderr)
    print(f"  admin  {_url(admin_sock)}  (token in {data.admin_token_path})", file=sys.stderr)
    demo = await _start_demo(service, keys, history, _url(api_sock), options)

    stopper = loop.create_task(stop.wait())
    await asyncio.wait([core, stopper], return_when=asyncio.FIRST_COMPLETED)
    if demo is not None:  # first, so that none of their commands is cut in half
        await demo.stop()
    # stop taking connections first, so every request already accepted gets its answer
    api.should_exit = admin.should_exit = True
    await asyncio.gather(*servers, return_exceptions=True)
    await service.shutdown()
    code = 0
    try:
        await core
    except BaseException as exc:
        log.critical("exchange halted: %r (restart to recover from the journal)", exc)
        code = 1
    stopper.cancel()
    upgrades.close()
    await service.finish()
    keys.close()
    history.close()
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
