"""The `cambio` command line, driven through click's CliRunner."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from cambio import __version__
from cambio.cli import main

HASH = re.compile(r"^state_hash: ([0-9a-f]{64})$", re.MULTILINE)
CHAIN = re.compile(r"^chain: +([0-9a-f]{64})$", re.MULTILINE)


def run(*args: str) -> str:
    # a fixed, wide terminal so that rich never wraps the phrases looked for below
    result = CliRunner().invoke(main, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def hashes(output: str) -> tuple[str, str]:
    state, chain = HASH.search(output), CHAIN.search(output)
    assert state is not None and chain is not None, output
    return state.group(1), chain.group(1)


def test_demo_prints_trades_rejections_and_a_state_hash() -> None:
    out = run("demo", "--steps", "300")
    assert "Trades per pair" in out
    assert "XBT/USD" in out
    trades = re.search(r"trades (\d+)", out)
    assert trades is not None and int(trades.group(1)) > 0
    for error in (
        "EOrder:Insufficient funds",
        "EOrder:Unknown order",
        "EService:Market in post_only mode",
    ):
        assert error in out
    assert "promotion launch-eth active" in out
    assert "funds conserved (per asset, balances = deposits): yes" in out
    assert "ledger (every balance = sum of its postings in the events): yes" in out
    hashes(out)


def test_same_seed_same_state_hash_and_chain() -> None:
    first = hashes(run("demo", "--steps", "300", "--seed", "11"))
    second = hashes(run("demo", "--steps", "300", "--seed", "11"))
    assert first == second


def test_another_seed_another_history() -> None:
    assert hashes(run("demo", "-n", "300", "-s", "1")) != hashes(
        run("demo", "-n", "300", "-s", "2")
    )


def test_demo_without_random_tail() -> None:
    out = run("demo", "--steps", "0")
    assert "0 seeded-random commands" in out
    hashes(out)


def test_help_and_version() -> None:
    assert "cambio demo" in run("--help")
    assert "--seed" in run("demo", "--help")
    assert run("version").strip() == f"cambio {__version__}"


def test_offline_tools_refuse_a_directory_that_is_not_a_data_directory(tmp_path: Path) -> None:
    for tool in ("verify", "replay", "rebuild"):
        result = CliRunner().invoke(main, [tool, "--data", str(tmp_path / "nothing")])
        assert result.exit_code == 1, (tool, result.output)
        assert "is not a cambio data directory" in result.output
    assert not (tmp_path / "nothing").exists()  # and none of them created it
