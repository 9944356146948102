
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from covplan.china.dasymetric import coverage_shift, spread_over_raster
from covplan.errors import CoverageError
from covplan.inputs.osm_features import read_admin_boundaries
from rasterio.transform import from_origin
from shipped import LIECHTENSTEIN_PBF, LIECHTENSTEIN_POPULATION

UTM = "EPSG:32632"


def _write(path, values, transform, crs=UTM, nodata=-1.0):
    with rasterio.open(path, "w", driver="GTiff", height=values.shape[0], width=values.shape[1],
                       count=1, dtype="float64", crs=crs, transform=transform,
                       nodata=nodata) as dst:
        dst.write(values.astype("float64"), 1)


def _squares():
    # two 300 m x 300 m units side by side in UTM 32N near Vaduz; cells 100 m
    x0, y0 = 758000.0, 5226000.0
    a = shapely.box(x0, y0 - 300, x0 + 300, y0)
    b = shapely.box(x0 + 300, y0 - 300, x0 + 600, y0)
    units = gpd.GeoDataFrame({"unit_id": ["A", "B"], "population": [900.0, 60.0],
                              "urban_rural": ["urban", None]}, geometry=[a, b], crs=UTM)
    return units.to_crs("EPSG:4326"), from_origin(x0, y0, 100, 100)


def test_spread_by_hand(tmp_path):
    units, transform = _squares()
    values = np.array([
        [1, 2, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, -1, 0, 0, 0],  # nodata cell weighs 0
    ], dtype=float)
    path = tmp_path / "pop.tif"
    _write(path, values, transform)
    cells = spread_over_raster(units, path)
    a = cells[cells["unit_id"] == "A"].set_index("place_id")
    b = cells[cells["unit_id"] == "B"]
    assert len(a) == 9 and len(b) == 9
    # A: weights 1 and 2 of total 3 -> 300 and 600 people, other cells 0
    assert a.loc["A:0:0", "population"] == pytest.approx(300.0)
    assert a.loc["A:0:1", "population"] == pytest.approx(600.0)
    assert (a["method"] == "raster").all()
    # B: all weights 0 -> uniform 60 / 9
    assert np.allclose(b["population"], 60.0 / 9) and (b["method"] == "uniform").all()
    assert a["urban_rural"].eq("urban").all() and (b["ur_source"] == "default").all()
    # control totals preserved
    assert cells.groupby("unit_id")["population"].sum().to_dict() == pytest.approx(
        {"A": 900.0, "B": 60.0})
    # cell A:0:0 centre is at (x0 + 50, y0 - 50)
    centre = gpd.GeoSeries([a.loc["A:0:0", "geometry"]], crs="EPSG:4326").to_crs(UTM).iloc[0]
    assert (centre.x, centre.y) == pytest.approx((758050.0, 5225950.0), abs=1e-3)

    # covered area: the left 200 m of unit A (columns 0-1). A's representative point decides
    # the unit method; the cells say 900 of 900 covered in A (all people are in cols 0-1).
    covered = gpd.GeoSeries([shapely.box(758000, 5225700, 758200, 5226000)], crs=UTM)
    area = covered.to_crs("EPSG:4326").iloc[0]
    rep = units.geometry.representative_point()
    rep_in = [bool(area.intersects(p)) for p in rep]
    shift = coverage_shift(units, cells, area)
    assert shift.loc["A", "covered_cells"] == pytest.approx(900.0)
    assert shift.loc["B", "covered_cells"] == pytest.approx(0.0)
    assert shift.loc["A", "covered_units"] == (900.0 if rep_in[0] else 0.0)
    want_units = (900.0 if rep_in[0] else 0.0) / 960.0
    assert shift.loc["TOTAL", "share_cells"] == pytest.approx(900.0 / 960.0)
    assert shift.loc["TOTAL", "shift_pp"] == pytest.approx(100 * (900 / 960 - want_units))


def test_liechtenstein_municipalities_uniform_raster(tmp_path):
    """Real municipalities and 2014 populations on a uniform 250 m raster: totals preserved,
    each municipality's cells are the cell centres inside it (counted here with shapely)."""
    # the 11 communes
    muni = read_admin_boundaries(LIECHTENSTEIN_PBF, relation_ids=[*range(37, 47), 48])
    pop = pd.read_csv(LIECHTENSTEIN_POPULATION)
    units = muni.merge(pop, left_on="name", right_on="municipality")
    assert len(units) == 11 and units["population_2014_12_31"].sum() == 37370
    units = units.rename(columns={"osm_id": "unit_id", "population_2014_12_31": "population"})
    m = units.to_crs(UTM)
    minx, miny, maxx, maxy = m.total_bounds
    x0, y0 = np.floor(minx / 250) * 250 - 250, np.ceil(maxy / 250) * 250 + 250
    ncol = int((maxx - x0) / 250) + 2
    nrow = int((y0 - miny) / 250) + 2
    path = tmp_path / "uniform.tif"
    _write(path, np.ones((nrow, ncol)), from_origin(x0, y0, 250, 250))
    cells = spread_over_raster(units, path)
    got = cells.groupby("unit_id")["population"].sum()
    for row in units.itertuples():
        assert got[str(row.unit_id)] == pytest.approx(row.population)
    # cell counts per municipality, independently
    cx = x0 + 125 + 250 * np.arange(ncol)
    cy = y0 - 125 - 250 * np.arange(nrow)
    gx, gy = np.meshgrid(cx, cy)
    vaduz = m.loc[m["name"] == "Vaduz"].geometry.iloc[0]
    n_vaduz = int(shapely.contains_xy(vaduz, gx.ravel(), gy.ravel()).sum())
    vid = str(m.loc[m["name"] == "Vaduz", "unit_id"].iloc[0])
    assert (cells["unit_id"] == vid).sum() == n_vaduz
    assert n_vaduz == pytest.approx(vaduz.area / 62500, rel=0.1)
    assert np.allclose(cells.loc[cells["unit_id"] == vid, "population"], 5425 / n_vaduz)


def test_bad_inputs(tmp_path):
    units, transform = _squares()
    with pytest.raises(CoverageError, match="cannot read population raster"):
        spread_over_raster(units, tmp_path / "missing.tif")
    with pytest.raises(CoverageError, match="no column 'pop'"):
        spread_over_raster(units, tmp_path / "missing.tif", population_column="pop")
