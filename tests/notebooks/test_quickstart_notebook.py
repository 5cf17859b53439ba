"""The quickstart notebook runs top to bottom in a real kernel, with the user's defaults (UMAP
on, a real cache folder), and its population reaches the UMAP map."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quickstart_runs_top_to_bottom_and_reaches_umap(tmp_path, monkeypatch):
    monkeypatch.delenv("SAMPLELENS_PROJECTION", raising=False)  # the user's default: UMAP
    monkeypatch.setenv("SAMPLELENS_CACHE_DIR", str(tmp_path / "cache"))
    nb_path = tmp_path / "quickstart.ipynb"
    shutil.copy(ROOT / "notebooks" / "quickstart.ipynb", nb_path)
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "import json\n"
        "ready = lens.wait_umap(300)\n"
        "pop = lens.population()\n"
        "print(json.dumps({'ready': ready, 'method': pop['method'], 'n': len(pop['coords']),\n"
        "                  'layer': pop['layer'], 'viewed': lens.viewed}))"
    ))
    started = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    print(f"\nquickstart: {time.perf_counter() - started:.1f} s top to bottom, UMAP included")

    widget_cells = [c for c in nb.cells if c.cell_type == "code" and any(
        "application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in c.outputs)]
    assert widget_cells, "no cell displayed a widget"
    report = json.loads(nb.cells[-1].outputs[-1]["text"].strip().splitlines()[-1])
    assert report == {"ready": True, "method": "umap", "n": 1000,
                      # the stage layer3 returns layer3.0.relu#2's very tensor: one layer
                      "layer": "layer3", "viewed": report["viewed"]}
    assert (tmp_path / "overlay.png").stat().st_size > 0  # lens.export in the notebook
    assert (tmp_path / "loss-map.png").stat().st_size > 0  # a misclassified sample's loss map
    assert any((tmp_path / "cache").rglob("*.npz")), "the features were not cached on disk"
