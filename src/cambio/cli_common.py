"""Pieces the command-line modules share: the data-directory option, opening an existing
data directory, and progress bars that only draw on a terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

if TYPE_CHECKING:
    from cambio.runtime.datadir import DataDir

DATA_OPTION = click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("cambio-data"),
    show_default=True,
    help="The exchange's data directory (journal, snapshots, read models).",
)


def existing(data_dir: Path) -> DataDir:
    """The data directory at `data_dir`, which must exist (tools never create one)."""
    from cambio.runtime.datadir import DataDir

    data = DataDir(data_dir)
    if not data.exists():
        raise click.ClickException(f"{data_dir} is not a cambio data directory")
    return data


@contextmanager
def progress(label: str) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """(advance, set_total) callbacks drawing a progress bar on a terminal, else nothing."""
    if not sys.stderr.isatty():
        yield (lambda n: None), (lambda n: None)
        return
    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield (lambda n: bar.advance(task, n)), (lambda n: bar.update(task, total=n))
