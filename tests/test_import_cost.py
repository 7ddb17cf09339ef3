"""Every `synthmed` process pays its imports: the heavy libraries load only where a command uses them.

SDV and SDMetrics (with PyTorch under them) take ~4-5 s to import, and opendp.prelude pulls in
opendp.extras (scikit-learn, SciPy, Polars: ~2.7 s). A command that never fits an SDV model or scores a
release (validate, prepare, releases list, generators list, a dp_mst release) must not pay for them.
Checked in a fresh interpreter, where ``sys.modules`` shows what an import really loaded.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("sdv", "sdmetrics", "torch", "rdt", "copulas", "sklearn", "scipy", "opendp.extras")


def _loaded_after(code: str) -> list[str]:
    """The HEAVY top-level packages in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["synthmed.cli", "synth.pipeline", "synth.generators"])
def test_importing_the_cli_or_the_pipeline_loads_no_heavy_library(module: str) -> None:
    assert _loaded_after(f"import {module}") == []


def test_listing_the_generators_loads_no_heavy_library() -> None:
    """`synthmed generators list` still names every generator, the SDV-backed ones included."""
    code = ("from synth.generators import describe_generators\n"
            "names = {r['name'] for r in describe_generators()}\n"
            "assert {'gaussian_copula', 'ctgan', 'tvae', 'hierarchical', 'hma', 'par', 'dp_mst', 'cart', 'copy', 'independent'} <= names, names")
    assert _loaded_after(code) == []


def test_a_dp_mst_generator_loads_no_heavy_library() -> None:
    """Building the DP generator and converting its budget (OpenDP's measurements) needs no opendp.extras."""
    code = ("from synth.generators import get_generator\n"
            "from synth.generators.dp_accounting import epsilon_for_rho\n"
            "assert get_generator('dp_mst', epsilon=1.0).get_params()['epsilon'] == 1.0\n"
            "assert epsilon_for_rho(0.01, 1e-6) > 0")
    assert _loaded_after(code) == []
