"""Exports of a run (covplan.outputs) checked on a RunResult built from real Liechtenstein data.

Units are the 11 municipalities (admin_level 8 relations of the 2013 OSM extract) with the
official 2014 populations; places are the OSM place nodes, each carrying an equal share of its
municipality's population; facilities are the OSM hospital and pharmacies plus one facility
with a hostile name. Travel minutes are straight-line metres / speed, computed here with numpy,
so every number the exports contain is known independently of the engine.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
import warnings
from html.parser import HTMLParser
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import osmium
import pandas as pd
import pyogrio
import pytest
import shapely
from covplan.outputs import OUTPUT_NAMES, write_outputs
from covplan.outputs.manifest import build_manifest, manifest_digest
from covplan.outputs.staticmap import DPI, FIGSIZE_IN, FontFallbackWarning, find_cjk_font
from covplan.outputs.webmap import layer_names, render_map_html
from covplan.results import RunResult
from PIL import Image
from shapely import wkb
from shipped import LIECHTENSTEIN_PBF, LIECHTENSTEIN_POPULATION

ROOT = Path(__file__).resolve().parents[1]
EVIL = "<script>alert(1)</script>"
SPEED_M_PER_MIN = {"walk": 4500 / 60, "drive": 40000 / 60}
RULES = {  # rule_id -> (name, mode, minutes, required share)
    "R-DRIVE-15": ("Any facility within 15 min by car", "drive", 15.0, 0.9),
    "R-WALK-30": ("Any facility within 30 min on foot", "walk", 30.0, 0.5),
}
UTM = "EPSG:32632"  # Liechtenstein is in UTM zone 32N


def _read_osm() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    factory = osmium.geom.WKBFactory()
    units, places, facilities = [], [], []
    processor = osmium.FileProcessor(str(LIECHTENSTEIN_PBF)).with_areas().with_filter(
        osmium.filter.KeyFilter("boundary", "place", "amenity")
    )
    for obj in processor:
        tags = obj.tags
        if obj.is_area() and tags.get("admin_level") == "8" and tags.get("name"):
            units.append((tags["name"], wkb.loads(factory.create_multipolygon(obj), hex=True)))
        elif obj.is_node() and tags.get("place") in ("town", "village", "hamlet"):
            places.append((obj.id, tags.get("name"), obj.location.lon, obj.location.lat))
        elif obj.is_node() and tags.get("amenity") in ("hospital", "pharmacy"):
            facilities.append((obj.id, tags.get("name") or "Apotheke", tags["amenity"],
                               obj.location.lon, obj.location.lat))
    u = gpd.GeoDataFrame(units, columns=["name", "geometry"], crs="EPSG:4326")
    p = pd.DataFrame(places, columns=["osm_id", "name", "lon", "lat"]).drop_duplicates(
        ["name", "lon", "lat"])
    p = gpd.GeoDataFrame(p, geometry=gpd.points_from_xy(p.lon, p.lat), crs="EPSG:4326")
    f = pd.DataFrame(facilities, columns=["osm_id", "name", "type", "lon", "lat"])
    f = gpd.GeoDataFrame(f, geometry=gpd.points_from_xy(f.lon, f.lat), crs="EPSG:4326")
    return u, p, f


def _build_result() -> RunResult:
    osm_units, osm_places, osm_fac = _read_osm()
    pop = pd.read_csv(LIECHTENSTEIN_POPULATION)
    units = osm_units.merge(pop, left_on="name", right_on="municipality", how="inner")
    units = gpd.GeoDataFrame(
        {
            "unit_id": units["iso3166_2"], "name": units["name"], "level": "municipality",
            "parent_id": "LI", "population": units["population_2014_12_31"].astype(float),
            "urban_rural": None,
        },
        geometry=units.geometry, crs="EPSG:4326",
    ).sort_values("unit_id").reset_index(drop=True)

    joined = gpd.sjoin(osm_places, units[["unit_id", "geometry"]], predicate="within")
    per_unit = joined.groupby("unit_id")["osm_id"].transform("count")
    unit_pop = joined["unit_id"].map(units.set_index("unit_id")["population"])
    places = gpd.GeoDataFrame(
        {
            "place_id": "n" + joined["osm_id"].astype(str), "unit_id": joined["unit_id"],
            "population": (unit_pop / per_unit).to_numpy(), "urban_rural": "rural",
            "ur_source": "default",
        },
        geometry=joined.geometry.to_numpy(), crs="EPSG:4326",
    ).sort_values("place_id").reset_index(drop=True)

    fac = osm_fac.copy()
    fac["facility_id"] = "n" + fac["osm_id"].astype(str)
    fac["source"] = "osm"
    evil = gpd.GeoDataFrame(  # at the Schaan town centre
        {"facility_id": ["evil-1"], "name": [EVIL], "type": ["clinic"], "source": ["upload"],
         "osm_id": [None]},
        geometry=[shapely.Point(9.5060, 47.1650)], crs="EPSG:4326",
    )
    facilities = pd.concat(
        [fac[["facility_id", "name", "type", "source", "osm_id", "geometry"]], evil],
        ignore_index=True,
    )
    facilities = gpd.GeoDataFrame(facilities, geometry="geometry", crs="EPSG:4326")

    # Straight-line travel minutes, in metres of the UTM zone, nearest of all facilities.
    pxy = np.column_stack([places.to_crs(UTM).geometry.x, places.to_crs(UTM).geometry.y])
    fxy = np.column_stack([facilities.to_crs(UTM).geometry.x, facilities.to_crs(UTM).geometry.y])
    dist = np.hypot(pxy[:, None, 0] - fxy[None, :, 0], pxy[:, None, 1] - fxy[None, :, 1])
    nearest = dist.argmin(axis=1)
    for mode, speed in SPEED_M_PER_MIN.items():
        places[f"minutes_{mode}"] = dist.min(axis=1) / speed
        places[f"nearest_{mode}"] = facilities["facility_id"].to_numpy()[nearest]

    rows, evidence = [], []
    for rule_id, (rule_name, mode, minutes, share_needed) in RULES.items():
        for unit in units.itertuples():
            inside = places[places["unit_id"] == unit.unit_id]
            if inside.empty:
                rows.append((rule_id, rule_name, unit.unit_id, unit.name, "municipality",
                             "not_applicable", np.nan, share_needed, np.nan, unit.population,
                             np.nan, ""))
                continue
            ok = inside[f"minutes_{mode}"] <= minutes
            covered = float(inside.loc[ok, "population"].sum())
            share = covered / unit.population
            rows.append((rule_id, rule_name, unit.unit_id, unit.name, "municipality",
                         "pass" if share >= share_needed else "fail", share, share_needed,
                         share - share_needed, unit.population, covered,
                         f"{int((~ok).sum())} places beyond {minutes:g} min"))
            for place in inside[~ok].itertuples():
                evidence.append((rule_id, place.place_id, unit.unit_id, place.population,
                                 getattr(place, f"nearest_{mode}"),
                                 getattr(place, f"minutes_{mode}"), minutes))
    unit_results = pd.DataFrame(rows, columns=[
        "rule_id", "rule_name", "unit_id", "unit_name", "level", "status", "value", "threshold",
        "margin", "population", "covered_population", "evidence"])
    evidence_df = pd.DataFrame(evidence, columns=[
        "rule_id", "place_id", "unit_id", "population", "facility_id", "minutes", "threshold"])
    summary = []
    for rule_id, group in unit_results.groupby("rule_id", sort=False):
        applicable = group[group["status"] != "not_applicable"]
        summary.append((rule_id, group["rule_name"].iloc[0],
                        "pass" if (applicable["status"] == "pass").all() else "fail",
                        int((applicable["status"] == "pass").sum()), len(applicable),
                        applicable["population"].sum(), applicable["covered_population"].sum(),
                        applicable["covered_population"].sum() / applicable["population"].sum()))
    summary_df = pd.DataFrame(summary, columns=[
        "rule_id", "rule_name", "status", "units_pass", "units_total", "population",
        "covered_population", "share"])

    fac_utm = facilities.to_crs(UTM)
    iso_rows = []
    for mode, minutes in (("walk", 15.0), ("walk", 30.0), ("drive", 15.0)):
        area = shapely.union_all(fac_utm.geometry.buffer(SPEED_M_PER_MIN[mode] * minutes).values)
        iso_rows.append((mode, minutes, "any", area))
    isochrones = gpd.GeoDataFrame(iso_rows, columns=["mode", "minutes", "facility_types",
                                                     "geometry"], crs=UTM).to_crs("EPSG:4326")
    proposals = gpd.GeoDataFrame(
        {"site_id": ["S1", "S2"], "rank": [1, 2], "gain": [310.0, 120.0]},
        geometry=[shapely.Point(9.6084, 47.1028), shapely.Point(9.5763, 47.1118)],
        crs="EPSG:4326",
    )
    manifest = build_manifest(
        inputs={"network": LIECHTENSTEIN_PBF, "population": LIECHTENSTEIN_POPULATION},
        parameters={"modes": list(SPEED_M_PER_MIN), "isochrone_minutes": [15, 30]},
        timings={"network": 0.5, "audit": 0.25},
    )
    return RunResult(
        name="Liechtenstein", language="en", facilities=facilities, units=units, places=places,
        unit_results=unit_results, summary=summary_df, evidence=evidence_df,
        isochrones=isochrones, proposals=proposals, manifest=manifest,
    )


@pytest.fixture(scope="module")
def result() -> RunResult:
    return _build_result()


@pytest.fixture(scope="module")
def written(result: RunResult, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("run") / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FontFallbackWarning)
        return write_outputs(result, out, language="en")


@pytest.fixture(scope="module")
def written_zh(result: RunResult, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("run_zh") / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FontFallbackWarning)
        return write_outputs(result, out, language="zh",
                             formats=["units.csv", "units.xlsx", "places.csv", "report.html"])


def test_fixture_is_real_liechtenstein(result: RunResult) -> None:
    assert len(result.units) == 11
    assert result.units["population"].sum() == 37370  # official total, 2014-12-31
    assert "Liechtensteinisches Landesspital" in set(result.facilities["name"])
    # Every place inherits a share of a real municipal population.
    assert result.places["population"].sum() <= 37370


def test_all_files_written_with_fixed_names(written: dict[str, Path]) -> None:
    assert list(written) == list(OUTPUT_NAMES)
    folder = written["map.html"].parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(OUTPUT_NAMES)
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging


def test_manifest_hashes_match_inputs_and_outputs(result: RunResult,
                                                  written: dict[str, Path]) -> None:
    doc = json.loads(written["manifest.json"].read_text("utf-8"))
    for role, path in (("network", LIECHTENSTEIN_PBF), ("population", LIECHTENSTEIN_POPULATION)):
        assert doc["inputs"][role]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert doc["inputs"][role]["bytes"] == path.stat().st_size
    assert doc["osm_extract_date"] == "2013-08-03"  # from the PBF header
    assert doc["packages"]["numpy"] == np.__version__
    assert doc["packages"]["geopandas"] == gpd.__version__
    assert doc["python"] == sys.version.split()[0]
    assert doc["manifest_sha256"] == manifest_digest(result.manifest)
    assert set(doc["outputs"]) == set(OUTPUT_NAMES) - {"manifest.json"}
    for name, info in doc["outputs"].items():
        data = written[name].read_bytes()
        assert info["sha256"] == hashlib.sha256(data).hexdigest(), name
        assert info["bytes"] == len(data)
    assert doc["run"] == {"name": "Liechtenstein", "language": "en", "all_pass": False}


def test_gpkg_layers_counts_values_and_manifest(result: RunResult,
                                               written: dict[str, Path]) -> None:
    path = written["results.gpkg"]
    layers = {name: geom for name, geom in pyogrio.list_layers(path)}
    assert set(layers) == {"facilities", "units", "unit_results", "places", "isochrones",
                           "proposals", "run_manifest"}
    assert layers["run_manifest"] is None  # attribute table
    counts = {name: pyogrio.read_info(path, layer=name)["features"] for name in layers}
    assert counts["units"] == 11
    assert counts["unit_results"] == 11 * len(RULES)
    assert counts["facilities"] == len(result.facilities)
    assert counts["places"] == len(result.places)
    assert counts["isochrones"] == 3
    assert counts["proposals"] == 2
    places = gpd.read_file(path, layer="places").set_index("place_id")
    expected = result.places.set_index("place_id")
    np.testing.assert_allclose(places.loc[expected.index, "minutes_walk"],
                               expected["minutes_walk"], rtol=1e-12)
    ur = gpd.read_file(path, layer="unit_results")
    vaduz = ur[(ur["unit_id"] == "LI-11") & (ur["rule_id"] == "R-DRIVE-15")].iloc[0]
    assert vaduz["unit_name"] == "Vaduz" and vaduz["population"] == 5425
    assert ur.geometry.notna().all()
    fac = gpd.read_file(path, layer="facilities")
    assert EVIL in set(fac["name"])  # stored verbatim: the GeoPackage is data, not HTML
    table = pyogrio.read_dataframe(path, layer="run_manifest")
    stored = {k: json.loads(v) for k, v in zip(table["key"], table["value"], strict=True)}
    assert stored["inputs"] == json.loads(json.dumps(result.manifest["inputs"]))
    meta = pyogrio.read_info(path, layer="facilities")["dataset_metadata"]
    assert json.loads(meta["run_manifest"])["inputs"]["network"]["sha256"] == \
        hashlib.sha256(LIECHTENSTEIN_PBF.read_bytes()).hexdigest()


def test_units_csv_english(result: RunResult, written: dict[str, Path]) -> None:
    table = pd.read_csv(written["units.csv"])
    assert len(table) == 11 * len(RULES)
    assert list(table.columns[:6]) == ["unit_id", "unit_name", "level", "rule_id", "rule_name",
                                       "status"]
    merged = table.merge(result.unit_results, on=["unit_id", "rule_id"], suffixes=("", "_r"))
    np.testing.assert_allclose(merged["covered_population"].fillna(-1),
                               merged["covered_population_r"].fillna(-1))
    share = (merged["covered_population"] / merged["population"]).round(4)
    np.testing.assert_allclose(merged["share"].fillna(-1), share.fillna(-1))
    assert (table["status"].value_counts().sort_index()
            == result.unit_results["status"].value_counts().sort_index()).all()


def test_units_csv_and_xlsx_chinese(result: RunResult, written_zh: dict[str, Path]) -> None:
    raw = written_zh["units.csv"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM so Excel reads UTF-8 Chinese
    table = pd.read_csv(written_zh["units.csv"], encoding="utf-8-sig")
    for heading in ("单元编码", "单元名称", "规则", "状态", "人口", "覆盖人口", "覆盖率"):
        assert heading in table.columns
    counts = result.unit_results["status"].value_counts()
    zh = table["状态"].value_counts()
    assert zh.get("达标", 0) == counts.get("pass", 0)
    assert zh.get("未达标", 0) == counts.get("fail", 0)
    assert zh.get("不适用", 0) == counts.get("not_applicable", 0)

    book = openpyxl.load_workbook(written_zh["units.xlsx"])
    assert book.sheetnames == ["单元结果", "规则汇总", "居民点", "运行清单"]
    units_sheet = book["单元结果"]
    header = [c.value for c in units_sheet[1]]
    assert header[:2] == ["单元编码", "单元名称"]
    assert units_sheet.max_row == 1 + 11 * len(RULES)
    summary = book["规则汇总"]
    assert summary.max_row == 1 + len(RULES)
    manifest_rows = {row[0].value: row[1].value for row in book["运行清单"].iter_rows(min_row=2)}
    assert json.loads(manifest_rows["输入文件"])["network"]["sha256"] == \
        hashlib.sha256(LIECHTENSTEIN_PBF.read_bytes()).hexdigest()
    places_sheet = book["居民点"]
    header = [c.value for c in places_sheet[1]]
    assert "分钟（步行）" in header and "最近机构（驾车）" in header


def test_places_csv_nearest_and_minutes(result: RunResult, written: dict[str, Path]) -> None:
    table = pd.read_csv(written["places.csv"]).set_index("place_id")
    assert len(table) == len(result.places)
    expected = result.places.set_index("place_id")
    for mode in SPEED_M_PER_MIN:
        np.testing.assert_allclose(table[f"minutes_{mode}"], expected[f"minutes_{mode}"].round(2),
                                   atol=1e-9)
        assert (table[f"nearest_{mode}"] == expected[f"nearest_{mode}"]).all()
    # Vaduz' place node is 260 m from the Schloss Apotheke (nearest facility).
    vaduz = table[table["unit_name"] == "Vaduz"].iloc[0]
    assert vaduz["nearest_name_walk"] == "Schloss Apotheke"
    assert 0.1 < vaduz["minutes_walk"] < 5


def _manifest_from_html(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="run-manifest">(.*?)</script>', page,
                      re.S)
    assert match, "run-manifest script missing"
    return json.loads(match.group(1))


def test_map_html_layers_legend_attribution_offline(result: RunResult,
                                                    written: dict[str, Path]) -> None:
    page = written["map.html"].read_text("utf-8")
    for name in layer_names(result, language="en"):
        assert json.dumps(name)[1:-1] in page or name in page, name
    assert "15-minute area (walk)" in page and "30-minute area (walk)" in page
    assert 'id="map-legend"' in page
    assert "© OpenStreetMap contributors" in page
    assert "L.control.layers" in page
    assert "L.control.scale" in page
    # Offline from disk: Leaflet inlined, no CDN script or stylesheet.
    assert "Leaflet 1.9.4" in page
    assert not re.search(r'<script[^>]+src=', page)
    assert not re.search(r'<link[^>]+stylesheet', page)
    assert _manifest_from_html(page)["inputs"]["network"]["sha256"] == \
        hashlib.sha256(LIECHTENSTEIN_PBF.read_bytes()).hexdigest()


def test_map_html_chinese_labels(result: RunResult) -> None:
    page = render_map_html(result, language="zh")
    for name in layer_names(result, language="zh"):
        assert json.dumps(name)[1:-1] in page or name in page, name
    assert "15 分钟等时圈（步行）" in layer_names(result, language="zh")
    assert "图例" in page and "© OpenStreetMap contributors" in page


def test_map_html_escapes_hostile_facility_name(written: dict[str, Path]) -> None:
    page = written["map.html"].read_text("utf-8")
    assert EVIL not in page
    assert "alert(1)</script>" not in page
    # The name is in the embedded GeoJSON, HTML-escaped (and JSON-escaped by tojson).
    escaped = "\\u0026lt;script\\u0026gt;alert(1)\\u0026lt;/script\\u0026gt;"
    assert escaped in page


@pytest.mark.parametrize(
    "payload",
    [
        EVIL,
        "</script><script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "`${alert(1)}`",
        "\"'><svg onload=alert(1)>",
    ],
)
def test_map_hostile_strings_add_no_markup(result: RunResult, payload: str) -> None:
    def variant(text: str) -> RunResult:
        fac = result.facilities.copy()
        fac.loc[fac["facility_id"] == "evil-1", "name"] = text
        units = result.units.copy()
        units.loc[0, "name"] = text
        return RunResult(**{**result.__dict__, "facilities": fac, "units": units,
                            "name": text})

    benign = _page_structure(render_map_html(variant("Harmless name"), language="en"))
    hostile = _page_structure(render_map_html(variant(payload), language="en"))
    # Same elements and attributes: the payload added no markup and closed no script.
    assert hostile[0] == benign[0]
    # Inside scripts the payload only ever sits in JSON/JS string literals, never in code
    # (Folium's own Tooltip/Popup would paste it into a JavaScript template literal).
    assert len(hostile[1]) == len(benign[1])
    for code in hostile[1]:
        assert "alert(" not in code


class _Structure(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, tuple[str, ...]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, tuple(sorted(name for name, _ in attrs))))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


_STRING_LITERAL = re.compile(r'"(?:[^"\\\n]|\\.)*"' + r"|'(?:[^'\\\n]|\\.)*'")


def _page_structure(page: str) -> tuple[list[tuple[str, tuple[str, ...]]], list[str]]:
    """Start tags with their attribute names, and script bodies minus their string literals."""
    parser = _Structure()
    parser.feed(page)
    parser.close()
    return parser.tags, [_STRING_LITERAL.sub('""', code) for code in parser.scripts]


def test_png_size_manifest_and_font_fallback(result: RunResult, written: dict[str, Path],
                                             tmp_path: Path) -> None:
    with Image.open(written["map.png"]) as image:
        assert image.format == "PNG"
        assert image.size == (int(FIGSIZE_IN[0] * DPI), int(FIGSIZE_IN[1] * DPI))
        stored = json.loads(image.text["run-manifest"])
        # Not a blank canvas: units, isochrones and markers give many colours.
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 50
    assert stored["inputs"]["population"]["sha256"] == \
        hashlib.sha256(LIECHTENSTEIN_POPULATION.read_bytes()).hexdigest()

    from covplan.outputs.staticmap import write_static_map

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_static_map(result, tmp_path / "zh.png", language="zh")
    fallback = [w for w in caught if issubclass(w.category, FontFallbackWarning)]
    assert bool(fallback) == (find_cjk_font() is None)
    with Image.open(tmp_path / "zh.png") as image:
        assert image.size == (1800, 1200)


def test_report_summary_escaping_and_manifest(result: RunResult, written: dict[str, Path],
                                              written_zh: dict[str, Path]) -> None:
    page = written["report.html"].read_text("utf-8")
    for row in result.summary.itertuples():
        assert row.rule_name in page
        assert f"{row.units_pass} / {row.units_total}" in page
        assert f"{100 * row.share:.1f}%" in page
    assert "© OpenStreetMap contributors" in page and "ODbL" in page
    assert hashlib.sha256(LIECHTENSTEIN_PBF.read_bytes()).hexdigest() in page
    assert _manifest_from_html(page)["osm_extract_date"] == "2013-08-03"
    assert page.count("<script") == 1  # only the JSON manifest
    zh = written_zh["report.html"].read_text("utf-8")
    assert "各规则汇总" in zh and "未达标" in zh

    from covplan.outputs.report import render_report

    hostile = RunResult(**{**result.__dict__, "name": EVIL})
    page = render_report(hostile)
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script") == 1


def test_csv_and_xlsx_neutralise_formulas(tmp_path: Path) -> None:
    from covplan.outputs.tables import write_csv, write_xlsx

    frame = pd.DataFrame({"name": ['=HYPERLINK("http://x","y")', "-12.5", "Vaduz"],
                          "n": [1, 2, 3]})
    write_csv(frame, tmp_path / "t.csv", language="en")
    back = pd.read_csv(tmp_path / "t.csv", dtype={"name": str})
    assert list(back["name"]) == ['\'=HYPERLINK("http://x","y")', "-12.5", "Vaduz"]
    write_xlsx(tmp_path / "t.xlsx", sheets={"t": frame})
    sheet = openpyxl.load_workbook(tmp_path / "t.xlsx")["t"]
    assert sheet["A2"].value == '=HYPERLINK("http://x","y")'
    assert sheet["A2"].data_type == "s"


def test_formats_subset_and_unknown(result: RunResult, tmp_path: Path) -> None:
    out = tmp_path / "out"
    written = write_outputs(result, out, formats=["units.csv", "manifest.json"])
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "units.csv"]
    doc = json.loads(written["manifest.json"].read_text("utf-8"))
    assert set(doc["outputs"]) == {"units.csv"}
    from covplan.errors import CoverageError

    with pytest.raises(CoverageError, match="unknown output format"):
        write_outputs(result, out, formats=["map.pdf"])
    with pytest.raises(CoverageError, match="unknown output language"):
        write_outputs(result, out, language="fr", formats=["units.csv"])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _previous_results(written: dict[str, Path], out: Path) -> Path:
    """A folder holding a copy of every output of an earlier run."""
    out.mkdir()
    for path in written.values():
        (out / path.name).write_bytes(path.read_bytes())
    return out


def test_failed_write_leaves_previous_results(result: RunResult, written: dict[str, Path],
                                              monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    out = _previous_results(written, tmp_path / "out")
    before = _snapshot(out)
    calls: list[str] = []

    def boom(*args: object, **kwargs: object) -> None:
        calls.append("map.png")
        raise RuntimeError("interrupted while drawing map.png")

    import covplan.outputs.staticmap as staticmap

    monkeypatch.setattr(staticmap, "write_static_map", boom)
    changed = RunResult(**{**result.__dict__, "name": "Changed run"})
    with pytest.raises(RuntimeError, match="interrupted"):
        write_outputs(changed, out)
    assert calls == ["map.png"]  # gpkg, csv, xlsx and map.html had been written already
    assert _snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # staging folder removed


def test_killed_write_leaves_previous_results(result: RunResult, written: dict[str, Path],
                                              tmp_path: Path) -> None:
    out = _previous_results(written, tmp_path / "out")
    before = _snapshot(out)
    pickled = tmp_path / "result.pkl"
    pickled.write_bytes(pickle.dumps(result))
    script = textwrap.dedent(
        f"""
        import os, pickle, signal
        import covplan.outputs.report as report
        from covplan.outputs import write_outputs

        def die(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        report.write_report = die
        result = pickle.loads(open({str(pickled)!r}, "rb").read())
        write_outputs(result, {str(out)!r}, formats=["units.csv", "places.csv", "report.html"])
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          timeout=120, check=False)
    assert proc.returncode == -9, proc.stderr.decode()
    assert _snapshot(out) == before
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".out.staging-")]
    assert len(stale) == 1 and {p.name for p in stale[0].iterdir()} == {"units.csv",
                                                                       "places.csv"}
    write_outputs(result, out, formats=["units.csv"])  # the next run cleans up
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.staging-")]
    assert os.path.exists(out / "units.csv")



def test_empty_run_still_exports(result: RunResult, tmp_path: Path) -> None:
    """No isochrones, no evidence, no rules, no proposals: every file is still written."""
    empty = RunResult(
        name="Empty", language="en", facilities=result.facilities, units=result.units,
        places=result.places[["place_id", "unit_id", "population", "urban_rural", "geometry"]],
        unit_results=result.unit_results.iloc[0:0], summary=result.summary.iloc[0:0],
        evidence=result.evidence.iloc[0:0],
        isochrones=gpd.GeoDataFrame({"mode": [], "minutes": [], "facility_types": []},
                                    geometry=[], crs="EPSG:4326"),
        proposals=None, manifest={},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FontFallbackWarning)
        written = write_outputs(empty, tmp_path / "out")
    assert list(written) == list(OUTPUT_NAMES)
    counts = {name: pyogrio.read_info(written["results.gpkg"], layer=name)["features"]
              for name, _ in pyogrio.list_layers(written["results.gpkg"])}
    assert counts == {"facilities": len(result.facilities), "units": 11, "unit_results": 0,
                      "places": len(result.places), "isochrones": 0, "run_manifest": 0}
    assert len(pd.read_csv(written["units.csv"])) == 0
    assert json.loads(written["manifest.json"].read_text("utf-8"))["run"]["all_pass"] is True


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to parse JavaScript")
def test_map_scripts_are_valid_javascript(written: dict[str, Path], tmp_path: Path) -> None:
    page = written["map.html"].read_text("utf-8")
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert len(scripts) >= 2  # inlined Leaflet and the map
    for i, code in enumerate(scripts):
        path = tmp_path / f"s{i}.js"
        path.write_text(code, encoding="utf-8")
        proc = subprocess.run(["node", "--check", str(path)], capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr


def test_audit_column_names_are_understood(result: RunResult, tmp_path: Path) -> None:
    """Tables named as the audit names them (title, region_status, limit, ...) work too."""
    from covplan.outputs.report import render_report
    from covplan.outputs.webmap import place_shortfalls

    summary = result.summary.rename(columns={
        "rule_name": "title", "status": "region_status"})
    summary["units_fail"] = result.summary["units_total"] - result.summary["units_pass"]
    summary = summary.drop(columns=["units_total", "share"])
    evidence = result.evidence.rename(columns={"minutes": "value", "threshold": "limit"})
    evidence["covered"] = False
    covered_row = evidence.iloc[[0]].assign(covered=True, place_id="covered-place")
    audit_like = RunResult(**{
        **result.__dict__,
        "unit_results": result.unit_results.rename(columns={"rule_name": "title"}),
        "summary": summary,
        "evidence": pd.concat([evidence, covered_row], ignore_index=True),
    })
    expected = place_shortfalls(result)
    got = place_shortfalls(audit_like)
    assert list(got.index) == list(expected.index)
    np.testing.assert_allclose(got["shortfall"], expected["shortfall"])
    # Independently: worst (minutes - limit) per uncovered place.
    by_hand = (result.evidence["minutes"] - result.evidence["threshold"]).groupby(
        result.evidence["place_id"]).max()
    np.testing.assert_allclose(got.loc[by_hand.index, "shortfall"], by_hand)
    page = render_report(audit_like)
    for row in result.summary.itertuples():
        assert row.rule_name in page
        assert f"{row.units_pass} / {row.units_total}" in page
        assert f"{100 * row.share:.1f}%" in page
    written = write_outputs(audit_like, tmp_path / "out", formats=["units.csv"])
    table = pd.read_csv(written["units.csv"])
    assert set(table["rule_name"]) == {name for name, *_ in RULES.values()}


def test_unreachable_place_is_empty_not_inf(result: RunResult, tmp_path: Path) -> None:
    places = result.places.copy()
    places.loc[0, "minutes_walk"] = np.inf
    places.loc[0, "nearest_walk"] = None
    run = RunResult(**{**result.__dict__, "places": places})
    written = write_outputs(run, tmp_path / "out", formats=["places.csv", "results.gpkg"])
    table = pd.read_csv(written["places.csv"])
    assert math.isnan(table.loc[0, "minutes_walk"]) and pd.isna(table.loc[0, "nearest_walk"])
    assert table["minutes_walk"].notna().sum() == len(places) - 1
    layer = gpd.read_file(written["results.gpkg"], layer="places")
    first = layer[layer["place_id"] == places.loc[0, "place_id"]].iloc[0]
    assert pd.isna(first["minutes_walk"])  # NULL in the GeoPackage = unreachable
