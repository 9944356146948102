"""Property-based bad-input checks: arbitrary text, tables, coordinates and TOML.

For any input the loaders and the scenario reader either return a valid canonical layer (or
scenario) or raise :class:`covplan.errors.CoverageError`; no other exception type escapes.
Examples are bounded (``max_examples`` <= 150, no deadline) so the file runs in seconds.
"""

from __future__ import annotations

import copy
import json
import math
import tomllib
import warnings

import numpy as np
import pytest
import shapely
from covplan.errors import CoverageError, InputError, InputWarning
from covplan.facility_types import FACILITY_TYPES
from covplan.inputs.crs import (
    bd09_to_wgs84,
    gcj02_to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from covplan.inputs.loaders import load_boundaries, load_facilities, load_population
from covplan.scenario import Scenario, apply_overrides, load_scenario, parse_scenario
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from shipped import ANDORRA_SCENARIO

FAST = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
SMALL = settings(FAST, max_examples=60)


def _quiet(call):
    """Run ``call`` with InputWarnings silenced (repairs are checked in the file tests)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        return call()


def _check_points_layer(layer) -> None:
    """The contract every returned point layer keeps, whatever the input."""
    assert str(layer.crs) == "EPSG:4326"
    assert (shapely.get_type_id(layer.geometry.to_numpy()) == 0).all()
    xy = shapely.get_coordinates(layer.geometry.to_numpy())
    assert len(xy) == len(layer)
    assert np.isfinite(xy).all()
    assert (np.abs(xy[:, 0]) <= 180).all() and (np.abs(xy[:, 1]) <= 90).all()


# ----------------------------------------------------------------------------------- CSV text
_CELL = st.one_of(
    st.sampled_from(["clinic", "hospital", "卫生院", "pharmacy", "", " ", "nan", "NaN", "inf",
                     "-inf", "1e400", "NULL", '"', '""', "a,b", "0", "-0", "9.52", "47.13",
                     "200", "-95", "1,5", "47°10'N", "\t"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=8),
)
_HEADER = st.lists(
    st.sampled_from(["id", "name", "type", "lon", "lat", "lng", "经度", "纬度", "名称", "beds",
                     "x", "y", "population", "amenity", "id", "lon", ""]),
    min_size=1, max_size=7,
)


@st.composite
def csv_text(draw) -> str:
    header = draw(_HEADER)
    rows = draw(st.lists(st.lists(_CELL, min_size=len(header), max_size=len(header)),
                         max_size=6))
    lines = [",".join(header)] + [",".join(row) for row in rows]
    sep = draw(st.sampled_from(["\n", "\r\n"]))
    return sep.join(lines)


@FAST
@given(text=csv_text(), encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]))
def test_any_csv_text_gives_facilities_or_a_coverage_error(tmp_path_factory, text, encoding):
    try:
        raw = text.encode(encoding)
    except UnicodeEncodeError:
        assume(False)
    path = tmp_path_factory.mktemp("csv") / "fac.csv"
    path.write_bytes(raw)
    try:
        fac = _quiet(lambda: load_facilities(path))
    except CoverageError as exc:
        assert str(exc).strip()  # a message, never an empty error
        return
    _check_points_layer(fac)
    assert fac["facility_id"].is_unique
    assert set(fac["type"]) <= set(FACILITY_TYPES)
    # at most one facility per data line of the file
    assert len(fac) <= len(text.splitlines()) - 1


@FAST
@given(data=st.binary(max_size=300),
       suffix=st.sampled_from([".csv", ".tsv", ".geojson", ".gpkg", ".zip", ".xlsx", ".shp"]))
def test_any_bytes_give_a_layer_or_a_coverage_error(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("bytes") / f"input{suffix}"
    path.write_bytes(data)
    for call in (lambda: load_facilities(path),
                 lambda: load_population(path, kind="points"),
                 lambda: load_boundaries(path, id_column="id", name_column="name", level="x")):
        try:
            layer = _quiet(call)
        except CoverageError:
            continue
        assert str(layer.crs) == "EPSG:4326"


@SMALL
@given(data=st.binary(max_size=200))
def test_any_bytes_as_a_raster_give_places_or_a_coverage_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("tif") / "pop.tif"
    path.write_bytes(data)
    with pytest.raises(CoverageError):
        load_population(path, kind="raster")


# ----------------------------------------------------------------------------------- coordinates
_COORD = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-200, max_value=200),
    st.floats(min_value=-1e6, max_value=1e7),
    st.sampled_from([1e308, -1e308, 5e-324, 180.0, -180.0, 90.0, -90.0, 180.0000001]),
)


@FAST
@given(points=st.lists(st.tuples(_COORD, _COORD), min_size=1, max_size=5))
def test_any_wgs84_coordinates_are_kept_exactly_or_refused(tmp_path_factory, points):
    lines = ["id,type,lon,lat"] + [f"f{i},clinic,{x!r},{y!r}" for i, (x, y) in enumerate(points)]
    path = tmp_path_factory.mktemp("xy") / "fac.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    valid = all(math.isfinite(x) and math.isfinite(y) and abs(x) <= 180 and abs(y) <= 90
                for x, y in points)
    if not valid:
        with pytest.raises(InputError):
            load_facilities(path)
        return
    fac = load_facilities(path)
    _check_points_layer(fac)
    got = shapely.get_coordinates(fac.geometry.to_numpy())
    # repr() round-trips floats exactly, so the layer holds the very numbers written
    assert got.tolist() == [[float(x), float(y)] for x, y in points]


@FAST
@given(points=st.lists(st.tuples(_COORD, _COORD), min_size=1, max_size=4),
       crs=st.sampled_from(["GCJ-02", "BD-09", "CGCS2000", "EPSG:4547", "EPSG:32631",
                            "EPSG:3857"]))
def test_any_coordinates_in_any_crs_give_valid_points_or_a_coverage_error(
        tmp_path_factory, points, crs):
    lines = ["id,type,x,y"] + [f"f{i},clinic,{x!r},{y!r}" for i, (x, y) in enumerate(points)]
    path = tmp_path_factory.mktemp("crs") / "fac.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    try:
        fac = _quiet(lambda: load_facilities(path, crs=crs))
    except CoverageError:
        return
    _check_points_layer(fac)
    assert len(fac) == len(points)
    # nothing unreadable slipped through: every input number was finite
    assert all(math.isfinite(v) for p in points for v in p)


@FAST
@given(points=st.lists(st.tuples(_COORD, _COORD), min_size=1, max_size=4))
def test_any_coordinates_in_a_geojson_give_valid_points_or_an_input_error(
        tmp_path_factory, points):
    features = [{"type": "Feature", "properties": {"id": f"f{i}", "type": "clinic"},
                 "geometry": {"type": "Point", "coordinates": [x, y]}}
                for i, (x, y) in enumerate(points)]
    path = tmp_path_factory.mktemp("gj") / "fac.geojson"
    # json.dumps writes NaN/Infinity tokens for non-finite floats, as some exporters do
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    valid = all(math.isfinite(x) and math.isfinite(y) and abs(x) <= 180 and abs(y) <= 90
                for x, y in points)
    try:
        fac = _quiet(lambda: load_facilities(path))
    except CoverageError:
        assert not valid
        return
    assert valid
    _check_points_layer(fac)
    np.testing.assert_array_equal(shapely.get_coordinates(fac.geometry.to_numpy()),
                                  np.array(points, dtype=float))


_CHINA_LON = st.floats(min_value=73.5, max_value=135.0)
_CHINA_LAT = st.floats(min_value=18.2, max_value=53.5)


@settings(FAST, max_examples=200)
@given(lon=_CHINA_LON, lat=_CHINA_LAT)
def test_gcj02_round_trips_within_1e7_degrees_anywhere_in_china(lon, lat):
    glon, glat = wgs84_to_gcj02(lon, lat)
    # the obfuscation moves points by tens to hundreds of metres in China, never by a degree
    assert 1e-5 < math.hypot(glon - lon, glat - lat) < 0.02
    wlon, wlat = gcj02_to_wgs84(glon, glat)
    assert abs(wlon - lon) < 1e-7 and abs(wlat - lat) < 1e-7
    # and the other way round: a GCJ-02 point read as WGS-84 and shifted again comes back
    back = wgs84_to_gcj02(*gcj02_to_wgs84(lon, lat))
    assert abs(back[0] - lon) < 1e-7 and abs(back[1] - lat) < 1e-7


@settings(FAST, max_examples=100)
@given(lon=_CHINA_LON, lat=_CHINA_LAT)
def test_bd09_round_trips_within_5e6_degrees_anywhere_in_china(lon, lat):
    # BD-09 -> GCJ-02 is the widely published closed-form approximation, not an exact inverse:
    # it is off by up to 2e-6 degrees (about 20 cm) over China, so the bound here is 5e-6
    blon, blat = wgs84_to_bd09(lon, lat)
    assert 1e-4 < math.hypot(blon - lon, blat - lat) < 0.03
    wlon, wlat = bd09_to_wgs84(blon, blat)
    assert abs(wlon - lon) < 5e-6 and abs(wlat - lat) < 5e-6


# ----------------------------------------------------------------------------------- polygons
_VERTEX = st.tuples(st.integers(0, 6), st.integers(0, 6)).map(
    lambda p: (9.50 + p[0] * 0.01, 47.10 + p[1] * 0.01))


@FAST
@given(rings=st.lists(st.lists(_VERTEX, min_size=1, max_size=7), min_size=1, max_size=4))
def test_any_polygon_rings_give_valid_polygons_or_an_input_error(tmp_path_factory, rings):
    features = [{"type": "Feature", "properties": {"unit_id": f"u{i}", "name": f"U{i}"},
                 "geometry": {"type": "Polygon", "coordinates": [ring + ring[:1]]}}
                for i, ring in enumerate(rings)]
    path = tmp_path_factory.mktemp("poly") / "units.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            units = load_boundaries(path, id_column="unit_id", name_column="name", level="x")
        except CoverageError:
            return
    assert str(units.crs) == "EPSG:4326"
    geoms = units.geometry.to_numpy()
    assert shapely.is_valid(geoms).all()
    assert np.isin(shapely.get_type_id(geoms), (3, 6)).all()
    assert (shapely.area(geoms) > 0).all()
    originals = {f"u{i}": shapely.Polygon(ring + ring[:1]) if len(set(ring)) >= 3 else None
                 for i, ring in enumerate(rings)}
    repaired = 0
    for uid, geom in zip(units["unit_id"], geoms, strict=True):
        original = originals[uid]
        if original is not None and original.is_valid:
            assert geom.equals(original)  # a valid polygon is kept as it is
        else:
            repaired += 1
            # a documented repair: shapely.make_valid keeps the polygonal part of the shape
            assert geom.difference(shapely.make_valid(original)).area < 1e-12
    if repaired:
        assert any(issubclass(w.category, InputWarning) and "repaired" in str(w.message)
                   for w in caught)


# ----------------------------------------------------------------------------------- scenarios
_TOML_SCALAR = st.one_of(
    st.text(max_size=10), st.integers(-10**6, 10**6), st.floats(allow_nan=False),
    st.booleans(), st.just(float("nan")), st.just(float("inf")),
)
_TOML_VALUE = st.recursive(
    _TOML_SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
_KEYS = st.sampled_from(["scenario", "inputs", "modes", "standards", "outputs", "name", "path",
                         "kind", "source", "facilities", "boundaries", "population", "network",
                         "minutes", "mode", "rule", "preset", "walk", "drive", "ambulance",
                         "id", "only", "dir", "language", "buffer_m"])


def _andorra_table() -> dict:
    return tomllib.loads(ANDORRA_SCENARIO.read_text(encoding="utf-8"))


def _paths(node, prefix=()):
    """Every key path of a nested table (list items addressed by index)."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


_ANDORRA_PATHS = [p for p in _paths(_andorra_table()) if p]


def _parse(table) -> Scenario | None:
    try:
        return parse_scenario(table, folder=ANDORRA_SCENARIO.parent, path=ANDORRA_SCENARIO)
    except CoverageError as exc:
        assert str(exc).strip()
        return None


@FAST
@given(table=st.dictionaries(st.one_of(_KEYS, st.text(max_size=6)), _TOML_VALUE, max_size=5))
def test_any_toml_table_gives_a_scenario_or_an_input_error(table):
    scenario = _parse(table)
    if scenario is not None:
        assert scenario.name == table["scenario"]["name"]


@settings(FAST, max_examples=150)
@given(edits=st.lists(st.tuples(st.sampled_from(_ANDORRA_PATHS),
                                st.one_of(_TOML_VALUE, st.just(None))), min_size=1, max_size=3))
def test_the_andorra_scenario_with_any_value_changed_parses_or_raises_input_error(edits):
    table = _andorra_table()
    for path, value in edits:
        node = table
        try:
            for key in path[:-1]:
                node = node[key]
            if value is None:
                del node[path[-1]]
            else:
                node[path[-1]] = copy.deepcopy(value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced the parent
    _parse(table)


_ASSIGN = st.one_of(
    st.text(max_size=30),
    st.builds(lambda k, v: f"{k}={v}",
              st.lists(st.one_of(_KEYS, st.sampled_from(["[0]", "[9]", "[x]", ""])),
                       min_size=1, max_size=4).map(".".join),
              st.sampled_from(["15", '"zh"', "[15, 30]", "{a = 1}", "x", "", "=", "[",
                               "true", "nan"])),
)


@FAST
@given(assignments=st.lists(_ASSIGN, max_size=3))
def test_any_overrides_give_a_table_or_an_input_error(assignments):
    table = _andorra_table()
    try:
        out = apply_overrides(table, assignments)
    except CoverageError:
        return
    assert isinstance(out, dict)
    assert table == _andorra_table()  # the caller's table is never changed
    _parse(out)


@SMALL
@given(text=st.text(max_size=200))
def test_any_text_as_a_scenario_file_gives_a_scenario_or_an_input_error(tmp_path_factory,
                                                                           text):
    path = tmp_path_factory.mktemp("toml") / "s.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_scenario(path)
    except InputError as exc:
        assert str(path) in str(exc)


# ----------------------------------------------------------------------------------- uploads
_NAME_PART = st.one_of(st.sampled_from(["..", ".", "", "a", "b.shp", "C:", "~", "/", "\\",
                                        "..\\", "../", "/tmp", "\x00", " ", "村"]),
                       st.text(max_size=6))


@FAST
@given(name=st.lists(_NAME_PART, min_size=1, max_size=5).map("".join))
def test_any_upload_name_lands_directly_in_the_session_folder(tmp_path_factory, name):
    from covplan.inputs.uploads import UploadStore, safe_name

    clean = safe_name(name)
    assert clean and "/" not in clean and "\\" not in clean and "\x00" not in clean
    assert not clean.startswith(".") and clean not in (".", "..")
    root = tmp_path_factory.mktemp("up")
    with UploadStore(root=root) as store:
        path = store.save(name, b"x")
        assert path.parent == store.path and path.read_bytes() == b"x"
        assert [p.name for p in root.iterdir()] == [store.path.name]


@SMALL
@given(members=st.lists(st.lists(_NAME_PART, min_size=1, max_size=4).map("/".join),
                        min_size=1, max_size=4, unique=True))
def test_any_zip_member_names_unpack_inside_the_folder_or_are_refused(tmp_path_factory,
                                                                      members):
    import zipfile

    from covplan.inputs.uploads import UploadStore

    root = tmp_path_factory.mktemp("zip")
    (root / "store").mkdir()
    archive = root / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i, member in enumerate(members):
            zf.writestr(zipfile.ZipInfo(member), f"member {i}".encode())
    outside = sorted(p.name for p in root.iterdir())
    with UploadStore(root=root / "store") as store:
        try:
            folder = store.extract_zip(archive)
        except CoverageError:
            assert [p.name for p in store.path.iterdir()] == []
        else:
            for path in folder.rglob("*"):
                assert path.resolve().is_relative_to(store.path)
        assert sorted(p.name for p in root.iterdir()) == outside
        assert [p.name for p in (root / "store").iterdir()] == [store.path.name]
