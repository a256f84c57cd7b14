"""Every Python snippet and pvx command in the README runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
COMMANDS = [
    line
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    for line in block.splitlines()
    if line.startswith("pvx ")
]


def test_readme_has_snippets_and_commands():
    assert len(SNIPPETS) >= 2
    assert "pvx analyze" in COMMANDS  # the main job, on the demo store


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: s.splitlines()[1][:40])
def test_readme_snippet_runs(snippet, tmp_path):
    # The snippets use the repo-relative demo store path and write to the working directory.
    (tmp_path / "stores").mkdir()
    (tmp_path / "stores" / "demo.zarr").symlink_to(REPO / "stores" / "demo.zarr")
    result = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs(command, tmp_path):
    pvx = Path(sys.executable).with_name("pvx")
    result = subprocess.run(
        [str(pvx), *command.split()[1:]], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    if command == "pvx analyze":
        out = tmp_path / "pvx-report"
        pages = {p.name for p in out.glob("*.html")}
        assert {
            "index.html",
            "attributes.html",
            "pca.html",
            "umap.html",
            "similarity.html",
        } <= pages
        assert (out / "results.zarr").is_dir() and (out / "plotly.min.js").exists()
        assert "using mask strategy token_mean" in result.stdout
