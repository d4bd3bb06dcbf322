"""Benchmark engine upgrades: rehearsal speed, cutover pause, rollback, ETA accuracy.

One command (``.venv/bin/python bench/upgrade.py``; ``--orders 100000`` for a quick run):

1. **Production**: a data directory on the bench market (bench/engine.py's
   ``bench_config()``) whose journal holds the funding deposits and N resting limit orders
   (1,000,000 by default: bench/journal.py's cold-start book), with timestamps spread over
   the last hour (so the journal's growth, which the ETA uses, is N per hour), and a
   snapshot at its end.
2. **Rehearsal**: ``cambio upgrade rehearse --from genesis`` with a candidate that is a
   copy of this checkout (a separate process, as any candidate): commands/s over the whole
   journal, and the cutover ETA it predicts.
3. **Cutover**: ``cambio serve`` on that directory (Ticks at the journal's rate, N an
   hour, as the only traffic), then ``upgrade shadow`` (the candidate restores the
   snapshot with its N resting orders) and ``upgrade cutover``. Reported: the server's
   measured pause (target < 100 ms), and the time from the shadow request until the
   shadow follows (the server's own ``following_since``; the CLI's start-up and polling
   are not counted) plus the pause, against the rehearsal's ETA (target within +-20 %).
4. **Rollback**: ``upgrade rollback``: the server's measured pause (target < 1 s), and the
   whole command, which includes the snapshot taken right after.

Prints a table (and ``--json``: one JSON object). The scratch directory is on the
repository's disk (never tmpfs) and removed afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

import engine as eng
import httpx
import journal as jb
from rich.console import Console
from rich.table import Table

from cambio.journal.segments import Journal
from cambio.journal.snapshots import SnapshotStore
from cambio.model.commands import Command
from cambio.model.events import Event
from cambio.runtime.datadir import DataDir
from cambio.runtime.host import InProcessHost

REPO = Path(__file__).resolve().parents[1]
CAMBIO = [sys.executable, "-m", "cambio"]
HOUR_NS = 3600 * 10**9
TARGET_PAUSE_MS = 100.0
TARGET_ROLLBACK_S = 1.0
TARGET_ETA_ERROR = 0.20


def build(data: DataDir, orders: int, bar: jb.Bar) -> int:
    """Journal the deposits and `orders` resting orders with timestamps over the last
    hour, snapshot at the end; the last seq."""
    toml = jb.write_bench_toml(data.root.parent / "markets.toml")
    data.create(markets=toml)
    host = InProcessHost(data.config())
    journal = Journal(data.journal)
    total = orders + 4 * eng.N_ACCOUNTS
    start = time.time_ns() - HOUR_NS
    commands = jb.cold_commands(orders)
    outs: list[list[Event]] = []
    bar.phase(f"building production: {orders:,} resting orders", total)
    while batch := list(islice(commands, jb.COLD_BATCH)):
        cmds: list[Command] = []
        for cmd in batch:
            cmd.ts = start + cmd.seq * HOUR_NS // total
            cmds.append(cmd)
        journal.append(cmds, journal.outputs_through + 1, outs)
        outs = host.apply(cmds)
        bar.advance(len(cmds))
    journal.append([], journal.outputs_through + 1, outs)
    bar.phase("snapshot", 1)
    SnapshotStore(data.snapshots).write(journal.last_seq, host.snapshot())
    journal.close()
    return journal.last_seq


def candidate(root: Path) -> Path:
    """A copy of this checkout's package: a candidate in a directory of its own."""
    target = root / "candidate"
    shutil.copytree(REPO / "src" / "cambio", target / "src" / "cambio",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    return target


def rehearse(data: DataDir, checkout: Path, report: Path) -> dict[str, Any]:
    """Run the rehearsal through the library (the CLI's code path, but with the result)."""
    from cambio.upgrade.candidate import resolve
    from cambio.upgrade.rehearse import rehearse as run
    from cambio.upgrade.report import markdown

    started = time.perf_counter()
    result = run(data, resolve(checkout))
    wall = time.perf_counter() - started
    report.write_text(markdown(result))
    if not result.ok or result.eta is None:
        raise SystemExit(f"the rehearsal was not clean: see {report}")
    eta = result.eta
    return {
        "commands": result.commands,
        "replay_s": round(result.seconds, 2),
        "commands_per_s": round(result.rate),
        "wall_s": round(wall, 1),
        "eta_s": round(eta.total_s, 2),
        "eta_start_s": round(eta.start_s, 2),
        "eta_catch_up_s": round(eta.catch_up_s, 2),
        "eta_pause_ms": round(eta.pause_s * 1000, 2),
        "eta_basis": eta.basis(),
    }


def upgrade(data: DataDir, *args: str) -> dict[str, Any]:
    out = subprocess.run([*CAMBIO, "upgrade", *args, "--data", str(data.root)],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"cambio upgrade {' '.join(args)} failed: {out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def serve(data: DataDir, log: Path, tick_s: float) -> subprocess.Popen[bytes]:
    args = ["serve", "--data", str(data.root), "--port", "0", "--status-page", "off",
            "--tick-interval", str(tick_s),
            "--snapshot-interval", "100000", "--snapshot-every", "100000000"]  # fmt: skip
    proc = subprocess.Popen([*CAMBIO, *args], stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while (
        not data.serve_json.exists() or json.loads(data.serve_json.read_text())["pid"] != proc.pid
    ):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"cambio serve did not start: see {log}")
        time.sleep(0.1)
    return proc


def live(data: DataDir, checkout: Path, work: Path, orders: int, bar: jb.Bar) -> dict[str, Any]:
    bar.phase("serving (recovering the snapshot)", 1)
    # traffic as the journal grew: N commands an hour, as Ticks (the ETA assumes it)
    proc = serve(data, work / "serve.log", max(0.002, HOUR_NS / 1e9 / orders))
    try:
        bar.phase("shadow: the candidate restores the snapshot and catches up", 1)
        asked = time.time()  # the server's clock: the machine's
        upgrade(data, "shadow", "--candidate", str(checkout))
        # polled over HTTP, not with the CLI: a Python start-up per poll would take the
        # CPU the candidate needs
        info = json.loads(data.serve_json.read_text())
        auth = {"Authorization": f"Bearer {data.admin_token()}"}
        while True:
            reply = httpx.get(info["admin_url"] + "/v1/upgrade", headers=auth, timeout=60)
            shadow = reply.json()["result"]["shadow"]
            if shadow["state"] == "following":
                break
            if shadow["state"] not in ("starting", "catching_up"):
                raise SystemExit(f"the shadow is {shadow['state']}: see {work / 'serve.log'}")
            time.sleep(0.5)
        bar.phase("cutover", 1)
        cut = upgrade(data, "cutover")
        bar.phase("verifying, then rollback", 1)
        time.sleep(2)
        rolled_started = time.perf_counter()
        back = upgrade(data, "rollback", "--reason", "benchmark")
        rolled = time.perf_counter() - rolled_started
    finally:
        proc.terminate()
        proc.wait(600)
    # what the ETA predicts: the shadow's start and catch-up, then the pause (the time an
    # operator waits between seeing it follow and typing cutover is not the system's)
    ready = shadow["following_since"] - asked
    return {
        "shadow_ready_s": round(ready, 2),
        "shadow_start_timings_s": shadow["start_timings_s"],
        "cutover_wall_s": round(ready + cut["cutover"]["pause_ms"] / 1000, 2),
        "cutover_pause_ms": cut["cutover"]["pause_ms"],
        "rollback_pause_ms": back["rollback"]["pause_ms"],
        "rollback_command_s": round(rolled, 2),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Targets: cutover pause < 100 ms with 1M resting orders; rollback < 1 s; "
        "ETA within +-20 %% of the measured cutover.",
    )
    p.add_argument("--orders", type=int, default=1_000_000, help="resting orders (1M)")
    p.add_argument("--tmp-dir", type=Path, help="scratch directory (default: on the repo's disk)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="cambio-upgrade-bench-", dir=jb.scratch_root(a.tmp_dir)))
    bar = jb.Bar(enabled=sys.stderr.isatty() and not a.json, quiet=a.json)
    try:
        data = DataDir(work / "data")
        last_seq = build(data, a.orders, bar)
        checkout = candidate(work)
        bar.phase(f"rehearsing {last_seq:,} commands from genesis", 1)
        rehearsal = rehearse(data, checkout, work / "rehearsal.md")
        measured = live(data, checkout, work, a.orders, bar)
    finally:
        bar.close()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    error = (rehearsal["eta_s"] - measured["cutover_wall_s"]) / measured["cutover_wall_s"]
    result = {"orders": a.orders, "journal_commands": last_seq, "rehearsal": rehearsal,
              "live": measured, "eta_error": round(error, 3)}  # fmt: skip
    if a.json:
        print(json.dumps(result))
        return 0
    table = Table(title=f"engine upgrade, {a.orders:,} resting orders, {last_seq:,} commands")
    for col in ("measure", "result", "target"):
        table.add_column(col)
    table.add_row("rehearsal", f"{rehearsal['commands_per_s']:,} commands/s "
                  f"({rehearsal['commands']:,} in {rehearsal['replay_s']} s; "
                  f"{rehearsal['wall_s']} s in all)", "")  # fmt: skip
    table.add_row(
        "cutover pause", f"{measured['cutover_pause_ms']} ms", f"< {TARGET_PAUSE_MS:.0f} ms"
    )
    table.add_row("shadow to cutover", f"{measured['cutover_wall_s']} s (the shadow followed "
                  f"after {measured['shadow_ready_s']} s, then the pause)", "")  # fmt: skip
    table.add_row("rehearsal's ETA", f"{rehearsal['eta_s']} s: error {error:+.1%}",
                  f"within +-{TARGET_ETA_ERROR:.0%}")  # fmt: skip
    table.add_row("rollback pause", f"{measured['rollback_pause_ms']} ms",
                  f"< {TARGET_ROLLBACK_S:.0f} s")  # fmt: skip
    table.add_row("rollback command", f"{measured['rollback_command_s']} s (with the snapshot "
                  "taken right after)", "")  # fmt: skip
    Console().print(table)
    print(f"ETA basis: {rehearsal['eta_basis']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
