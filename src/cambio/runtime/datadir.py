"""The data directory: where one exchange keeps everything it owns.

    DIR/markets.toml      the market configuration the journal was written under
    DIR/journal/          command journal segments (cambio.journal.segments)
    DIR/snapshots/        engine snapshots (cambio.journal.snapshots)
    DIR/readmodels.db     read models (SQLite; cambio.store)
    DIR/keys.db           accounts and API keys (cambio.api.keys; mode 0600)
    DIR/serve.json        URLs and process ids of the running `cambio serve`
    DIR/admin.token       the operator API's bearer token (mode 0600)
    DIR/serve.lock        held by the running server, so two never share a journal

The configuration is copied in when the directory is created and read from there ever
after: replaying the journal under different markets would not be a replay.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import IO, Any

from cambio.model.config import MarketConfig, load_config


class DataDirBusy(Exception):
    """Another process (a running `cambio serve`) holds this data directory."""


class DataDir:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()
        self.markets = self.root / "markets.toml"
        self.journal = self.root / "journal"
        self.snapshots = self.root / "snapshots"
        self.readmodels = self.root / "readmodels.db"
        self.keys = self.root / "keys.db"
        self.serve_json = self.root / "serve.json"
        self.admin_token_path = self.root / "admin.token"
        self._lock: IO[bytes] | None = None

    @property
    def readmodels_url(self) -> str:
        return f"sqlite:///{self.readmodels}"

    def exists(self) -> bool:
        return self.markets.exists()

    def create(self, markets: Path | None = None) -> None:
        """Create the directory (if new) with `markets` or the packaged configuration."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.markets.exists():
            tmp = self.markets.with_suffix(".tmp")
            if markets is None:
                from importlib import resources

                data = resources.files("cambio.model").joinpath("markets.toml").read_bytes()
                tmp.write_bytes(data)
            else:
                shutil.copyfile(markets, tmp)
            os.replace(tmp, self.markets)

    def config(self) -> MarketConfig:
        if not self.markets.exists():
            raise FileNotFoundError(f"{self.root} is not a cambio data directory (no markets.toml)")
        return load_config(self.markets)

    def lock(self) -> None:
        """Hold the directory for this process until it exits (or `unlock`)."""
        f = (self.root / "serve.lock").open("ab")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise DataDirBusy(f"{self.root} is in use by another cambio process") from None
        self._lock = f

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def admin_token(self) -> str:
        """The operator token, created (mode 0600) on first use."""
        try:
            return self.admin_token_path.read_text().strip()
        except FileNotFoundError:
            pass
        token = secrets.token_urlsafe(32)
        fd = os.open(self.admin_token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        return token

    def write_serve_info(self, info: dict[str, Any]) -> None:
        tmp = self.serve_json.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        os.replace(tmp, self.serve_json)
