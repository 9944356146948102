"""Hand-made broken files for every loader, the road network and the scenario file.

Extends tests/test_loaders_bad_input.py (which covers missing files, empty layers, bad and
swapped coordinates, .prj-less Shapefiles, bowtie polygons, duplicate facility ids...) with the
rest of issue 9's list: broken road networks, 0-byte and schema-less GeoJSON, GBK and UTF-16
CSV, mixed geometry types, non-finite and huge coordinates, NaN population, duplicate unit and
place ids, a zipped projected Shapefile without .prj, all-nodata rasters, zip-slip and zip bombs,
files over the size limit, broken scenario files; and, at the end, the same inputs through
``covplan validate`` / ``covplan audit``: exit code 2, the message, no traceback, no output.

Each case gets a :class:`covplan.errors.CoverageError` saying what, where and how to fix, or a
documented repair announced with an :class:`covplan.errors.InputWarning`; nothing is written.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import osmium
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine
from checks import fails
from click.testing import CliRunner
from covplan.cli import main
from covplan.engine.network import build_network
from covplan.errors import InputError, InputWarning
from covplan.facility_types import FACILITY_TYPES
from covplan.inputs import _io
from covplan.inputs.loaders import load_boundaries, load_facilities, load_population
from covplan.scenario import load_scenario
from shapely.geometry import LineString, MultiPoint, Point, Polygon
from shipped import (
    LIECHTENSTEIN_MUNICIPALITIES,
    LIECHTENSTEIN_PBF,
    LIECHTENSTEIN_PLACES,
    LIECHTENSTEIN_SCENARIO,
)

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def li_units() -> gpd.GeoDataFrame:
    return gpd.read_file(LIECHTENSTEIN_MUNICIPALITIES)


def _boundaries(path: Path, **options) -> gpd.GeoDataFrame:
    return load_boundaries(path, id_column="unit_id", name_column="name", level="municipality",
                           **options)


# ----------------------------------------------------------------------------------- networks
def _write_pbf(path: Path, nodes: list[tuple[int, float, float, dict]],
               ways: list[tuple[int, list[int], dict]]) -> Path:
    writer = osmium.SimpleWriter(str(path))
    for nid, lon, lat, tags in nodes:
        writer.add_node(osmium.osm.mutable.Node(id=nid, location=(lon, lat), tags=tags))
    for wid, refs, tags in ways:
        writer.add_way(osmium.osm.mutable.Way(id=wid, nodes=refs, tags=tags))
    writer.close()
    return path


def test_truncated_and_empty_pbf(tmp_path):
    raw = LIECHTENSTEIN_PBF.read_bytes()
    cache = tmp_path / "cache"
    half = tmp_path / "half.osm.pbf"
    half.write_bytes(raw[: len(raw) // 2])
    msg = fails(tmp_path, lambda: build_network(half, mode="drive", cache_dir=cache))
    assert f"cannot read OSM file {half}: PBF error: unexpected EOF" in msg
    assert "give an .osm.pbf or .osm XML extract" in msg
    empty = tmp_path / "empty.osm.pbf"
    empty.write_bytes(b"")
    msg = fails(tmp_path, lambda: build_network(empty, mode="walk", cache_dir=cache))
    assert f"road network file {empty} is empty (0 bytes)" in msg
    assert "fetch the .osm.pbf extract again" in msg
    assert not cache.exists()  # nothing cached from a failed build


def test_pbf_without_roads(tmp_path, pois):
    # the real health POIs of Liechtenstein as nodes, plus a river between two of them
    nodes = [(i + 1, r.lon, r.lat, {"amenity": "clinic", "name": r.name})
             for i, r in enumerate(pois.itertuples())]
    path = _write_pbf(tmp_path / "pois.osm.pbf", nodes, [(1, [1, 2], {"waterway": "river"})])
    msg = fails(tmp_path, lambda: build_network(path, mode="drive", cache_dir=None))
    assert f"no drive roads in {path}" in msg
    assert "none of its ways has a highway class in the drive speed table" in msg
    # a footway is a road for walking only
    path = _write_pbf(tmp_path / "foot.osm.pbf", nodes, [(1, [1, 2], {"highway": "footway"})])
    assert "no drive roads" in fails(tmp_path, lambda: build_network(path, cache_dir=None))
    net = build_network(path, mode="walk", cache_dir=None)
    assert net.report.ways == 1


def test_graphml_that_is_not_graphml(tmp_path):
    html = tmp_path / "roads.graphml"
    html.write_text("<html><body>502 Bad Gateway</body></html>", encoding="utf-8")
    msg = fails(tmp_path, lambda: build_network(html, cache_dir=None))
    assert f"cannot read GraphML file {html}" in msg
    assert "save the graph with osmnx.save_graphml" in msg
    binary = tmp_path / "binary.graphml"
    binary.write_bytes(LIECHTENSTEIN_PBF.read_bytes()[:4096])
    assert "cannot read GraphML file" in fails(tmp_path, lambda: build_network(binary,
                                                                               cache_dir=None))
    # valid GraphML, but a plain graph without coordinates: not a road graph
    plain = tmp_path / "plain.graphml"
    graph = nx.MultiDiGraph()
    graph.add_edge(1, 2, highway="primary")
    nx.write_graphml(graph, plain)
    msg = fails(tmp_path, lambda: build_network(plain, cache_dir=None))
    assert (f"GraphML file {plain} is not an osmnx road graph: 2 node(s) lack numeric x/y "
            "coordinates (e.g. 1)") in msg


def test_network_over_the_size_limit(tmp_path, monkeypatch):
    size = LIECHTENSTEIN_PBF.stat().st_size
    monkeypatch.setenv("COVPLAN_MAX_NETWORK_BYTES", str(size - 1))
    msg = fails(tmp_path, lambda: build_network(LIECHTENSTEIN_PBF, cache_dir=tmp_path / "cache"))
    assert size == 592_630
    assert ("liechtenstein-2013-08-03.osm.pbf: the road network file is 592,630 bytes, over the "
            "limit of 592,629 bytes") in msg
    assert "over the limit of" in msg and "COVPLAN_MAX_NETWORK_BYTES" in msg
    assert "osmium extract" in msg
    monkeypatch.setenv("COVPLAN_MAX_NETWORK_BYTES", "two gigabytes")
    msg = fails(tmp_path, lambda: build_network(LIECHTENSTEIN_PBF, cache_dir=None))
    assert "COVPLAN_MAX_NETWORK_BYTES='two gigabytes' is not a size limit" in msg


def test_size_limits_default_and_override(monkeypatch):
    monkeypatch.delenv("COVPLAN_MAX_INPUT_BYTES", raising=False)
    monkeypatch.delenv("COVPLAN_MAX_NETWORK_BYTES", raising=False)
    assert _io.size_limit("network") == 2 * 1024**3 == 2_147_483_648
    assert _io.size_limit("input") == 500 * 1024**2 == 524_288_000
    assert _io.size_limit() == _io.size_limit("input")
    monkeypatch.setenv("COVPLAN_MAX_INPUT_BYTES", " 1000 ")
    assert _io.size_limit("input") == 1000
    assert _io.size_limit("network") == 2_147_483_648


# ----------------------------------------------------------------------------------- GeoJSON
def test_empty_and_schemaless_geojson(tmp_path):
    empty = tmp_path / "empty.geojson"
    empty.write_bytes(b"")
    msg = fails(tmp_path, lambda: load_facilities(empty))
    assert "empty.geojson: the facilities file is empty (0 bytes)" in msg
    obj = tmp_path / "obj.geojson"
    obj.write_text("{}")
    msg = fails(tmp_path, lambda: _boundaries(obj))
    assert "obj.geojson: cannot read it as a vector file" in msg and "supported formats" in msg
    nofeat = tmp_path / "nofeat.geojson"
    nofeat.write_text('{"type": "FeatureCollection"}')
    msg = fails(tmp_path, lambda: load_population(nofeat, kind="points"))
    assert "Missing 'features' member" in msg
    nullgeom = tmp_path / "nullgeom.geojson"
    nullgeom.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": None, "properties": {"id": "a", "type": "clinic"}}]}))
    msg = fails(tmp_path, lambda: load_facilities(nullgeom))
    assert "every feature of the facilities layer has an empty geometry" in msg


# ----------------------------------------------------------------------------------- encodings
def test_gbk_csv_is_detected_and_read(tmp_path, pois):
    zh = {k: v[0] for k, v in FACILITY_TYPES.items()}
    table = pd.DataFrame({
        "机构编码": pois["id"].iloc[:4],
        "机构名称": ["瓦杜兹卫生院", "沙坪坝区人民医院", "大渡口社区卫生服务站", "巴中药店"],
        "机构类型": [zh[t] for t in pois["type"].iloc[:4]],
        "经度": pois["lon"].iloc[:4], "纬度": pois["lat"].iloc[:4],
    })
    path = tmp_path / "gbk.csv"
    path.write_bytes(table.to_csv(index=False).encode("gbk"))
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")  # really not UTF-8
    with pytest.warns(InputWarning, match=r"gbk.csv is not UTF-8; it was read as GB18030 "
                                          r"\(GBK-compatible\)"):
        fac = load_facilities(path)
    assert fac["name"].tolist() == table["机构名称"].tolist()
    assert fac["facility_id"].tolist() == pois["id"].iloc[:4].tolist()
    assert fac["type"].tolist() == pois["type"].iloc[:4].tolist()
    assert fac.attrs["encoding"] == "gb18030"
    np.testing.assert_array_equal(fac.geometry.x, pois["lon"].iloc[:4])
    # Excel's "Unicode text" (UTF-16) is neither: say how to save it
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes(table.to_csv(index=False).encode("utf-16"))
    msg = fails(tmp_path, lambda: load_facilities(utf16))
    assert "utf16.csv: cannot decode the file as UTF-8 or GB18030/GBK" in msg
    assert "save it as 'CSV UTF-8'" in msg


def test_rows_longer_than_the_header_are_refused_not_shifted(tmp_path, pois):
    # "9,52" with a decimal comma makes one row one field longer; pandas would silently use the
    # first column as the index and shift every value one column left
    lines = ["id,type,lon,lat"] + [f"{r.id},{r.type},{r.lon},{r.lat}"
                                  for r in pois.iloc[:3].itertuples()]
    lines[1] = f"{pois.id[0]},{pois.type[0]},9,52,47.13"
    path = tmp_path / "commas.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    msg = fails(tmp_path, lambda: load_facilities(path))
    assert "commas.csv: some rows have more fields than the header line" in msg
    assert "quote values that contain a comma" in msg


# ----------------------------------------------------------------------------------- geometry
def test_mixed_geometry_types(tmp_path, pois, li_units):
    vaduz = li_units.geometry.iloc[0]
    outline = LineString(shapely.get_exterior_ring(shapely.get_geometry(vaduz, 0)).coords)
    geoms = [Point(pois.lon[0], pois.lat[0]), vaduz,
             LineString([(pois.lon[1], pois.lat[1]), (pois.lon[2], pois.lat[2])]),
             MultiPoint([(pois.lon[3], pois.lat[3])])]
    gdf = gpd.GeoDataFrame({"id": pois["id"].iloc[:4], "type": pois["type"].iloc[:4]},
                           geometry=geoms, crs=4326)
    path = tmp_path / "mixed.geojson"
    gdf.to_file(path, driver="GeoJSON")
    with pytest.warns(InputWarning, match=r"mixed.geojson features 2, 3: 2 facilities are not "
                                          "points; each was replaced by a point inside it"):
        fac = load_facilities(path)
    assert (fac.geom_type == "Point").all()
    assert fac.geometry.iloc[0].equals(geoms[0])
    assert vaduz.contains(fac.geometry.iloc[1])
    assert geoms[2].distance(fac.geometry.iloc[2]) < 1e-12
    assert fac.geometry.iloc[3].equals(Point(pois.lon[3], pois.lat[3]))  # unwrapped
    # boundaries must be polygons: lines and points are errors, not repaired
    units = li_units[["unit_id", "name", "geometry"]].copy()
    units.loc[4, "geometry"] = outline
    units.loc[7, "geometry"] = vaduz.centroid
    path = tmp_path / "mixed_units.gpkg"
    units.to_file(path, driver="GPKG")
    msg = fails(tmp_path, lambda: _boundaries(path), InputError)
    assert ("mixed_units.gpkg features 5, 8: boundaries must be polygons, found Point, "
            "LineString") in msg
    assert "give the administrative areas as Polygon/MultiPolygon" in msg


def test_self_intersecting_ring_is_repaired_with_the_documented_warning(tmp_path, li_units):
    # feature 3 redrawn over its bounding box with an edge crossing another one: in box units
    # (0,0)-(2,0)-(2,2)-(1,2)-(1,-1)-(0,-1): the edge x=1 crosses the first edge at (1,0)
    units = li_units[["unit_id", "name", "population", "geometry"]].copy()
    x0, y0, x1, y1 = units.geometry.iloc[2].bounds
    dx, dy = (x1 - x0) / 2, (y1 - y0) / 2
    ring = [(x0, y0), (x0 + 2 * dx, y0), (x0 + 2 * dx, y0 + 2 * dy), (x0 + dx, y0 + 2 * dy),
            (x0 + dx, y0 - dy), (x0, y0 - dy), (x0, y0)]
    units.loc[2, "geometry"] = Polygon(ring)
    assert not units.geometry.iloc[2].is_valid
    path = tmp_path / "loop.geojson"
    units.to_file(path, driver="GeoJSON")
    with pytest.warns(InputWarning, match=r"loop.geojson feature 3: repaired 1 invalid "
                                          r"boundaries geometry with shapely.make_valid"):
        out = _boundaries(path, population_column="population")
    assert out.is_valid.all() and len(out) == len(li_units)
    fixed = out.geometry.iloc[2]
    # independent: the repaired shape is the union of the triangles the ring encloses
    expected = shapely.make_valid(Polygon(ring))
    assert fixed.symmetric_difference(expected).area < 1e-15
    assert fixed.area > 0 and out["population"].iloc[2] == li_units["population"].iloc[2]


# ----------------------------------------------------------------------------------- numbers
def test_non_finite_and_huge_coordinates(tmp_path, pois, li_units):
    df = pois.iloc[:5].astype({"lon": object, "lat": object})
    df.loc[1, "lon"] = "inf"
    df.loc[3, "lat"] = "1e400"  # overflows to infinity
    df.loc[4, "lon"] = 1e308  # finite but far beyond 180
    path = tmp_path / "inf.csv"
    df.to_csv(path, index=False)
    msg = fails(tmp_path, lambda: load_facilities(path), InputError)
    assert "inf.csv row 3, column 'lon': longitude is not a finite number: 'inf'" in msg
    assert "inf.csv row 5, column 'lat': latitude is not a finite number: '1e400'" in msg
    assert "inf.csv row 6, column 'lon': coordinates outside the valid range ±180: 1e+308" in msg
    # NaN written into a GeoJSON (json.dumps writes the NaN token)
    features = [{"type": "Feature", "properties": {"id": r.id, "type": r.type},
                 "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]}}
                for r in pois.iloc[:3].itertuples()]
    features[1]["geometry"]["coordinates"][0] = float("nan")
    nan = tmp_path / "nan.geojson"
    nan.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    msg = fails(tmp_path, lambda: load_facilities(nan), InputError)
    assert "nan.geojson feature 2: coordinates that are not finite numbers" in msg
    # huge metres in a projected Shapefile: not convertible to longitude/latitude
    utm = li_units[["unit_id", "name", "geometry"]].to_crs(32632)
    utm.loc[5, "geometry"] = shapely.affinity.scale(utm.geometry.iloc[5], 1e300, 1e300)
    shp = tmp_path / "huge.shp"
    utm.to_file(shp, driver="ESRI Shapefile")
    msg = fails(tmp_path, lambda: _boundaries(shp), InputError)
    assert "huge.shp feature 6: coordinates that are not finite numbers" in msg \
        or "huge.shp feature 6: coordinates outside the valid longitude/latitude range" in msg


def test_nan_population(tmp_path, li_units):
    places = gpd.read_file(LIECHTENSTEIN_PLACES)
    assert len(places) == 734
    places.loc[[10, 20], "population"] = np.nan
    path = tmp_path / "places.gpkg"
    places.to_file(path, driver="GPKG")
    msg = fails(tmp_path, lambda: load_population(path, kind="points"), InputError)
    assert "places.gpkg features 11, 21, column 'population': missing population" in msg
    assert "fill in the number of residents (0 if nobody lives there)" in msg
    # "NaN" and "inf" typed as text in a CSV
    csv = tmp_path / "villages.csv"
    pd.DataFrame({"id": ["v1", "v2", "v3"], "population": ["120", "NaN", "inf"],
                  "lon": [9.52, 9.53, 9.54], "lat": [47.13, 47.14, 47.15]}).to_csv(csv,
                                                                                 index=False)
    msg = fails(tmp_path, lambda: load_population(csv, kind="points"), InputError)
    assert "villages.csv row 3, column 'population': missing population" in msg  # NaN = blank
    assert "villages.csv row 4, column 'population': population is not a finite number: " \
        "'inf'" in msg
    # boundaries may lack a population (NaN, documented) but then cannot be the population
    units = li_units.copy()
    units.loc[6, "population"] = np.nan
    bpath = tmp_path / "units.geojson"
    units.to_file(bpath, driver="GeoJSON")
    loaded = _boundaries(bpath, population_column="population")
    assert np.isnan(loaded["population"].iloc[6])
    assert loaded["population"].drop(index=6).tolist() == \
        li_units["population"].drop(index=6).astype(float).tolist()
    msg = fails(tmp_path, lambda: load_population(kind="units", units=loaded), InputError)
    assert f"boundaries units {li_units['unit_id'].iloc[6]}: missing population" in msg


def test_duplicate_unit_and_place_ids(tmp_path, li_units):
    units = li_units.copy()
    units.loc[5, "unit_id"] = units["unit_id"].iloc[2]
    path = tmp_path / "units.geojson"
    units.to_file(path, driver="GeoJSON")
    msg = fails(tmp_path, lambda: _boundaries(path), InputError)
    uid = li_units["unit_id"].iloc[2]
    assert f"units.geojson, column 'unit_id': duplicate unit ids: '{uid}' (3, 6)" in msg
    assert "dissolve the parts in QGIS" in msg
    places = gpd.read_file(LIECHTENSTEIN_PLACES)
    places.loc[100, "place_id"] = places["place_id"].iloc[0]
    ppath = tmp_path / "places.geojson"
    places.to_file(ppath, driver="GeoJSON")
    msg = fails(tmp_path, lambda: load_population(ppath, kind="points", id_column="place_id"),
                InputError)
    assert (f"places.geojson, column 'place_id': duplicate place ids: "
            f"'{places['place_id'].iloc[0]}' (1, 101)") in msg


# ----------------------------------------------------------------------------------- zips
def _zip_shapefile(folder: Path, gdf: gpd.GeoDataFrame, zip_path: Path, *,
                   arcdir: str = "", drop: tuple[str, ...] = ()) -> Path:
    shp = folder / "layer.shp"
    gdf.to_file(shp, driver="ESRI Shapefile")
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for part in sorted(folder.glob("layer.*")):
            if part.suffix not in drop:
                zf.write(part, f"{arcdir}{part.name}")
            part.unlink()
    return zip_path


def test_zipped_projected_shapefile_without_prj(tmp_path, li_units):
    work = tmp_path / "work"
    work.mkdir()
    utm = li_units[["unit_id", "name", "geometry"]].to_crs(32632)
    path = _zip_shapefile(work, utm, tmp_path / "gemeinden.zip", arcdir="Gemeinden/",
                          drop=(".prj",))
    msg = fails(tmp_path, lambda: _boundaries(path))
    assert "gemeinden.zip has no coordinate system" in msg
    assert "add the .prj file beside the .shp, or give the crs option" in msg
    units = _boundaries(path, crs="EPSG:32632")
    assert units["unit_id"].tolist() == li_units["unit_id"].tolist()
    np.testing.assert_allclose(units.total_bounds, li_units.total_bounds, atol=1e-7)


def test_zip_slip_members_are_refused_and_nothing_is_extracted(tmp_path, pois):
    work = tmp_path / "work"
    work.mkdir()
    gdf = gpd.GeoDataFrame(pois[["id", "type"]], crs=4326,
                           geometry=gpd.points_from_xy(pois["lon"], pois["lat"]))
    ok = _zip_shapefile(work, gdf, tmp_path / "ok.zip", arcdir="export/")
    members = zipfile.ZipFile(ok).infolist()
    evil = tmp_path / "slip.zip"
    with zipfile.ZipFile(ok) as src, zipfile.ZipFile(evil, "w") as dst:
        for i, info in enumerate(members):
            name = ("../../escaped/" if i % 3 == 0 else "/tmp/escaped/" if i % 3 == 1
                    else "..\\..\\escaped\\") + Path(info.filename).name
            dst.writestr(zipfile.ZipInfo(name), src.read(info))
    assert any(n.startswith("/") for n in zipfile.ZipFile(evil).namelist())
    msg = fails(tmp_path, lambda: load_facilities(evil))
    assert f"slip.zip: refused, {len(members)} member(s) of the zip would be written outside " \
        "its folder ('../../escaped/layer." in msg
    assert "without absolute paths or '..'" in msg
    assert not (tmp_path.parent / "escaped").exists() and not Path("/tmp/escaped").exists()
    # the same data zipped safely (in a sub-folder) loads: read in place, nothing extracted
    fac = load_facilities(ok)
    assert fac["facility_id"].tolist() == pois["id"].tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.zip", "slip.zip", "work"]
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("name", ["../x.shp", "/etc/x.shp", "a/../../x.shp", "..\\x.shp",
                                  "C:/x.shp", "c:\\x.shp", "a/b/../../../x.shp"])
def test_unsafe_member_names(name):
    assert _io.unsafe_member(name)


@pytest.mark.parametrize("name", ["x.shp", "a/b/x.shp", "a/./x.shp", "..x.shp", "a..b/x.shp"])
def test_safe_member_names(name):
    assert not _io.unsafe_member(name)


def test_zip_bomb_and_odd_zips(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.geojson", b" " * 3_000_000)
    assert bomb.stat().st_size < 10_000
    monkeypatch.setenv("COVPLAN_MAX_INPUT_BYTES", "1000000")
    msg = fails(tmp_path, lambda: load_facilities(bomb))
    assert "bomb.zip: the facilities zip would unpack to 2.9 MiB, over the limit of " \
        "1,000,000 bytes" in msg and "COVPLAN_MAX_INPUT_BYTES" in msg
    monkeypatch.delenv("COVPLAN_MAX_INPUT_BYTES")
    notzip = tmp_path / "notzip.zip"
    notzip.write_bytes(b"PK\x03\x04 but then garbage")
    assert "notzip.zip: not a readable zip file" in fails(tmp_path,
                                                          lambda: load_facilities(notzip))
    readme = tmp_path / "readme.zip"
    with zipfile.ZipFile(readme, "w") as zf:
        zf.writestr("README.txt", "the data will follow")
    msg = fails(tmp_path, lambda: load_facilities(readme))
    assert "readme.zip: no Shapefile (.shp), GeoPackage or GeoJSON inside the zip (it holds " \
        "README.txt)" in msg


# ----------------------------------------------------------------------------------- rasters
def _raster(path: Path, values: np.ndarray, nodata: float | None) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=values.shape[1],
                       height=values.shape[0], count=1, dtype="float32", crs="EPSG:32632",
                       nodata=nodata,
                       transform=Affine(100, 0.0, 757_000, 0.0, -100, 5_230_000)) as ds:
        ds.write(values.astype("float32"), 1)
    return path


def test_raster_with_nodata_everywhere(tmp_path):
    path = _raster(tmp_path / "nodata.tif", np.full((4, 5), -9999.0), -9999.0)
    msg = fails(tmp_path, lambda: load_population(path, kind="raster"))
    assert "nodata.tif: no raster cell holds a population above 0 (all are nodata, zero or " \
        "negative)" in msg and "check the band and the nodata value" in msg
    nan = _raster(tmp_path / "nan.tif", np.full((3, 3), np.nan), np.nan)
    assert "no raster cell holds a population above 0" in fails(
        tmp_path, lambda: load_population(nan, kind="raster"))
    # one cell left: exactly that cell becomes a place, at its centre
    values = np.full((4, 5), -9999.0)
    values[2, 3] = 42.0
    one = _raster(tmp_path / "one.tif", values, -9999.0)
    places = load_population(one, kind="raster")
    assert places["population"].tolist() == [42.0]
    centre = gpd.GeoSeries([Point(757_000 + 350, 5_230_000 - 250)], crs=32632).to_crs(4326)
    assert places.geometry.iloc[0].distance(centre.iloc[0]) < 1e-9
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(one.read_bytes()[:200])
    assert "truncated.tif: cannot read it as a raster" in fails(
        tmp_path, lambda: load_population(truncated, kind="raster"))


# ----------------------------------------------------------------------------------- size
def test_file_over_the_size_limit(tmp_path, pois, monkeypatch):
    path = tmp_path / "fac.csv"
    pois.to_csv(path, index=False)
    size = path.stat().st_size
    monkeypatch.setenv("COVPLAN_MAX_INPUT_BYTES", str(size - 1))
    msg = fails(tmp_path, lambda: load_facilities(path))
    assert f"fac.csv: the facilities file is {size:,} bytes, over the limit of {size - 1:,} " \
        "bytes" in msg
    assert "raise the limit with the environment variable COVPLAN_MAX_INPUT_BYTES" in msg
    msg = fails(tmp_path, lambda: _boundaries(LIECHTENSTEIN_MUNICIPALITIES))
    assert "liechtenstein_municipalities.geojson: the boundaries file is" in msg
    monkeypatch.setenv("COVPLAN_MAX_INPUT_BYTES", str(size))
    assert len(load_facilities(path)) == len(pois)  # at the limit is fine


# ----------------------------------------------------------------------------------- scenarios
def test_broken_scenario_files(tmp_path, monkeypatch):
    binary = tmp_path / "binary.toml"
    binary.write_bytes(LIECHTENSTEIN_PBF.read_bytes()[:300])
    msg = fails(tmp_path, lambda: load_scenario(binary), InputError)
    assert "not UTF-8 text" in msg and "save the scenario file as UTF-8" in msg
    gbk = tmp_path / "gbk.toml"
    gbk.write_bytes('[scenario]\nname = "沙坪坝区"\n'.encode("gbk"))
    assert "not UTF-8 text" in fails(tmp_path, lambda: load_scenario(gbk), InputError)
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    msg = fails(tmp_path, lambda: load_scenario(empty), InputError)
    assert "scenario: missing section (add a [scenario] table with name)" in msg
    assert "inputs.network: missing section" in msg
    monkeypatch.setenv("COVPLAN_MAX_SCENARIO_BYTES", "100")
    msg = fails(tmp_path, lambda: load_scenario(LIECHTENSTEIN_SCENARIO))
    assert "liechtenstein.toml: the scenario file is" in msg and "over the limit of 100" in msg


def test_scenario_values_of_the_wrong_shape_are_problems_not_crashes(tmp_path):
    text = LIECHTENSTEIN_SCENARIO.read_text(encoding="utf-8").replace(
        'preset = "bazhong"', 'preset = "bazhong"\nrule = ["travel_time"]')
    path = tmp_path / "li.toml"
    path.write_text(text.replace("../", f"{REPO.as_posix()}/data/"), encoding="utf-8")
    msg = fails(tmp_path, lambda: load_scenario(path), InputError)
    assert "standards" in msg and "problem(s) in" in msg


def test_overrides_into_a_value_that_is_not_a_table():
    from covplan.scenario import load_scenario_with_overrides

    with pytest.raises(InputError) as info:
        load_scenario_with_overrides(LIECHTENSTEIN_SCENARIO, [
            "scenario.name.first=x", "standards.x=1", "standards[x]=1"])
    problems = [str(p) for p in info.value.problems]
    assert problems == [
        "--set scenario.name.first: scenario.name is not a table, so it has no key 'first'",
        "--set standards.x: standards is not a table, so it has no key 'x'",
        "--set standards[x]: 'standards[x]' is not a key or an item number (write list items as "
        "name[0])",
    ]


# ----------------------------------------------------------------------------------- CLI
def _scenario(folder: Path, **replace: str) -> Path:
    """The Liechtenstein scenario with absolute paths, some of them replaced."""
    text = LIECHTENSTEIN_SCENARIO.read_text(encoding="utf-8")
    text = text.replace('"../', f'"{REPO.as_posix()}/data/')
    for old, new in replace.items():
        key = {"facilities": "facilities/liechtenstein.geojson",
               "boundaries": "boundaries/liechtenstein_municipalities.geojson",
               "population": "population/liechtenstein_places.geojson",
               "network": "osm/liechtenstein-2013-08-03.osm.pbf"}[old]
        assert key in text
        text = text.replace(f"{REPO.as_posix()}/data/{key}", Path(new).as_posix())
    # the network cache is the test session's (COVPLAN_CACHE_DIR, tests/conftest.py): a
    # scenario file may not say where a cache is read from
    path = folder / "scenario.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _broken_inputs(folder: Path, pois: pd.DataFrame, li_units: gpd.GeoDataFrame,
                   ) -> list[tuple[str, str, Path, str]]:
    """(case, role, broken file, expected message) for the CLI check."""
    cases = []
    p = folder / "empty.geojson"
    p.write_bytes(b"")
    cases.append(("empty geojson", "facilities", p, "the facilities file is empty (0 bytes)"))
    p = folder / "utf16.csv"
    p.write_bytes(pois.to_csv(index=False).encode("utf-16"))
    cases.append(("utf-16 csv", "facilities", p, "cannot decode the file as UTF-8 or GB18030"))
    p = folder / "inf.csv"
    pois.assign(lon=pois["lon"].astype(object).where(pois.index != 0, "inf")).to_csv(
        p, index=False)
    cases.append(("infinite coordinate", "facilities", p, "longitude is not a finite number"))
    p = folder / "dup.geojson"
    li_units.assign(unit_id=li_units["unit_id"].where(li_units.index != 1,
                                                      li_units["unit_id"][0])).to_file(p)
    cases.append(("duplicate unit ids", "boundaries", p, "duplicate unit ids"))
    p = folder / "points.geojson"
    gpd.GeoDataFrame(li_units.drop(columns="geometry"), crs=4326,
                     geometry=li_units.representative_point()).to_file(p)
    cases.append(("points as boundaries", "boundaries", p, "boundaries must be polygons"))
    p = folder / "slip.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("../../places.geojson", LIECHTENSTEIN_PLACES.read_bytes())
    cases.append(("zip-slip", "population", p, "would be written outside its folder"))
    p = folder / "nan.gpkg"
    places = gpd.read_file(LIECHTENSTEIN_PLACES)
    places.loc[3, "population"] = np.nan
    places.to_file(p, driver="GPKG")
    cases.append(("NaN population", "population", p, "missing population"))
    return cases


def test_cli_validate_exits_2_with_the_message_and_no_traceback(tmp_path, pois, li_units):
    runner = CliRunner()
    ok = runner.invoke(main, ["validate", str(_scenario(tmp_path))])
    assert ok.exit_code == 0, ok.output
    assert "Liechtenstein: OK" in ok.output
    assert "5 facilities, 11 units, 734 population places" in ok.output
    cases = _broken_inputs(tmp_path, pois, li_units)
    for case, role, path, expected in cases:
        result = runner.invoke(main, ["validate", str(_scenario(tmp_path, **{role: path}))])
        output = result.output + (result.stderr if result.stderr_bytes is not None else "")
        assert result.exit_code == 2, (case, output, result.exception)
        assert expected in output, (case, output)
        assert output.lstrip().startswith(("Loading inputs", "Error:")), (case, output)
        assert "Traceback" not in output, case
        assert isinstance(result.exception, SystemExit), case
    # a broken scenario file itself
    bad = tmp_path / "bad.toml"
    bad.write_text('[scenario]\nname = "x\n', encoding="utf-8")
    result = runner.invoke(main, ["validate", str(bad)])
    assert result.exit_code == 2 and "not valid TOML" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("case", ["truncated", "no roads", "not graphml"])
def test_cli_audit_with_a_broken_network_exits_2_and_writes_nothing(tmp_path, pois, case):
    if case == "truncated":
        net = tmp_path / "half.osm.pbf"
        net.write_bytes(LIECHTENSTEIN_PBF.read_bytes()[:300_000])
        expected = "PBF error: unexpected EOF"
    elif case == "no roads":
        net = _write_pbf(tmp_path / "pois.osm.pbf",
                         [(i + 1, r.lon, r.lat, {"amenity": "clinic"})
                          for i, r in enumerate(pois.itertuples())], [])
        expected = "none of its ways has a highway class"
    else:
        net = tmp_path / "roads.graphml"
        net.write_text("<html>not found</html>", encoding="utf-8")
        expected = "cannot read GraphML file"
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["-q", "audit", str(_scenario(tmp_path, network=net)),
                                       "--out", str(out)])
    assert result.exit_code == 2, (result.output, result.exception)
    assert expected in result.output and "Traceback" not in result.output
    assert not out.exists() or list(out.iterdir()) == []
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []
