"""``python -m cambio`` is the `cambio` command."""

from cambio.cli import main

main()
