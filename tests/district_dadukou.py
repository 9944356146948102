"""A fixture district built from the shipped NBS 2023 codes of 大渡口区 (500104).

The 8 镇街 and their 97 村/社区 (names and codes) are the real ones, read from the shipped NBS
tables (:func:`covplan.china.nbs.load_units`). Everything else is GENERATED and labelled so (a
``note`` column on every feature): the geometry is a grid (each 镇街 a block three cells wide,
each 村/社区 one 0.01 degree cell in code order), the populations follow a formula of the code,
and the roads are a grid along the cell edges and centre lines. Facilities are placed by the
tests (:func:`write_facilities`), one per cell centre it names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import shapely
from covplan.china.nbs import load_units
from shapely.geometry import box, mapping

COUNTY = "500104"
NOTE = "GENERATED geometry and population (test fixture); names and codes: NBS 2023"
X0, Y0, CELL, COLUMNS = 106.40, 29.40, 0.01, 3
#: Residents of 沙沱村 (跳磴镇): under DDK-01's 800, served by outreach.
SMALL_VILLAGE = "500104103209"


@dataclass
class District:
    """The fixture's tables: townships and villages with their generated cells and people."""

    townships: pd.DataFrame  # code, name, x0 (left edge of its block)
    villages: pd.DataFrame  # code, name, township, col, row, population


def generated_population(code: str) -> int:
    """The GENERATED population of a village-level unit (a formula of its code)."""
    part = int(code[9:])
    if code == SMALL_VILLAGE:
        return 600
    if code == "500104001004":  # 钢花社区: more than one station's 20,000
        return 25_000
    if part < 200:  # 社区: 1,500-9,499 (in all near the 2020 census total of 421,904)
        return 1_500 + (part * 613) % 8_000
    return 800 + (part * 211) % 2_000  # 行政村: 800-2,799


def district() -> District:
    """Return the 8 镇街 and 97 村/社区 of 大渡口区 with their generated cells and people."""
    units = load_units(year=2023, county=COUNTY)
    towns = units[units["level"] == "township"].sort_values("code").reset_index(drop=True)
    towns = towns[["code", "name"]].assign(x0=[X0 + i * COLUMNS * CELL for i in range(len(towns))])
    rows = []
    for _, town in towns.iterrows():
        vill = units[(units["level"] == "village") & (units["parent_code"] == town["code"])]
        for k, (_, v) in enumerate(vill.sort_values("code").iterrows()):
            rows.append({"code": v["code"], "name": v["name"], "township": town["code"],
                         "col": k % COLUMNS, "row": k // COLUMNS,
                         "population": generated_population(v["code"])})
    return District(townships=towns, villages=pd.DataFrame(rows))


def cell(d: District, code: str) -> tuple[float, float, float, float]:
    """Return the cell (x_min, y_min, x_max, y_max) of a village-level unit."""
    v = d.villages.set_index("code").loc[code]
    x0 = float(d.townships.set_index("code").at[v["township"], "x0"])
    x = x0 + int(v["col"]) * CELL
    y = Y0 + int(v["row"]) * CELL
    return (x, y, x + CELL, y + CELL)


def centre(d: District, code: str, shift: float = 0.0) -> tuple[float, float]:
    """Return a point inside a unit's cell (its centre moved right by ``shift`` degrees)."""
    x1, y1, x2, y2 = cell(d, code)
    return ((x1 + x2) / 2 + shift, (y1 + y2) / 2 + 0.002)


def _box(b: tuple[float, float, float, float]) -> list[list[list[float]]]:
    x1, y1, x2, y2 = b
    return [[[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]]]


def _write(path: Path, features: list[dict]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features},
                               ensure_ascii=False), encoding="utf-8")
    return path


def write_villages(d: District, path: Path, *, with_codes: bool = True) -> Path:
    """Write the village-level units (one cell each) as GeoJSON."""
    feats = []
    for _, v in d.villages.iterrows():
        props = {"name": v["name"], "population": int(v["population"]), "note": NOTE}
        props["code" if with_codes else "vid"] = v["code"] if with_codes else f"v{v.name}"
        feats.append({"type": "Feature", "properties": props,
                      "geometry": {"type": "Polygon", "coordinates": _box(cell(d, v["code"]))}})
    return _write(path, feats)


def write_townships(d: District, path: Path) -> Path:
    """Write the 8 镇街 as GeoJSON: each the union of its villages' cells."""
    feats = []
    for _, t in d.townships.iterrows():
        codes = d.villages.loc[d.villages["township"] == t["code"], "code"]
        shape = shapely.union_all([box(*cell(d, c)) for c in codes])
        feats.append({"type": "Feature",
                      "properties": {"code": t["code"], "name": t["name"], "note": NOTE},
                      "geometry": mapping(shape)})
    return _write(path, feats)


def write_roads(d: District, path: Path) -> Path:
    """Write a GENERATED road grid (.osm XML) along every cell edge and centre line."""
    n_cols = len(d.townships) * COLUMNS
    n_rows = int(d.villages["row"].max()) + 1
    xs = [X0 + i * CELL / 2 for i in range(2 * n_cols + 1)]
    ys = [Y0 + j * CELL / 2 for j in range(2 * n_rows + 1)]
    node = {(i, j): 1 + i * len(ys) + j for i in range(len(xs)) for j in range(len(ys))}
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="test">']
    for (i, j), nid in node.items():
        lines.append(f'  <node id="{nid}" version="1" lat="{ys[j]:.6f}" lon="{xs[i]:.6f}"/>')
    way = 1
    for i in range(len(xs)):
        lines.append(f'  <way id="{way}" version="1">')
        lines += [f'    <nd ref="{node[(i, j)]}"/>' for j in range(len(ys))]
        lines += ['    <tag k="highway" v="residential"/>', "  </way>"]
        way += 1
    for j in range(len(ys)):
        lines.append(f'  <way id="{way}" version="1">')
        lines += [f'    <nd ref="{node[(i, j)]}"/>' for i in range(len(xs))]
        lines += ['    <tag k="highway" v="residential"/>', "  </way>"]
        way += 1
    lines.append("</osm>")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_facilities(d: District, path: Path, facilities: list[dict]) -> Path:
    """Write facilities placed by hand: each dict has ``facility_id``, ``name``, ``type``,
    ``unit`` (the village code whose cell holds it) and optional ``beds``, ``parent_id``,
    ``shift`` (to put two facilities of one cell apart)."""
    feats = []
    for f in facilities:
        x, y = centre(d, f["unit"], f.get("shift", 0.0))
        props = {k: v for k, v in f.items() if k not in ("unit", "shift")}
        feats.append({"type": "Feature", "properties": props,
                      "geometry": {"type": "Point", "coordinates": [x, y]}})
    return _write(path, feats)
