"""The status service's web side: the HTML page (`pages`, with `uptime`), Statuspage's
public JSON (`api`), the Atom and RSS history (`feeds`), all mounted by `status_app`."""

from cambio.status.web.app import status_app

__all__ = ["status_app"]
