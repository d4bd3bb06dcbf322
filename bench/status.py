"""Status page under a crowd: `python bench/status.py [--clients 64] [--seconds 10]`.

During an incident everyone reloads the status page at once. This builds a data
directory whose status store looks like a busy exchange's (6 markets, 12 funding
components, 90 days of status changes, 60 incidents and maintenances with timelines),
runs a real `cambio status-page` process on it, with its one-second cache and without,
and drives it with concurrent HTTP clients (httpx, keep-alive) for `/` (the HTML with its
uptime bars) and `/api/v2/summary.json`. Prints requests/s and latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.progress import Progress

from cambio.model.config import load_config
from cambio.runtime.datadir import DataDir
from cambio.status.components import catalogue
from cambio.status.store import StatusStore

DAY = 86_400.0


def build(root: Path, seed: int = 7) -> None:
    DataDir(root).create()
    rng = random.Random(seed)
    config = load_config()
    store = StatusStore(root / "status" / "status.db")
    now = time.time()
    start = now - 90 * DAY
    store.sync_components(catalogue(config), start)
    keys = [c["key"] for c in store.components() if not c["is_group"]]
    t = start
    while t < now:  # a change somewhere about every 6 hours, back to normal soon after
        key = rng.choice(keys)
        store.set_status(key, rng.choice(["partial_outage", "degraded_performance",
                                           "under_maintenance", "major_outage"]), t)  # fmt: skip
        store.set_status(key, "operational", t + rng.uniform(60, 7200))
        t += rng.uniform(3600, 12 * 3600)
    for i in range(60):
        at = start + rng.uniform(0, 90 * DAY)
        kind = "maintenance" if i % 4 == 0 else "incident"
        done = "completed" if kind == "maintenance" else "resolved"
        iid = store.create_incident({"kind": kind, "name": f"Event {i}", "status": "scheduled"
                                     if kind == "maintenance" else "investigating",
                                     "impact": "minor"}, "Looking into it.",
                                    rng.sample(keys, 2), at)  # fmt: skip
        for k in range(3):
            store.add_update(iid, done if k == 2 else "identified" if kind == "incident"
                             else "in_progress", f"Update {k} " + "text " * 30,
                             at + 600 * (k + 1))  # fmt: skip
    store.close()


async def drive(url: str, path: str, clients: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def one() -> None:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                reply = await client.get(path)
                reply.raise_for_status()
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(one() for _ in range(clients)))
    q = statistics.quantiles(latencies, n=100)
    return {"requests_per_s": round(len(latencies) / seconds), "p50_ms": round(q[49] * 1e3, 1),
            "p99_ms": round(q[98] * 1e3, 1)}  # fmt: skip


def run(root: Path, cache_s: float, clients: int, seconds: float) -> dict[str, object]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cambio", "status-page", "--data", str(root), "--port", "0",
         "--cache-s", str(cache_s)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    info = root / "status" / "status.json"
    deadline = time.monotonic() + 30
    while not (info.exists() and json.loads(info.read_text())["pid"] == proc.pid):
        assert time.monotonic() < deadline and proc.poll() is None, "status-page did not start"
        time.sleep(0.05)
    url = json.loads(info.read_text())["url"]
    try:
        return {path: asyncio.run(drive(url, path, clients, seconds))
                for path in ("/", "/api/v2/summary.json")}  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Progress(transient=True) as bar:
        root = Path(tmp) / "data"
        task = bar.add_task("building the store, then two runs", total=3)
        build(root)
        bar.advance(task)
        results = {}
        for label, cache_s in (("cache 1 s", 1.0), ("no cache", 0.0)):
            results[label] = run(root, cache_s, args.clients, args.seconds)
            bar.advance(task)
    print(json.dumps({"clients": args.clients, "seconds": args.seconds} | results, indent=2))


if __name__ == "__main__":
    main()
