"""Each kind of bad input gets one clear error (what, where, how to fix) and writes nothing.

Broken files are made in tmp_path from the real Liechtenstein OSM health POIs and the shipped
boundary layers.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import checks
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from covplan.errors import CoverageError, InputError, InputWarning
from covplan.facility_types import FACILITY_TYPES
from covplan.inputs.loaders import (
    check_facilities_within,
    load_boundaries,
    load_facilities,
    load_population,
)
from shapely.geometry import Point, Polygon
from shipped import LIECHTENSTEIN_MUNICIPALITIES


@pytest.fixture(scope="module")
def li_units() -> gpd.GeoDataFrame:
    return gpd.read_file(LIECHTENSTEIN_MUNICIPALITIES)


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """A work folder with an empty ``out`` folder; afterwards nothing in it may have changed."""
    (tmp_path / "out").mkdir()
    yield tmp_path


def fails(folder: Path, call: Callable[[], object], error: type[Exception] = CoverageError,
          ) -> str:
    """Run a loader that must fail; check nothing was written; return the message."""
    message = checks.fails(folder, call, error)
    assert list((folder / "out").iterdir()) == []
    return message


def _csv(folder: Path, df: pd.DataFrame, name: str = "fac.csv") -> Path:
    path = folder / name
    df.to_csv(path, index=False)
    return path


def test_missing_file(folder):
    msg = fails(folder, lambda: load_facilities(folder / "nope.csv"))
    assert "facilities file not found" in msg and "nope.csv" in msg
    assert "check the path" in msg
    msg = fails(folder, lambda: load_population(folder / "pop.tif", kind="raster"))
    assert "population raster file not found" in msg


def test_empty_layers(folder, pois):
    path = _csv(folder, pois.iloc[0:0])
    msg = fails(folder, lambda: load_facilities(path))
    assert "fac.csv: the facilities layer is empty (no rows)" in msg
    assert "give a file with at least one row" in msg
    geojson = folder / "empty.geojson"
    geojson.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    msg = fails(folder, lambda: load_boundaries(geojson, id_column="id", name_column="n",
                                                level="x"))
    assert "empty.geojson: the boundaries layer is empty (no features)" in msg


def test_missing_coordinates_lists_rows(folder, pois):
    df = pois.copy()
    df["lon"] = df["lon"].astype(object)
    df.loc[1, "lon"] = None
    df.loc[3, "lat"] = np.nan
    path = _csv(folder, df)
    msg = fails(folder, lambda: load_facilities(path), InputError)
    # spreadsheet rows: header is row 1, so data rows 1 and 3 are rows 3 and 5
    assert "fac.csv rows 3, 5: missing coordinates (columns 'lon'/'lat' empty)" in msg
    assert "fill in longitude and latitude or delete those rows" in msg
    # the same in Excel, with row numbers as the spreadsheet shows them
    xlsx = folder / "fac.xlsx"
    df.to_excel(xlsx, index=False)
    msg = fails(folder, lambda: load_facilities(xlsx), InputError)
    assert "fac.xlsx rows 3, 5: missing coordinates" in msg
    # blank lines in a CSV do not shift the line numbers reported
    text = (folder / "fac.csv").read_text(encoding="utf-8").splitlines()
    blank = folder / "blank.csv"
    blank.write_text("\n".join([text[0], "", *text[1:]]) + "\n", encoding="utf-8")
    msg = fails(folder, lambda: load_facilities(blank), InputError)
    assert "blank.csv rows 4, 6: missing coordinates" in msg


def test_non_numeric_coordinates(folder, pois):
    df = pois.astype({"lat": object})
    df.loc[2, "lat"] = "47°10'N"
    path = _csv(folder, df)
    msg = fails(folder, lambda: load_facilities(path), InputError)
    assert "fac.csv row 4, column 'lat': latitude is not a number: \"47°10'N\"" in msg
    assert "plain numbers" in msg


def test_coordinates_outside_the_valid_range(folder, pois):
    df = pois.copy()
    df.loc[0, "lon"] = 195.2
    df.loc[4, "lat"] = -95.0  # the lon column stays small too, but the lat is not "swapped"
    df.loc[4, "lon"] = 120.0
    path = _csv(folder, df)
    msg = fails(folder, lambda: load_facilities(path), InputError)
    assert "2 problem(s) in fac.csv" in msg
    assert "fac.csv row 2, column 'lon': coordinates outside the valid range ±180: 195.2" in msg
    assert "fac.csv row 6, column 'lat': coordinates outside the valid range ±90: -95" in msg
    assert "set crs to the projected system" in msg


def test_swapped_lat_lon_columns(folder):
    # a Chongqing clinic written latitude-first into the lon column
    df = pd.DataFrame({"id": ["a", "b"], "type": ["clinic", "hospital"],
                       "lon": [29.484, 29.50], "lat": [106.482, 106.52]})
    path = _csv(folder, df)
    msg = fails(folder, lambda: load_facilities(path), InputError)
    assert "fac.csv rows 2, 3, column 'lat': columns look swapped" in msg
    assert "latitude column 'lat' holds values beyond ±90 (up to 106.52)" in msg
    assert "swap the columns, or set lon_column='lat', lat_column='lon'" in msg


def test_projected_numbers_in_a_lon_lat_geojson(folder, pois):
    gdf = gpd.GeoDataFrame(pois.drop(columns=["lon", "lat"]),
                           geometry=gpd.points_from_xy(pois["lon"], pois["lat"]), crs=4326)
    gdf = gdf.to_crs(32632).set_crs(4326, allow_override=True)  # metres labelled as degrees
    path = folder / "wrong.geojson"
    gdf.to_file(path, driver="GeoJSON")
    msg = fails(folder, lambda: load_facilities(path), InputError)
    assert "wrong.geojson features 1, 2, 3, 4, 5" in msg
    assert "coordinates outside the valid longitude/latitude range" in msg
    assert "the file's coordinate system is wrong" in msg


def test_shapefile_without_prj(folder, li_units):
    utm = li_units[["unit_id", "name", "geometry"]].to_crs(32632)
    path = folder / "noprj.shp"
    utm.to_file(path, driver="ESRI Shapefile")
    path.with_suffix(".prj").unlink()
    msg = fails(folder, lambda: load_boundaries(path, id_column="unit_id", name_column="name",
                                                level="m"))
    assert "noprj.shp has no coordinate system" in msg
    assert "add the .prj file beside the .shp, or give the crs option" in msg
    # with the crs option it loads
    units = load_boundaries(path, id_column="unit_id", name_column="name", level="m",
                            crs="EPSG:32632")
    assert len(units) == 11
    assert abs(units.total_bounds[0] - li_units.total_bounds[0]) < 1e-6
    # degrees without .prj: read as WGS-84, with a warning
    ll = folder / "ll.shp"
    li_units[["unit_id", "name", "geometry"]].to_file(ll, driver="ESRI Shapefile")
    ll.with_suffix(".prj").unlink()
    with pytest.warns(InputWarning, match="ll.shp has no coordinate system; .* read as WGS-84"):
        assert len(load_boundaries(ll, id_column="unit_id", name_column="name", level="m")) == 11


def test_invalid_polygons_are_repaired_and_reported(folder, li_units):
    gdf = li_units[["unit_id", "name", "population", "geometry"]].copy()
    minx, miny, maxx, maxy = gdf.geometry.iloc[0].bounds
    bowtie = Polygon([(minx, miny), (maxx, maxy), (maxx, miny), (minx, maxy)])
    gdf.loc[0, "geometry"] = bowtie
    path = folder / "bowtie.gpkg"
    gdf.to_file(path, driver="GPKG")
    before = checks.snapshot(folder)
    with pytest.warns(InputWarning, match=r"bowtie.gpkg feature 1: repaired 1 invalid "
                                          r"boundaries geometry with shapely.make_valid"):
        units = load_boundaries(path, id_column="unit_id", name_column="name", level="m")
    assert checks.snapshot(folder) == before
    assert units.is_valid.all()
    assert units.geometry.iloc[0].geom_type == "MultiPolygon"  # the two triangles
    # two triangles meeting at the centre, each a quarter of the bounding box
    assert units.geometry.iloc[0].area == pytest.approx((maxx - minx) * (maxy - miny) / 2,
                                                        rel=1e-12)


def test_unrepairable_polygon_is_an_error(folder, li_units):
    gdf = li_units[["unit_id", "name", "geometry"]].copy()
    gdf.loc[2, "geometry"] = Polygon([(9.5, 47.1), (9.51, 47.11), (9.52, 47.12), (9.5, 47.1)])
    path = folder / "flat.geojson"
    gdf.to_file(path, driver="GeoJSON")
    msg = fails(folder, lambda: load_boundaries(path, id_column="unit_id", name_column="name",
                                                level="m"), InputError)
    assert "flat.geojson feature 3: invalid polygon" in msg
    assert "cannot be repaired" in msg and "Fix geometries" in msg


def test_points_given_as_boundaries(folder, pois):
    gdf = gpd.GeoDataFrame(pois, geometry=gpd.points_from_xy(pois["lon"], pois["lat"]), crs=4326)
    path = folder / "points.geojson"
    gdf.to_file(path, driver="GeoJSON")
    msg = fails(folder, lambda: load_boundaries(path, id_column="id", name_column="name",
                                                level="m"), InputError)
    assert "points.geojson features 1, 2, 3, 4, 5: boundaries must be polygons, found Point" in msg
    csv = _csv(folder, pois)
    msg = fails(folder, lambda: load_boundaries(csv, id_column="id", name_column="name",
                                                level="m"))
    assert "boundaries need polygons" in msg and "GeoJSON, GeoPackage or Shapefile" in msg


def test_empty_geometries_dropped_or_error_if_all(folder, li_units):
    gdf = li_units[["unit_id", "name", "geometry"]].copy()
    gdf.loc[[3, 7], "geometry"] = None
    path = folder / "holes.gpkg"
    gdf.to_file(path, driver="GPKG")
    with pytest.warns(InputWarning, match=r"holes.gpkg features 4, 8: dropped 2 feature\(s\) "
                                          "with an empty geometry"):
        units = load_boundaries(path, id_column="unit_id", name_column="name", level="m")
    assert len(units) == 9
    assert set(li_units["unit_id"]) - set(units["unit_id"]) == {
        li_units["unit_id"].iloc[3], li_units["unit_id"].iloc[7]}
    gdf["geometry"] = None
    none = folder / "none.gpkg"
    gdf.set_crs(4326, allow_override=True).to_file(none, driver="GPKG")
    msg = fails(folder, lambda: load_boundaries(none, id_column="unit_id", name_column="name",
                                                level="m"))
    assert "every feature of the boundaries layer has an empty geometry" in msg


def test_duplicate_facility_ids(folder, pois):
    df = pois.copy()
    df.loc[3, "id"] = "n6245"
    df.loc[4, "id"] = df.loc[2, "id"]
    path = _csv(folder, df)
    msg = fails(folder, lambda: load_facilities(path), InputError)
    dup2 = df.loc[2, "id"]
    assert (f"fac.csv, column 'id': duplicate facility ids: 'n6245' (2, 5), '{dup2}' (4, 6)"
            in msg)
    assert "give every facility its own id" in msg


def test_negative_and_non_numeric_population(folder, li_units):
    gdf = li_units[["unit_id", "name", "population", "geometry"]].astype({"population": object})
    gdf.loc[1, "population"] = -50
    gdf.loc[5, "population"] = "about 3000"
    path = folder / "pop.geojson"
    gdf.to_file(path, driver="GeoJSON")
    msg = fails(folder, lambda: load_boundaries(path, id_column="unit_id", name_column="name",
                                                level="m", population_column="population"),
                InputError)
    assert "2 problem(s) in pop.geojson" in msg
    assert "pop.geojson feature 2, column 'population': negative population: -50" in msg
    assert "must be 0 or more" in msg
    assert ("pop.geojson feature 6, column 'population': population is not a number: "
            "'about 3000'") in msg
    # the same for population points
    pts = pd.DataFrame({"id": ["v1", "v2", "v3"], "population": ["120", "-4", ""],
                        "lon": [9.52, 9.53, 9.54], "lat": [47.13, 47.14, 47.15]})
    csv = _csv(folder, pts, "villages.csv")
    msg = fails(folder, lambda: load_population(csv, kind="points"), InputError)
    assert "villages.csv row 3, column 'population': negative population: -4" in msg
    assert "villages.csv row 4, column 'population': missing population" in msg


def test_raster_without_crs(folder):
    path = folder / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=2, height=2, count=1, dtype="float32",
                       transform=Affine(100, 0.0, 375_000, 0.0, -100, 4_711_000)) as ds:
        ds.write(np.ones((2, 2), dtype="float32"), 1)
    msg = fails(folder, lambda: load_population(path, kind="raster"))
    assert "nocrs.tif: the raster has no coordinate system" in msg
    assert "gdal_edit.py -a_srs" in msg


def test_raster_without_population(folder):
    path = folder / "zero.tif"
    with rasterio.open(path, "w", driver="GTiff", width=2, height=2, count=1, dtype="float32",
                       crs="EPSG:32631", nodata=-1,
                       transform=Affine(100, 0.0, 375_000, 0.0, -100, 4_711_000)) as ds:
        ds.write(np.array([[0, -1], [-1, 0]], dtype="float32"), 1)
    msg = fails(folder, lambda: load_population(path, kind="raster"))
    assert "no raster cell holds a population above 0" in msg


def test_unknown_facility_type_lists_known_types(folder, pois):
    df = pois.copy()
    df.loc[1, "type"] = "保健站"  # not 卫生院: a built-in name since the facility register
    df.loc[2, "type"] = "Apotheke"
    path = _csv(folder, df)
    msg = fails(folder, lambda: load_facilities(path), InputError)
    # one problem per unknown name, each with its rows (covplan.inputs.register)
    assert "fac.csv row 3, column 'type': unknown facility type '保健站'" in msg
    assert "fac.csv row 4, column 'type': unknown facility type 'Apotheke'" in msg
    for key in FACILITY_TYPES:
        assert key in msg
    assert "township_health_centre (乡镇卫生院)" in msg
    assert "type_map = {'Apotheke' = \"other\"}" in msg  # the nearest known name
    fac = load_facilities(path, type_map={"保健站": "township_health_centre",
                                          "Apotheke": "pharmacy"})
    assert fac["type"].iloc[1:3].tolist() == ["township_health_centre", "pharmacy"]
    msg = fails(folder, lambda: load_facilities(path, type_map={"保健站": "health_hut",
                                                                "Apotheke": "pharmacy"}),
                InputError)
    assert "type_map['保健站']: maps to unknown facility type 'health_hut'" in msg


def test_no_type_column(folder, pois):
    path = _csv(folder, pois.drop(columns=["type"]))
    msg = fails(folder, lambda: load_facilities(path), InputError)
    assert "fac.csv: no facility type column" in msg
    assert "add a column 'type'" in msg and "type_column" in msg


def test_named_column_missing(folder, pois):
    path = _csv(folder, pois)
    msg = fails(folder, lambda: load_facilities(path, id_column="机构编码",
                                                lon_column="经度"), InputError)
    assert "2 problem(s) in fac.csv" in msg
    assert "fac.csv: no column '机构编码' (given as id_column)" in msg
    assert "fac.csv: no column '经度' (given as lon_column)" in msg
    assert "its columns are ['id', 'name', 'type', 'lon', 'lat']" in msg


def test_no_coordinate_columns(folder, pois):
    path = _csv(folder, pois.rename(columns={"lon": "east", "lat": "north"}))
    msg = fails(folder, lambda: load_facilities(path), InputError)
    assert "fac.csv: no longitude column found" in msg
    assert "name the column with lon_column" in msg


def test_facility_outside_every_boundary_is_kept_with_a_warning(folder, pois, li_units):
    fac = load_facilities(_csv(folder, pd.concat(
        [pois, pd.DataFrame([{"id": "far", "name": "Zürich", "type": "hospital",
                              "lon": 8.5417, "lat": 47.3769}])], ignore_index=True)))
    before = checks.snapshot(folder)
    with pytest.warns(InputWarning, match="outside every boundary: far") as record:
        assert check_facilities_within(fac, li_units) == ["far"]
    assert "check the coordinates and the crs" in str(record[0].message)
    assert len(fac) == len(pois) + 1 and "far" in fac["facility_id"].tolist()
    assert checks.snapshot(folder) == before


def test_unreadable_and_unsupported_files(folder, pois):
    bad = folder / "fac.gpkg"
    bad.write_text("this is not a geopackage")
    msg = fails(folder, lambda: load_facilities(bad))
    assert "fac.gpkg: cannot read it as a vector file" in msg and "supported formats" in msg
    xls = folder / "fac.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0")
    msg = fails(folder, lambda: load_facilities(xls))
    assert "old Excel .xls files are not read; save it as .xlsx" in msg
    latin = folder / "latin.csv"
    latin.write_bytes(b"id,type,lon,lat\n\x81\xff,clinic,9.5,47.1\n")
    msg = fails(folder, lambda: load_facilities(latin))
    assert "cannot decode the file as UTF-8 or GB18030/GBK" in msg and "CSV UTF-8" in msg


def test_multi_layer_geopackage_needs_a_layer(folder, pois):
    gdf = gpd.GeoDataFrame(pois, geometry=gpd.points_from_xy(pois["lon"], pois["lat"]), crs=4326)
    path = folder / "two.gpkg"
    gdf.to_file(path, layer="hospitals", driver="GPKG")
    gdf.to_file(path, layer="pharmacies", driver="GPKG")
    msg = fails(folder, lambda: load_facilities(path))
    assert "two.gpkg holds 2 layers ['hospitals', 'pharmacies']; say which one" in msg
    msg = fails(folder, lambda: load_facilities(path, layer="clinics"))
    assert "no layer 'clinics'; its layers are ['hospitals', 'pharmacies']" in msg
    assert len(load_facilities(path, layer="pharmacies")) == len(pois)


def test_unknown_crs_and_crs_conflict(folder, pois):
    path = _csv(folder, pois)
    msg = fails(folder, lambda: load_facilities(path, crs="WGS-85"))
    assert "unknown coordinate system 'WGS-85'" in msg and "GCJ-02" in msg
    gdf = gpd.GeoDataFrame(pois, geometry=gpd.points_from_xy(pois["lon"], pois["lat"]), crs=4326)
    gpkg = folder / "fac.gpkg"
    gdf.to_crs(32632).to_file(gpkg, driver="GPKG")
    msg = fails(folder, lambda: load_facilities(gpkg, crs="EPSG:4547"))
    assert "declares its coordinate system as EPSG:32632 but crs = 'EPSG:4547'" in msg
    assert "remove the crs option" in msg


def test_unknown_population_kind_and_missing_unit_population(folder, li_units):
    msg = fails(folder, lambda: load_population(kind="census"))
    assert "unknown population kind 'census'" in msg and "'raster'" in msg
    units = li_units.assign(population=li_units["population"].where(
        li_units.index != 4, np.nan))
    msg = fails(folder, lambda: load_population(kind="units", units=units), InputError)
    assert f"boundaries units {li_units['unit_id'].iloc[4]}: missing population" in msg


def test_bad_urban_rural_labels(folder):
    pts = pd.DataFrame({"id": ["v1", "v2"], "population": [10, 20], "ur": ["城镇", "suburb"],
                        "lon": [9.52, 9.53], "lat": [47.13, 47.14]})
    path = _csv(folder, pts, "v.csv")
    msg = fails(folder, lambda: load_population(path, kind="points", urban_rural_column="ur"),
                InputError)
    assert "v.csv row 3, column 'ur': unknown urban/rural value(s) suburb" in msg
    assert "1xx urban, 2xx rural" in msg


def test_no_warnings_for_clean_points(folder, pois):
    # control: the same helpers raise nothing and warn nothing on the clean file
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fac = load_facilities(_csv(folder, pois))
    assert len(fac) == len(pois)
    assert fac.geometry.iloc[0] == Point(9.5224777, 47.1343767)
