"""How ``synthmed app`` starts the review app: ``streamlit run app.py`` headless, with the store in the environment."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from synth.store import STORE_ENV

APP_FILE = "app.py"


def app_path() -> Path:
    """``app.py`` beside the ``synthmed`` package (the repository root, or site-packages for a wheel)."""
    return Path(__file__).resolve().parents[2] / APP_FILE


def streamlit_command(store: Path, *, port: int = 8501, address: str | None = None) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that run the app on ``store`` (absolute, so the app's working folder does not matter)."""
    if not 1 <= port <= 65535:
        raise ValueError(f"The 'port' parameter must be in 1..65535; got {port} instead.")
    script = app_path()
    if not script.is_file():
        raise FileNotFoundError(f"the review app {script} is missing: reinstall synthmed (pip install -e .)")
    argv = [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.headless", "true",
        "--server.port", str(port),
        "--server.runOnSave", "false",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
    ]
    if address:
        argv += ["--server.address", address]
    env = {**os.environ, STORE_ENV: str(store.absolute())}
    return argv, env
