"""Every example notebook in ``examples/`` runs end to end as a script.

The notebooks are Jupytext percent-format ``.py`` files, so ``python examples/X.py`` runs one
top to bottom. Each runs in a fresh process whose working directory is a temporary folder,
so whatever a notebook writes lands there and never in the repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# Every example is a notebook; the tools that build stores/demo.zarr live beside it in stores/.
NOTEBOOKS = sorted(p.name for p in EXAMPLES.glob("*.py"))

# Together the notebooks take a minute or two (UMAP's numba compilation alone is ~15 s per
# process); they still run in the default `python -m pytest`.
pytestmark = pytest.mark.slow


def _top_level(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()}


def test_examples_are_found() -> None:
    assert {"explore_one_variant.py", "compare_variants.py"} <= set(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_example_runs(name: str, tmp_path: Path) -> None:
    # Some notebooks find the demo store relative to the working directory (as when started
    # from the repository root); a link keeps that working from the temporary folder.
    (tmp_path / "stores").symlink_to(ROOT / "stores", target_is_directory=True)
    before = (_top_level(ROOT), _top_level(EXAMPLES))
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        f"examples/{name} exited with {proc.returncode}\n"
        f"--- stdout (end) ---\n{proc.stdout[-3000:]}\n--- stderr (end) ---\n{proc.stderr[-5000:]}"
    )
    assert (_top_level(ROOT), _top_level(EXAMPLES)) == before, "the example wrote into the repo"
