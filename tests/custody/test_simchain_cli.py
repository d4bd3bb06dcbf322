"""`cambio simchain`: bad input is refused with a clear message and the chain is left
as it was; good input pays in and mines."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cambio.cli import main
from cambio.custody.backends import open_simchain
from cambio.runtime.datadir import DataDir


def run(data: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["simchain", args[0], "--data", str(data), *args[1:]])
    return result.exit_code, result.output


def test_simchain_refuses_bad_input_and_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    DataDir(data).create()
    code, out = run(data, "status")
    assert code == 1 and "no simulated chain" in out
    chain = open_simchain(data, DataDir(data).config(), block_s=0)
    address = chain.new_address("XXBT", "account 1")
    for args, expected in (
        (("pay", "bc1qnotours", "1", "--asset", "XBT"), "not one of the exchange's"),
        (("pay", address, "1", "--asset", "DOGE"), "unknown asset"),
        (("pay", address, "0.12345678901234", "--asset", "XBT"), "AMOUNT"),
        (("pay", address, "0", "--asset", "XBT"), "above zero"),
        (("fund", "DOGE", "1"), "unknown asset"),
    ):
        code, out = run(data, *args)
        assert code != 0 and expected in out, (args, out)
    assert chain.incoming(0) == []
    code, out = run(data, "pay", address, "0.5", "--asset", "XBT")
    assert code == 0, out
    code, out = run(data, "mine", "3")
    assert code == 0 and json.loads(out)["height"] == 3
    (tx,) = chain.incoming(0)
    assert (tx.amount, tx.confirmations) == (5 * 10 ** (DataDir(data).config().asset(
        "XXBT").units - 1), 3)  # fmt: skip
