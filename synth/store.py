"""Where synthmed keeps its catalog and releases: --store, else $SYNTHMED_STORE, else ./synthmed-data."""
from __future__ import annotations

import os
from pathlib import Path

STORE_ENV = "SYNTHMED_STORE"
DEFAULT_STORE = Path("synthmed-data")


def resolve_store(store: str | Path | None = None) -> Path:
    """The store folder a command should use (not created here)."""
    if store is not None and str(store) != "":
        return Path(store)
    env = os.environ.get(STORE_ENV)
    return Path(env) if env else DEFAULT_STORE
