"""The two Chinese demonstration scenarios (黄浦区, 西湖区 box) on real OSM roads.

Real values are asserted on the real parts only: the OSM outline, the roads, the NBS codes
and the census totals. The units are approximate (近似), the population modelled (模型估算)
and the 黄浦区 facilities illustrative (示意); tests only check that they are marked so.
"""

from __future__ import annotations

import importlib.util
import json
import math
import warnings
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
SCENARIOS = DATA / "scenarios"
HUANGPU_UNITS = DATA / "boundaries" / "huangpu_townships.geojson"
HUANGPU_PLACES = DATA / "population" / "huangpu_places.geojson"
HUANGPU_REGISTER = DATA / "facilities" / "huangpu_register_illustrative.csv"
XIHU_UNITS = DATA / "boundaries" / "xihu_box_townships.geojson"
XIHU_PLACES = DATA / "population" / "xihu_box_places.geojson"
XIHU_FACILITIES = DATA / "facilities" / "xihu_box_osm.geojson"
CHINA_DERIVED = [
    "boundaries/huangpu_townships.geojson",
    "population/huangpu_places.geojson",
    "boundaries/xihu_box_townships.geojson",
    "population/xihu_box_places.geojson",
    "facilities/xihu_box_osm.geojson",
    "facilities/huangpu_register_illustrative.csv",
]


def _nbs(county: str) -> pd.DataFrame:
    towns = pd.read_csv(DATA / "china" / "townships_nbs2023_more.csv", dtype=str)
    return towns[towns["areaCode"] == county]


def _census(county: str) -> pd.Series:
    census = pd.read_csv(DATA / "china" / "census2020_counties_more.csv", dtype={"区划代码": str})
    return census.set_index("区划代码").loc[county]


def _outline() -> shapely.Geometry:
    hits = json.loads((DATA / "osm" / "huangpu_boundary_nominatim.json").read_text("utf-8"))
    hit = next(h for h in hits if h["osm_type"] == "relation" and h["osm_id"] == 371650)
    return shapely.geometry.shape(hit["geojson"])


def _build_module():
    spec = importlib.util.spec_from_file_location("build_data", REPO / "scripts" / "build_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_huangpu_district_area_in_utm51n():
    area = gpd.GeoSeries([_outline()], crs="EPSG:4326").to_crs("EPSG:32651").area.iloc[0]
    assert area / 1e6 == pytest.approx(20.55, rel=0.01)
    units = gpd.read_file(HUANGPU_UNITS).to_crs("EPSG:32651")
    # the approximate cells tile the real outline: same area, no overlap
    assert units.area.sum() == pytest.approx(area, rel=1e-4)
    assert units.union_all().area == pytest.approx(units.area.sum(), rel=1e-6)


def test_huangpu_ten_jiedao_joined_by_code():
    units = gpd.read_file(HUANGPU_UNITS)
    nbs = _nbs("310101")
    assert len(nbs) == 10 and len(units) == 10
    joined = units.merge(nbs, left_on="nbs_code", right_on="code", validate="1:1")
    assert len(joined) == 10
    assert (joined["nbs_name"] == joined["name_y"]).all()
    assert (joined["name_x"] == joined["name_y"] + "（近似）").all()
    assert (joined["unit_id"] == joined["code"]).all()
    assert joined["approximate"].all() and (joined["kind"] == "街道").all()
    assert joined["boundary_method"].str.startswith("近似").all()


def test_huangpu_census_total_preserved():
    census = _census("310101")
    units = gpd.read_file(HUANGPU_UNITS)
    places = gpd.read_file(HUANGPU_PLACES)
    assert int(census["人口数_合计"]) == 662_030 and int(census["乡村人口"]) == 0
    assert units["population"].sum() == 662_030
    assert (units["population"] == units["population"].round()).all()
    assert math.fsum(places["population"]) == pytest.approx(662_030, abs=1e-6)
    by_unit = places.groupby("unit_id")["population"].apply(math.fsum)
    for uid, pop in units.set_index("unit_id")["population"].items():
        assert by_unit[uid] == pytest.approx(pop, abs=1e-6)
    assert places["method"].str.startswith("模型估算").all()
    assert units["population_method"].str.startswith("模型估算").all()
    assert (places["urban_rural"] == "urban").all()


def test_xihu_units_codes_and_census_share():
    units = gpd.read_file(XIHU_UNITS)
    nbs = _nbs("330106")
    assert len(nbs) == 12
    joined = units.merge(nbs, left_on="nbs_code", right_on="code", validate="1:1")
    assert len(joined) == len(units) == 8
    assert (joined["name_x"] == joined["name_y"] + "（近似）").all()
    # each unit holds its 街道's share of the census total, by number of 村/社区 (NBS 2023)
    villages = pd.read_csv(DATA / "china" / "villages_nbs2023_more.csv", dtype=str)
    counts = villages[villages["areaCode"] == "330106"].groupby("streetCode").size()
    total = int(_census("330106")["人口数_合计"])
    assert total == 1_112_992 and counts.sum() == 222
    for code, pop in zip(units["nbs_code"], units["population"], strict=True):
        assert pop == pytest.approx(total * counts[code] / counts.sum(), abs=1.0)
    places = gpd.read_file(XIHU_PLACES)
    assert math.fsum(places["population"]) == pytest.approx(units["population"].sum(), abs=1e-6)


def test_xihu_facilities_are_the_real_box_points():
    raw = json.loads((DATA / "osm" / "hangzhou_osm_health_facilities_2024-08-13.geojson")
                     .read_text("utf-8"))["features"]
    flagged = {f"osm-{f['properties']['osm_type'][0]}{f['properties']['osm_id']}":
               f["geometry"]["coordinates"] for f in raw if f["properties"]["in_xihu_extract_bbox"]}
    fac = gpd.read_file(XIHU_FACILITIES)
    assert len(flagged) == 54 and set(fac["facility_id"]) == set(flagged)
    for fid, geom in zip(fac["facility_id"], fac.geometry, strict=True):
        assert (geom.x, geom.y) == pytest.approx(tuple(flagged[fid]), abs=2e-7)
    kinds = fac.set_index("name")["type"]
    assert kinds["蒋村街道社区卫生服务中心"] == "community_health_centre"
    assert kinds["翠苑街道古荡湾社区卫生服务站"] == "community_health_station"
    assert kinds["紫阳卫生院"] == "township_health_centre"
    assert kinds["浙江省人民医院"] == "hospital"
    assert (fac["source"] == "OpenStreetMap").all()


def test_huangpu_register_is_illustrative_and_loads():
    from covplan.inputs.loaders import load_facilities

    table = pd.read_csv(HUANGPU_REGISTER, dtype=str, encoding="utf-8-sig")
    assert table["机构名称"].str.endswith("（示意）").all()
    assert table["数据性质"].str.startswith("示意").all()
    assert (table["机构类别"] == "社区卫生服务中心").sum() == 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fac = load_facilities(HUANGPU_REGISTER)
    assert len(fac) == 16
    assert fac.geometry.within(_outline()).all()


def test_gcj02_export_round_trip(tmp_path):
    from covplan.inputs.crs import wgs84_to_gcj02
    from covplan.inputs.loaders import load_facilities

    fac = gpd.read_file(XIHU_FACILITIES)
    lon, lat = wgs84_to_gcj02(fac.geometry.x.to_numpy(), fac.geometry.y.to_numpy())
    # as a planner's Amap export: GCJ-02 lon/lat columns in a CSV
    shift = np.hypot((lon - fac.geometry.x) * 96_000, (lat - fac.geometry.y) * 111_000)
    assert shift.min() > 100  # the export really is shifted (hundreds of metres)
    amap = pd.DataFrame({"id": fac["facility_id"], "name": fac["name"], "type": fac["type"],
                         "lng": np.round(lon, 7), "lat": np.round(lat, 7)})
    path = tmp_path / "高德导出.csv"
    amap.to_csv(path, index=False, encoding="utf-8-sig")
    back = load_facilities(path, crs="GCJ-02", id_column="id", name_column="name",
                           type_column="type", lon_column="lng", lat_column="lat")
    back = back.set_index("facility_id").loc[fac["facility_id"]]
    utm = "EPSG:32651"
    d = back.geometry.to_crs(utm).distance(fac.set_index("facility_id").geometry.to_crs(utm))
    assert d.max() < 0.5


def _nearest_node(xy: np.ndarray, point_xy: np.ndarray) -> int:
    return int(np.argmin(((xy - point_xy) ** 2).sum(axis=1)))


def test_travel_times_match_networkx():
    from covplan.engine.network import build_network
    from covplan.engine.routing import nearest

    net = build_network(DATA / "osm" / "huangpu_drive.osm.pbf", mode="drive", cache_dir=None)
    graph = nx.DiGraph()
    for a, b, t in zip(net.u, net.v, net.time_s, strict=True):
        if not graph.has_edge(a, b) or graph[a][b]["t"] > t:
            graph.add_edge(int(a), int(b), t=float(t))
    reg = pd.read_csv(HUANGPU_REGISTER, dtype={"经度": float, "纬度": float})
    fac_pts = gpd.GeoSeries(gpd.points_from_xy(reg["经度"], reg["纬度"]), crs="EPSG:4326")
    places = gpd.read_file(HUANGPU_PLACES)
    fxy = np.column_stack([fac_pts.to_crs(net.crs).x, fac_pts.to_crs(net.crs).y])
    pxy = np.column_stack([places.to_crs(net.crs).geometry.x, places.to_crs(net.crs).geometry.y])
    pairs = [(0, 0), (10, len(places) // 2), (15, len(places) - 1)]
    checked = 0
    for fi, pi in pairs:
        src = _nearest_node(net.xy, fxy[fi])
        dst = _nearest_node(net.xy, pxy[pi])
        try:
            expect = nx.dijkstra_path_length(graph, src, dst, weight="t") / 60.0
        except nx.NetworkXNoPath:
            expect = math.inf
        got = nearest(net, np.array([src]), np.array([dst]), metric="time",
                      direction="from_facility", turnout_minutes=0.0).value[0]
        assert got == pytest.approx(expect, abs=1e-6)
        checked += math.isfinite(expect)
    assert checked >= 2


def _col(table: pd.DataFrame, *words: str) -> str:
    hits = [c for c in table.columns if all(w in c for w in words)]
    assert hits, f"no column with {words} in {list(table.columns)}"
    return hits[0]


@pytest.mark.parametrize("name", ["huangpu", "xihu"])
def test_audit_runs_and_15_minute_share_recounted(name, tmp_path, monkeypatch):
    from covplan.cli import main

    monkeypatch.setenv("COVPLAN_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "输出"
    result = CliRunner().invoke(main, ["audit", str(SCENARIOS / f"{name}.toml"),
                                       "--out", str(out)])
    assert result.exit_code in (0, 1), result.output
    for f in ("report.html", "units.csv", "places.csv", "manifest.json"):
        assert (out / f).is_file(), f
    units = pd.read_csv(out / "units.csv", dtype=str, encoding="utf-8-sig")
    places = pd.read_csv(out / "places.csv", dtype=str, encoding="utf-8-sig")
    rule = units[units[_col(units, "规则编号")] == "SPB-01"]
    assert len(rule) == len(gpd.read_file(HUANGPU_UNITS if name == "huangpu" else XIHU_UNITS))
    minutes = pd.to_numeric(places[_col(places, "分钟", "步行")], errors="coerce")
    pop = places[_col(places, "人口")].astype(float)
    unit = places[_col(places, "单元编码")]
    for uid, share in zip(rule[_col(units, "单元编码")], rule[_col(units, "覆盖率")],
                          strict=True):
        mask = unit == uid
        covered = math.fsum(pop[mask & (minutes <= 15)])
        # units.csv rounds the share to 4 decimals, places.csv the minutes to 2
        assert covered / math.fsum(pop[mask]) == pytest.approx(float(share), abs=5e-5), uid


def test_build_script_reproduces_china_files(tmp_path):
    written = _build_module().build_china(DATA, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p, _ in written) == sorted(CHINA_DERIVED)
    for rel in CHINA_DERIVED:
        assert (tmp_path / rel).read_bytes() == (DATA / rel).read_bytes(), rel


def test_scenarios_are_chinese_and_listed():
    from covplan.planning import scenario_files
    from covplan.scenario import load_scenario

    files = scenario_files(SCENARIOS)
    for name in ("huangpu", "xihu"):
        assert name in files
        sc = load_scenario(files[name])
        assert sc.document.scenario.language == "zh"
        assert any("\u4e00" <= ch <= "\u9fff" for ch in sc.document.scenario.name)
