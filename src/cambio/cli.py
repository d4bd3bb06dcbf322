"""The `cambio` command line: `cambio demo` replays a demo stream through the engine.

Only presentation lives here (click for the commands, rich for the tables); the stream
itself is cambio.demo, so tests and benchmarks can use it without a terminal.
"""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from cambio import __version__
from cambio.model.decimals import format_units

HELP = """cambio: a deterministic, journal-driven crypto exchange.

\b
Every input (an order, a cancel, a deposit, an operator's action, the passage
of time) is a command with a sequence number and a timestamp. The engine
applies commands in order and answers with events; state is a pure function
of the command stream, so replaying it always ends in the same state hash.

\b
Start with:
  cambio demo              replay a demo stream and show what happened
  cambio demo --seed 42    ... with another random tail (same seed, same hash)
  cambio COMMAND --help    details of a command
"""


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
