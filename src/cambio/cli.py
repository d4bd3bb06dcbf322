"""The `cambio` command line: run the exchange (`serve`), audit it (`verify`, `replay`),
rebuild its read models (`rebuild`), or replay a demo stream (`demo`).

Only presentation lives here (click for the commands, rich for tables and progress bars);
the work is done by the library (cambio.api.server, cambio.runtime, cambio.demo), so tests
and benchmarks use it without a terminal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table

from cambio import __version__, admin_cli, simchain_cli, status_cli, upgrade_cli
from cambio.cli_common import DATA_OPTION, existing, progress
from cambio.model.decimals import format_units

if TYPE_CHECKING:
    from cambio.journal.segments import Journal

HELP = """cambio: a deterministic, journal-driven crypto exchange.

\b
Every input (an order, a cancel, a deposit, an operator's action, the passage
of time) is a command with a sequence number and a timestamp. The engine
applies commands in order and answers with events; state is a pure function
of the command stream, so replaying it always ends in the same state hash.

\b
Start with:
  cambio serve                       run the exchange (data in ./cambio-data)
  cambio serve --demo                ...with trading bots and a funded demo key
  cambio verify --data cambio-data   audit the journal: replay it, check the funds
  cambio demo                        replay a demo stream and show what happened
  cambio upgrade rehearse --candidate PATH   try another engine build on the journal
  cambio status-page                 the status page alone (serve starts one itself)
  cambio status incident open ...    tell customers, by page, feed, mail and webhook
  cambio COMMAND --help              details of a command
"""

ENGINE_OPTION = click.option(
    "--engine",
    type=click.Choice(["inprocess", "subprocess"]),
    default="inprocess",
    show_default=True,
    help="Run the engine in this process (fastest) or in a child process, over the engine "
    "host protocol on a pipe.",
)
ENGINE_PYTHON_OPTION = click.option(
    "--engine-python",
    default=sys.executable,
    show_default="this interpreter",
    help="With --engine subprocess: the Python (virtualenv) whose cambio engine to run.",
)


def _open_journal(path: Path) -> Journal:
    """The journal, read-only; a damaged one is a readable error, not a traceback."""
    from cambio.journal.segments import Journal, JournalCorrupt

    try:
        return Journal(path, readonly=True)
    except JournalCorrupt as exc:
        raise click.ClickException(f"journal damaged: {exc}") from None


@click.group(help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    pass


@main.command()
def version() -> None:
    """Print cambio's version."""
    click.echo(f"cambio {__version__}")


@main.command(short_help="Replay a demo stream through the engine; show what happened.")
@click.option(
    "--steps",
    "-n",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Seeded-random commands to replay after the scripted story.",
)
@click.option(
    "--seed",
    "-s",
    type=int,
    default=7,
    show_default=True,
    help="Seed of the random tail; the same seed always gives the same state hash.",
)
def demo(steps: int, seed: int) -> None:
    """Replay a demo command stream through the engine and show what happened.

    \b
    The stream is: deposits for a few accounts, a scripted story (limit,
    market, iceberg, stop-loss and post-only orders, cancels, a fee
    promotion, a market mode change, ticks of time), then STEPS random
    commands across every pair drawn from SEED. It runs on the packaged
    market configuration, entirely in memory.
    """
    from cambio.demo import NAMES, run_demo  # imports the engine only when needed

    report = run_demo(steps=steps, seed=seed)
    console = Console()
    config = report.config

    story = Table(title="The stream, step by step", title_justify="left", show_lines=False)
    story.add_column("seq", justify="right", style="dim")
    story.add_column("command")
    story.add_column("what the engine said")
    for line in report.story:
        story.add_row(str(line.seq), line.what, line.outcome)
    console.print(story)

    trades = Table(title="Trades per pair", title_justify="left")
    for name in ("pair", "trades", "volume", "low", "high", "last"):
        trades.add_column(name, justify="left" if name == "pair" else "right")
    for index, stats in sorted(report.pairs.items()):
        pair = config.pairs[index]
        base = config.assets[pair.base]
        trades.add_row(
            pair.wsname,
            str(stats.trades),
            f"{format_units(stats.volume, pair.lot_decimals, base.display_decimals)} "
            f"{base.altname}",
            *(format_units(p, pair.pair_decimals) for p in (stats.low, stats.high, stats.last)),
        )
    console.print(trades)

    rejections = Table(title="Rejections", title_justify="left")
    rejections.add_column("error")
    rejections.add_column("count", justify="right")
    for error, count in sorted(report.rejections.items()):
        rejections.add_row(error, str(count))
    console.print(rejections)

    balances = Table(title="Final balances (account 0 collects the fees)", title_justify="left")
    for name in ("account", "asset", "available", "held"):
        balances.add_column(name, justify="left" if name in ("account", "asset") else "right")
    for account, by_asset in sorted(report.balances.items()):
        label = f"{account} {NAMES.get(account, '')}"
        for asset in config.assets:
            avail, held = by_asset[asset.index]
            if avail or held:
                balances.add_row(
                    label,
                    asset.altname,
                    format_units(avail, asset.units, asset.decimals),
                    format_units(held, asset.units, asset.decimals) if held else "",
                )
                label = ""
    console.print(balances)

    events = sum(report.events.values())
    console.print(f"commands {report.commands}, events {events}, trades {report.trades}")
    conserved, ledger = report.funds_conserved(), report.ledger_matches()
    console.print(
        f"funds conserved (per asset, balances = deposits): {'yes' if conserved else 'NO'}"
    )
    console.print(
        f"ledger (every balance = sum of its postings in the events): {'yes' if ledger else 'NO'}"
    )
    console.print(f"state_hash: {report.state_hash}", soft_wrap=True)
    console.print(f"chain:      {report.chain}", soft_wrap=True)
    if not (conserved and ledger):
        raise click.ClickException("the balances do not add up: see above")


@main.command(short_help="Run the exchange: journal, engine, read models, APIs.")
@DATA_OPTION
@click.option("--host", default="127.0.0.1", show_default=True, help="Public API address.")
@click.option("--port", type=int, default=8080, show_default=True, help="Public API port.")
@click.option(
    "--admin-port",
    type=int,
    default=None,
    help="Operator API port, always on 127.0.0.1. [default: PORT+1; any free port if PORT is 0]",
)
@click.option(
    "--tick-interval",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds between the Tick commands that make timers (GTD, dead man's switch) fire.",
)
@click.option(
    "--snapshot-every",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Snapshot after this many commands...",
)
@click.option(
    "--snapshot-interval",
    type=float,
    default=300.0,
    show_default=True,
    help="...or after this many seconds with new commands, whichever comes first.",
)
@ENGINE_OPTION
@ENGINE_PYTHON_OPTION
@click.option(
    "--demo",
    is_flag=True,
    help="Bring the exchange to life: a market maker and a taker on every pair trade "
    "through the same journaled path as any client, so books and trades move; prints a "
    "funded demo account's API key. The bots' accounts are demo-maker and demo-taker.",
)
@click.option(
    "--demo-rate",
    type=click.FloatRange(min=0.1),
    default=4.0,
    show_default=True,
    help="With --demo: the bots' commands per second on each pair (every one is journaled).",
)
@click.option(
    "--ws-backlog",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="WebSocket messages a client may fall behind before it is disconnected (close "
    "code 1008): a slow consumer never slows the engine or the other clients.",
)
@click.option(
    "--price-band",
    "price_band_pct",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Breaker: a trade this many percent away from its market's reference price (the "
    "first trade of the current --band-window) moves the market to cancel_only.",
)
@click.option(
    "--band-window",
    "band_window_s",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds after which the price band's reference is the next trade's price.",
)
@click.option(
    "--breach-policy",
    type=click.Choice(["cancel_only", "halt"]),
    default="cancel_only",
    show_default=True,
    help="What a monitor breach does: the affected markets to cancel_only, or halt all. "
    "A conservation breach (funds that do not add up) always halts.",
)
@click.option(
    "--vol-pct",
    "vol_pct",
    type=click.FloatRange(min=0),
    default=20.0,
    show_default=True,
    help="Breaker: trades in a market ranging (high - low, in percent of the low) more than "
    "this within --vol-window move the market to cancel_only. 0: off.",
)
@click.option(
    "--vol-window",
    "vol_window_s",
    type=click.FloatRange(min=0, min_open=True),
    default=300.0,
    show_default=True,
    help="Seconds of trades (by the journal's time) the volatility breaker looks back over.",
)
@click.option(
    "--heartbeat-s",
    "heartbeat_s",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Seconds between writes of DATA/heartbeat.json, which the status service reads.",
)
@click.option(
    "--custody",
    default="none",
    show_default=True,
    help="Where the coins are. none: deposits are credited and withdrawals paid by the "
    "operator (cambio admin). sim: a simulated chain in DATA/simchain.sqlite (deposit with "
    "`cambio simchain pay`), the funding worker credits confirmed deposits and pays "
    "withdrawals. MODULE:CLASS: your own cambio.custody.adapter.CustodyAdapter. "
    "[default with --demo: sim]",
)
@click.option(
    "--chain-block-s",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="With --custody sim: seconds between simulated blocks (0: only `cambio simchain mine`).",
)
@click.option(
    "--funding-poll",
    "funding_poll_s",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="With a custody backend: seconds between the funding worker's steps (credit "
    "confirmed deposits, send, settle and return withdrawals).",
)
@click.option(
    "--require-2fa-withdrawals",
    is_flag=True,
    help="Make TOTP mandatory to withdraw and to add withdrawal addresses: an account "
    "without it (cambio admin account totp enable) is refused, EGeneral:Permission denied.",
)
@click.option(
    "--status-page",
    type=click.Choice(["spawn", "external", "off"]),
    default="spawn",
    show_default=True,
    help="spawn: start the status page as its own process (it outlives a crash of the "
    "exchange; a clean stop stops it too). external: you run `cambio status-page` (kept "
    "up across planned stops); its URL goes into serve.json. off: none.",
)
@click.option(
    "--status-port",
    type=int,
    default=None,
    help="The spawned status page's port. [default: PORT+2; any free port if PORT is 0]",
)
def serve(
    data_dir: Path,
    host: str,
    port: int,
    admin_port: int | None,
    tick_interval: float,
    snapshot_every: int,
    snapshot_interval: float,
    engine: str,
    engine_python: str,
    demo: bool,
    demo_rate: float,
    ws_backlog: int,
    price_band_pct: float,
    band_window_s: float,
    breach_policy: str,
    vol_pct: float,
    vol_window_s: float,
    heartbeat_s: float,
    custody: str,
    chain_block_s: float,
    funding_poll_s: float,
    require_2fa_withdrawals: bool,
    status_page: str,
    status_port: int | None,
) -> None:
    """Run the whole exchange in one process tree until SIGTERM or Ctrl-C.

    \b
    Every command is journaled (fsync'd) in DATA/journal before the engine
    applies it or anyone hears of it. On start the engine is recovered from
    the newest good snapshot plus the journal after it; a write torn by a
    crash is cut off (it was never acknowledged). On SIGTERM/SIGINT the
    server answers what it accepted, then writes a final snapshot.

    \b
    DATA/serve.json tells clients and tools where it listens:
      {"api_url": ..., "admin_url": ..., "pid": ...}
    The operator API's token is in DATA/admin.token (mode 0600).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from cambio.api.server import ServeOptions, run
    from cambio.journal.segments import JournalCorrupt
    from cambio.runtime.datadir import DataDir, DataDirBusy
    from cambio.runtime.host_protocol import ProtocolError
    from cambio.runtime.recovery import EngineDiverged
    from cambio.runtime.service import ServiceOptions

    if custody not in ("none", "sim") and ":" not in custody:
        raise click.BadParameter("none, sim, or MODULE:CLASS", param_hint="--custody")
    source = click.get_current_context().get_parameter_source("custody")
    if demo and source is click.core.ParameterSource.DEFAULT:
        custody = "sim"  # the demo's deposits and withdrawals go somewhere visible
    options = ServeOptions(
        host=host,
        port=port,
        admin_port=admin_port,
        service=ServiceOptions(
            tick_interval=tick_interval,
            snapshot_every=snapshot_every,
            snapshot_interval=snapshot_interval,
            engine=engine,
            engine_python=engine_python,
        ),
        demo=demo,
        demo_rate=demo_rate,
        ws_backlog=ws_backlog,
        price_band_pct=price_band_pct,
        band_window_s=band_window_s,
        breach_policy=breach_policy,
        vol_pct=vol_pct,
        vol_window_s=vol_window_s,
        heartbeat_s=heartbeat_s,
        custody=custody,
        chain_block_s=chain_block_s,
        funding_poll_s=funding_poll_s,
        require_2fa_withdrawals=require_2fa_withdrawals,
        status_page=status_page,
        status_port=status_port,
    )
    try:
        code = run(DataDir(data_dir), options)
    except DataDirBusy as exc:
        raise click.ClickException(str(exc)) from None
    except JournalCorrupt as exc:
        raise click.ClickException(f"refusing to start: {exc}") from None
    except EngineDiverged as exc:
        raise click.ClickException(
            f"refusing to start: {exc}\nRun the engine build that wrote this journal; engine "
            "changes go through an upgrade (docs/runbook.md)."
        ) from None
    except (OSError, ProtocolError) as exc:
        raise click.ClickException(f"cannot serve: {exc}") from None
    except SQLAlchemyError as exc:
        raise click.ClickException(
            f"cannot open the read models ({data_dir}/readmodels.db): {exc}\nThey are rebuilt "
            "from the journal: move the file away and start again."
        ) from None
    sys.exit(code)


@main.command(short_help="Audit a data directory: replay the journal, check the funds.")
@DATA_OPTION
@click.option(
    "--custody",
    default="auto",
    show_default=True,
    help="The custody backend to reconcile with: auto (the simulated chain if the data "
    "directory has one), none, sim, or MODULE:CLASS (as `serve --custody`).",
)
def verify(data_dir: Path, custody: str) -> None:
    """Replay the journal from genesis in a fresh engine and audit the result.

    \b
    Checks that every event the journal recorded is what the engine produces,
    that the newest snapshot matches the replayed state, and that funds are
    safe: per asset, all balances (the fee account's included) equal deposits
    minus withdrawals; no balance is negative; no order book is crossed.
    With a custody backend (the simulated chain when DATA/simchain.sqlite
    exists, or --custody MODULE:CLASS) the ledger is reconciled with it:
    every deposit credited as the chain paid it, every withdrawal paid at
    most once and never both paid and returned.

    \b
    Prints one JSON object:
      {"ok": true, "commands": n, "state_hash": "...", "per_asset": {...},
       "problems": [], ...}
    and exits 0 only if every check held. Read-only: safe beside a running
    server. A progress bar is drawn on a terminal.
    """
    from cambio.api.keys import KeyStore
    from cambio.custody.backends import open_custody
    from cambio.custody.simchain import FILE
    from cambio.runtime.audit import verify as run_verify

    data = existing(data_dir)
    if custody == "auto":
        custody = "sim" if (data.root / FILE).exists() else "none"
    wallet = open_custody(custody, data.root, data.config())
    keys = KeyStore(data.keys) if wallet is not None else None
    with progress("verifying") as (advance, set_total):
        report = run_verify(
            data, progress=advance, total=set_total, custody=wallet,
            owner_of=keys.deposit_owner if keys else None,
        )  # fmt: skip
    if wallet is not None:
        wallet.close()
    if keys is not None:
        keys.close()
    click.echo(json.dumps(report, indent=2))
    sys.exit(0 if report["ok"] else 1)


@main.command(short_help="Measure how fast an engine replays the journal.")
@DATA_OPTION
@ENGINE_OPTION
@ENGINE_PYTHON_OPTION
def replay(data_dir: Path, engine: str, engine_python: str) -> None:
    """Replay the whole journal from genesis and report the throughput.

    \b
    The figure (commands per second) is the basis of upgrade ETAs: how long a
    candidate engine needs to catch up with N commands. Prints JSON with the
    commands, seconds, commands_per_s, state_hash, chain and any mismatches
    between the recorded events and the replayed ones (exit 1 if any).
    """
    from cambio.runtime.host import open_host
    from cambio.runtime.replay import Replayer

    data = existing(data_dir)
    journal = _open_journal(data.journal)
    host = open_host(engine, data.config(), data.markets, python=engine_python)
    replayer = Replayer(journal, host)
    with progress("replaying") as (advance, set_total):
        set_total(journal.last_seq)
        replayer.run(progress=advance)
    report = {
        "engine": engine,
        "commands": replayer.commands,
        "seconds": round(replayer.seconds, 3),
        "commands_per_s": round(replayer.rate),
        "state_hash": host.state_hash(),
        "chain": host.chain(),
        "mismatches": [m.describe() for m in replayer.mismatches[:20]],
    }
    host.close()
    click.echo(json.dumps(report, indent=2))
    sys.exit(1 if replayer.mismatches else 0)


@main.command(short_help="Rebuild the read models from the journal.")
@DATA_OPTION
def rebuild(data_dir: Path) -> None:
    """Drop the read models (orders, trades, ledger, OHLC, volumes) and project
    them again from the events recorded in the journal.

    Run it with the server stopped (it takes the data directory's lock).
    """
    from cambio.runtime.datadir import DataDirBusy
    from cambio.runtime.projection import project_from_journal
    from cambio.store.projector import ReadModels

    data = existing(data_dir)
    try:
        data.lock()
    except DataDirBusy as exc:
        raise click.ClickException(f"{exc}: stop the server first") from None
    journal = _open_journal(data.journal)
    models = ReadModels(data.readmodels_url, data.config())
    models.reset()
    with progress("rebuilding") as (advance, set_total):
        set_total(journal.outputs_through)
        last = project_from_journal(models, journal, done=lambda seq, n: advance(n))
    models.close()
    click.echo(json.dumps({"ok": True, "projected_seq": last}))


main.add_command(admin_cli.admin)
main.add_command(upgrade_cli.upgrade)
main.add_command(simchain_cli.simchain)
main.add_command(status_cli.status_page)
main.add_command(status_cli.status)
