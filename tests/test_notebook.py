"""The Andorra walk-through notebook runs top to bottom and shows the right numbers.

The notebook is copied into a temporary folder and executed there with nbclient (so its
``out/andorra`` outputs land in that folder); the printed parish count and total population
are compared with the input files read here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient
from shipped import ANDORRA_FACILITIES, ANDORRA_PARISHES, ANDORRA_PLACES

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "audit_andorra.ipynb"


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout")


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("notebook")
    copy = folder / NOTEBOOK.name
    shutil.copy(NOTEBOOK, copy)
    nb = nbformat.read(copy, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    return nb, folder


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_prints_parishes_and_population(executed):
    nb, _ = executed
    text = "\n".join(_stdout(c) for c in nb.cells if c.cell_type == "code")
    parishes = json.loads(ANDORRA_PARISHES.read_text("utf-8"))
    places = json.loads(ANDORRA_PLACES.read_text("utf-8"))
    total = sum(f["properties"]["population"] for f in places["features"])
    assert round(total) == 85015
    facilities = json.loads(ANDORRA_FACILITIES.read_text("utf-8"))
    assert (f"{len(parishes['features'])} parishes, {len(facilities['features'])} facilities, "
            f"{len(places['features'])} population places") in text
    assert "7 parishes, 10 facilities, 410 population places" in text
    assert "total population 85,015" in text
    assert "every standard met: False" in text


def test_notebook_summary_outputs_and_map(executed):
    nb, folder = executed
    text = "\n".join(_stdout(c) for c in nb.cells if c.cell_type == "code")
    # the DRIVE-15 share it prints equals the covered share of units.csv written by the notebook
    units = pd.read_csv(folder / "out" / "andorra" / "units.csv")
    drive = units[units["rule_id"] == "DRIVE-15"]
    share = drive["covered_population"].sum() / drive["population"].sum()
    assert f"DRIVE-15: {share:.1%} of residents within 15 minutes' drive" in text
    beyond = drive["population"].sum() - drive["covered_population"].sum()
    assert f"{beyond:,.0f} residents beyond 15 minutes' drive" in text
    for name in ("results.gpkg", "units.csv", "map.html", "manifest.json"):
        assert (folder / "out" / "andorra" / name).is_file()
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    html = "".join(o.get("data", {}).get("text/html", "") for o in last.outputs)
    assert "iframe" in html or "leaflet" in html.lower()
