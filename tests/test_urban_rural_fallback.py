"""Urban or rural with no column: the density fallback for points and rasters, and no silence.

The Andorra places (250 m cells of modelled population) are loaded without their urban/rural
column; the fallback's answers are recomputed here from the populations and cell areas.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from covplan.errors import InputWarning
from covplan.inputs.loaders import load_population
from covplan.pipeline import load_inputs
from covplan.scenario import load_scenario
from pyproj import Geod
from shipped import ANDORRA_SCENARIO


def _without_urban_column(tmp_path: Path, extra: str = "") -> Path:
    text = ANDORRA_SCENARIO.read_text("utf-8")
    assert 'urban_rural_column = "urban_rural"\n' in text
    text = text.replace('urban_rural_column = "urban_rural"\n', extra)
    text = text.replace('"../', f'"{ANDORRA_SCENARIO.parent.parent.as_posix()}/')
    path = tmp_path / "andorra_no_class.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_place_by_default_is_said(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inputs = load_inputs(load_scenario(_without_urban_column(tmp_path)))
    assert set(inputs.places["ur_source"]) == {"default"}
    messages = [str(w.message) for w in caught if issubclass(w.category, InputWarning)]
    assert any("every place is rural by default" in m and "place_area_km2" in m
               for m in messages), messages


def test_density_of_points_with_their_area(tmp_path: Path) -> None:
    scenario = _without_urban_column(
        tmp_path, "urban_density_per_km2 = 1500\nplace_area_km2 = 0.0625\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        places = load_inputs(load_scenario(scenario)).places
    assert set(places["ur_source"]) == {"density"}
    expected = np.where(places["population"] / 0.0625 >= 1500, "urban", "rural")
    assert (places["urban_rural"].to_numpy() == expected).all()
    assert 0 < (expected == "urban").sum() < len(places)  # both classes occur


@pytest.mark.parametrize(("crs", "res", "origin"), [
    ("EPSG:4326", 0.01, (1.40, 42.65)),      # geographic cells over Andorra
    ("EPSG:32631", 250.0, (370000.0, 4725000.0)),  # metric cells
])
def test_raster_cells_carry_their_area(tmp_path: Path, crs: str, res: float,
                                       origin: tuple[float, float]) -> None:
    values = np.array([[10.0, 0.0], [5.0, 20.0]], dtype="float32")
    path = tmp_path / "pop.tif"
    transform = rasterio.transform.from_origin(origin[0], origin[1], res, res)
    with rasterio.open(path, "w", driver="GTiff", width=2, height=2, count=1, dtype="float32",
                       crs=crs, transform=transform, nodata=-1) as ds:
        ds.write(values, 1)
    places = load_population(path, kind="raster")
    assert len(places) == 3
    if crs == "EPSG:32631":
        assert places["area_km2"].tolist() == pytest.approx([0.0625] * 3)
        return
    geod = Geod(ellps="WGS84")
    for (row, col), area in zip([(0, 0), (1, 0), (1, 1)], places["area_km2"], strict=True):
        west, north = transform * (col, row)
        east, south = transform * (col + 1, row + 1)
        reference, _ = geod.polygon_area_perimeter([west, east, east, west],
                                                   [south, south, north, north])
        assert area == pytest.approx(abs(reference) / 1e6, rel=5e-3)
