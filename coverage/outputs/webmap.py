"""map.html: a standalone Folium map of one run, safe against script injection.

Layers (each switchable in the layer control): units coloured by compliance, the isochrones
of every mode and minutes, health facilities, uncovered places coloured by shortfall,
covered places (off by default) and proposed sites when present. A legend, a scale bar, the
"© OpenStreetMap contributors" attribution and the run manifest (as
``<script type="application/json" id="run-manifest">``) are part of the page.

Offline use: Folium links Leaflet, jQuery, Bootstrap and Font Awesome from CDNs. This map
needs only Leaflet: Leaflet 1.9.4 (BSD-2-Clause, ``vendor/leaflet.js`` and ``leaflet.css``
with its images as data URIs) is inlined into the page and the other links are dropped, so
the page works from disk without a network apart from the OpenStreetMap base tiles. (If the
vendored copy is missing from an installation, the page links Leaflet from a CDN instead and
a warning says so.)

Escaping: every string that comes from the data (facility, unit and place names and ids,
rule names, the scenario name) goes through :func:`covplan.outputs.html_text.escape` in
Python before it reaches the page: bidi controls dropped, HTML-escaped, and ``{``/``}`` as
``&#123;``/``&#125;``. The last matters because branca compiles every macro's rendered
output (``MacroElement.render`` wraps it in a new ``Element``) as a Jinja2 template again,
so the GeoJSON of a layer is templated a second time: no brace from the data may reach it.
Names and ids shown in tooltips and popups are cut to
:data:`~covplan.outputs.html_text.LABEL_MAX` characters with an ellipsis. Popups and
tooltips are Folium's ``GeoJsonPopup``/``GeoJsonTooltip``, which put property values into
the DOM with ``innerHTML``; pre-escaped values therefore show as text. The GeoJSON itself
is embedded by Jinja's ``tojson`` (``<``, ``>``, ``&`` and ``'`` as unicode escapes), so no
data string can close the ``<script>`` element. Folium's ``Popup``/``Tooltip`` classes,
which paste text into JavaScript template literals, are deliberately not used. The page's
own blocks (inlined Leaflet, style, run manifest, title, legend) are :class:`RawHtml`
elements, put on the page as they are and never compiled as templates.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import Element
from covplan.labels import (
    check_language,
    column_label,
    facility_type_label,
    mode_label,
    status_label,
    text,
)
from covplan.outputs.html_text import LABEL_MAX, escape, number, safe_json_text
from covplan.outputs.manifest import script_safe_json
from covplan.outputs.tables import (
    localise_rule_texts,
    normalise_unit_results,
    sample_note,
    sample_places,
)
from covplan.results import RunResult
from jinja2 import Template

__all__ = [
    "COMPLIANCE_COLOURS",
    "RawHtml",
    "SHORTFALL_CLASSES",
    "build_map",
    "compliance_by_unit",
    "isochrone_colour",
    "layer_names",
    "place_shortfalls",
    "render_map_html",
    "shortfall_class",
    "write_map",
]

ATTRIBUTION = "© OpenStreetMap contributors"
OSM_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"

#: Unit fill colour by compliance: every applicable rule passed / some rule failed / none applies.
COMPLIANCE_COLOURS: dict[str, str] = {
    "pass": "#1a9850",
    "fail": "#d73027",
    "not_applicable": "#bdbdbd",
}
#: Shortfall classes (upper bound in the rule's unit, minutes or km; label; colour).
SHORTFALL_CLASSES: tuple[tuple[float, str, str], ...] = (
    (5.0, "≤ 5", "#fdae61"),
    (15.0, "5–15", "#f46d43"),
    (math.inf, "> 15", "#d73027"),
)
UNREACHABLE_COLOUR = "#67001f"
FACILITY_COLOUR = "#2c7bb6"
PROPOSAL_COLOUR = "#7b3294"
COVERED_COLOUR = "#636363"


_e = escape


def _label(value: Any) -> str:
    """Return a name or id for a tooltip, popup or title: escaped, <= LABEL_MAX long."""
    return escape(value, LABEL_MAX)


class RawHtml(Element):
    """HTML put on the page exactly as given: unlike branca's ``Element``, never a template.

    Parameters
    ----------
    html
        The markup (already escaped where it holds data).
    """

    def __init__(self, html: str) -> None:
        super().__init__()
        self._name = "RawHtml"
        self.html = html

    def render(self, **kwargs: Any) -> str:
        """Return the markup unchanged."""
        return self.html


def _fmt(value: Any, digits: int = 1) -> str:
    return number(value, digits, whole_as_integer=True)


def isochrone_colour(minutes: float) -> str:
    """Colour of an isochrone: dark blue for 15 minutes or less, lighter for longer."""
    if minutes <= 15:
        return "#2b8cbe"
    if minutes <= 30:
        return "#7bccc4"
    return "#ccebc5"


def shortfall_class(shortfall: float) -> tuple[str, str]:
    """Return (legend label, colour) of a shortfall; ``inf`` means unreachable."""
    if not math.isfinite(shortfall):
        return ("unreachable", UNREACHABLE_COLOUR)
    for upper, label, colour in SHORTFALL_CLASSES:
        if shortfall <= upper:
            return (label, colour)
    raise AssertionError("unreachable: the last class is unbounded")


def compliance_by_unit(unit_results: pd.DataFrame) -> dict[str, str]:
    """unit_id -> ``fail`` if any rule failed, ``pass`` if some passed, else ``not_applicable``."""
    out: dict[str, str] = {}
    if unit_results.empty:
        return out
    for unit_id, statuses in unit_results.groupby("unit_id")["status"]:
        values = set(statuses)
        out[str(unit_id)] = (
            "fail" if "fail" in values else "pass" if "pass" in values else "not_applicable"
        )
    return out


def _evidence_value_column(evidence: pd.DataFrame) -> str | None:
    for column in ("minutes", "km", "value"):
        if column in evidence.columns:
            return column
    return None


def place_shortfalls(result: RunResult, *, place_ids: Any = None,
                     language: str | None = None) -> pd.DataFrame:
    """Return the worst shortfall of each uncovered place over all rules.

    Uses ``result.evidence`` (one row per rule and uncovered place): the shortfall is the
    row's ``shortfall`` column when present, else its ``minutes`` (or ``km``, or the audit's
    ``value``) minus its ``limit`` (or ``threshold``) column, else minus the threshold of that
    rule in that unit from ``unit_results``; ``inf`` = unreachable. Rows with
    ``covered == True`` are ignored.

    Parameters
    ----------
    result
        The run.
    place_ids
        Only these places (e.g. the sample a map draws); default all.
    language
        Language of the rule names in ``rules`` (``"zh"``: the rules' ``title_zh``); default
        the names of ``unit_results`` as they are.

    Returns
    -------
    pandas.DataFrame
        Indexed by place_id: ``shortfall`` (worst over rules), ``rules`` (list of
        ``(rule_name, value, threshold)``), ``facility_id`` of the nearest facility.
    """
    evidence = result.evidence
    if evidence is not None and place_ids is not None and "place_id" in evidence.columns:
        evidence = evidence[evidence["place_id"].isin(place_ids)]
    columns = ["shortfall", "rules", "facility_id"]
    if evidence is None or evidence.empty:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="place_id"))
    ev = pd.DataFrame(evidence.drop(columns=getattr(evidence, "_geometry_column_name", None)
                                    or [], errors="ignore"))  # plain columns: faster
    if "covered" in ev.columns:  # the audit's per-place tables may include covered places
        ev = ev[~ev["covered"].fillna(False).astype(bool).to_numpy()]
        if ev.empty:
            return pd.DataFrame(columns=columns, index=pd.Index([], name="place_id"))
    value_col = _evidence_value_column(ev)
    ur = result.unit_results
    thresholds = (
        ur.set_index(["rule_id", "unit_id"])["threshold"].to_dict()
        if {"rule_id", "unit_id", "threshold"} <= set(ur.columns)
        else {}
    )
    if language is not None and "rule_id" in ur.columns:
        ur = localise_rule_texts(normalise_unit_results(ur), language)
    name_col = next((c for c in ("rule_name", "title") if c in ur.columns), None)
    names = (
        ur.drop_duplicates("rule_id").set_index("rule_id")[name_col].to_dict()
        if name_col and "rule_id" in ur.columns
        else {}
    )
    limit_col = next((c for c in ("limit", "threshold") if c in ev.columns), None)
    if limit_col:  # the rule's own minutes/km for that place, as the audit gives it
        limits = pd.to_numeric(ev[limit_col], errors="coerce").astype(float).to_numpy()
    else:
        limits = np.asarray([
            thresholds.get((r, u), np.nan)
            for r, u in zip(ev["rule_id"], ev["unit_id"], strict=False)
        ], dtype=float)
    values = (
        pd.to_numeric(ev[value_col], errors="coerce").astype(float).to_numpy()
        if value_col else np.full(len(ev), np.nan)
    )
    if "shortfall" in ev.columns:
        short = pd.to_numeric(ev["shortfall"], errors="coerce").astype(float).to_numpy()
    else:
        short = values - limits
    fac_col = next((c for c in ("facility_id", "nearest_facility_id", "nearest") if c in ev), None)
    # one group per place, in order of first appearance (as groupby(sort=False)); no NaN ids
    codes, place_index = pd.factorize(ev["place_id"], sort=False)
    keep = codes >= 0
    codes_kept = codes[keep]
    worst = pd.Series(short[keep]).groupby(codes_kept).max().reindex(
        range(len(place_index))).to_numpy(dtype=float)
    worst = np.where(np.isnan(worst), math.inf, worst)
    rules: list[list[tuple[Any, Any, Any]]] = [[] for _ in range(len(place_index))]
    rule_ids = ev["rule_id"].to_numpy(dtype=object)[keep]
    for code, rule, value, threshold in zip(codes_kept.tolist(), rule_ids.tolist(),
                                            values[keep].tolist(), limits[keep].tolist(),
                                            strict=True):
        rules[code].append((names.get(rule, str(rule)), value, threshold))
    if fac_col:
        _, first = np.unique(codes_kept, return_index=True)
        facilities = ev[fac_col].to_numpy(dtype=object)[keep][first].tolist()
    else:
        facilities = [None] * len(place_index)
    return pd.DataFrame(
        {"shortfall": worst, "rules": rules, "facility_id": facilities},
        index=pd.Index(place_index, name="place_id"),
    )


def layer_names(result: RunResult, *, language: str) -> list[str]:
    """Return the names of the switchable overlay layers, as shown in the layer control."""
    lang = check_language(language)
    names = [text("units", lang)]
    for mode, minutes in _isochrone_keys(result.isochrones):
        names.append(text("isochrone", lang, minutes=minutes, mode=mode_label(mode, lang)))
    names += [text("facilities", lang), text("uncovered", lang), text("covered", lang)]
    if result.proposals is not None and len(result.proposals):
        names.append(text("proposals", lang))
    return names


def _isochrone_keys(isochrones: gpd.GeoDataFrame) -> list[tuple[str, float]]:
    if isochrones is None or isochrones.empty:
        return []
    keys = {(str(m), float(x)) for m, x in zip(isochrones["mode"], isochrones["minutes"],
                                               strict=False)}
    return sorted(keys, key=lambda k: (k[0], -k[1]))


def _points_layer(
    frame: pd.DataFrame, geometry: gpd.GeoSeries, properties: dict[str, list[Any]]
) -> tuple[np.ndarray, dict[str, list[Any]]]:
    """Return (WGS-84 geometries, properties) of a layer's features."""
    return geometry.to_numpy(), dict(properties)


#: Decimals of the map's coordinates: 6 decimals of a degree = 0.11 m or less.
COORD_DECIMALS = 6
#: Pixels across the wider side of the map at its first zoom, for the display simplification.
VIEW_PX = 1500
_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "'": "\\u0027",
                   "\u2028": "\\u2028", "\u2029": "\\u2029"}
_SCRIPT_UNSAFE = re.compile("[<>&'\u2028\u2029]")


def _js_json(value: Any) -> str:
    """Return ``value`` as JSON safe inside ``<script>`` (as Jinja's ``tojson``, no ``{{``)."""
    text_ = json.dumps(value, ensure_ascii=False, allow_nan=False)
    return safe_json_text(_SCRIPT_UNSAFE.sub(lambda m: _SCRIPT_ESCAPES[m.group(0)], text_))


def display_tolerance(bounds: Any) -> float:
    """Return about one pixel of the map at its first zoom, in degrees (WGS-84 bounds)."""
    minx, miny, maxx, maxy = (float(v) for v in bounds)
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
        return 0.0
    cos_lat = max(math.cos(math.radians((miny + maxy) / 2)), 0.05)
    span = max(maxx - minx, (maxy - miny) / cos_lat)  # in longitude degrees (Web Mercator)
    return span * cos_lat / VIEW_PX


def feature_collection(
    geometry: Any,
    properties: Mapping[str, list[Any]],
    *,
    styles: list[dict[str, Any]] | None = None,
    tolerance: float = 0.0,
) -> str:
    r"""Return the GeoJSON text of one layer, ready to sit in a ``<script>``.

    Parameters
    ----------
    geometry
        The features' geometries in WGS-84 (a GeoSeries or an array of shapely geometries).
    properties
        Property name -> one value per feature (strings already escaped for HTML).
    styles
        Per feature, a Leaflet style stored as the property ``_style`` (read by the layer's
        style callback), or None.
    tolerance
        Simplify (multi)polygons and lines to this many degrees, keeping them valid
        (``preserve_topology``); 0 keeps every vertex.

    Returns
    -------
    str
        A FeatureCollection with coordinates rounded to :data:`COORD_DECIMALS` decimals;
        ``<``, ``>``, ``&`` and ``'`` in strings as ``\uXXXX`` escapes.
    """
    geoms = np.asarray(getattr(geometry, "values", geometry), dtype=object)
    if tolerance > 0 and len(geoms):
        lines_or_areas = shapely.get_dimensions(geoms) > 0
        if lines_or_areas.any():
            geoms = geoms.copy()
            geoms[lines_or_areas] = shapely.simplify(geoms[lines_or_areas], tolerance,
                                                     preserve_topology=True)
    geoms = shapely.transform(geoms, lambda xy: np.round(xy, COORD_DECIMALS))
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    texts = np.full(len(geoms), "null", dtype=object)
    if (~missing).any():
        texts[~missing] = shapely.to_geojson(geoms[~missing])
    keys = list(properties)
    columns = [list(properties[k]) for k in keys]
    rows = [dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)] \
        if keys else [{} for _ in range(len(geoms))]
    if styles is not None:
        for row, style in zip(rows, styles, strict=True):
            row["_style"] = style
    features = [
        '{"type": "Feature", "properties": ' + _js_json(row) + ', "geometry": ' + geo + "}"
        for row, geo in zip(rows, texts.tolist(), strict=True)
    ]
    return '{"type": "FeatureCollection", "features": [' + ", ".join(features) + "]}"


def _detail_js(fields: list[str], aliases: list[str]) -> str:
    """Return a tooltip's or popup's function: a table of the pre-escaped values (innerHTML)."""
    return (
        "function(layer) {\n"
        '    let div = L.DomUtil.create("div");\n'
        "    let handleObject = function(value) {\n"
        '        if (value === null || value === undefined) { return ""; }\n'
        '        return typeof value == "object" ? JSON.stringify(value) : value;\n'
        "    };\n"
        f"    let fields = {_js_json(list(fields))};\n"
        f"    let aliases = {_js_json([_e(a) for a in aliases])};\n"
        '    div.innerHTML = "<table>" + fields.map(function(v, i) {\n'
        '        return "<tr><th>" + aliases[i] + "</th><td>"'
        ' + handleObject(layer.feature.properties[v]) + "</td></tr>";\n'
        '    }).join("") + "</table>";\n'
        "    return div;\n"
        "}"
    )


#: The CSS of the tooltips' and popups' tables (as Folium's GeoJsonTooltip/GeoJsonPopup).
DETAIL_CSS = "".join(
    f".{cls}{{{extra}}}.{cls} table{{margin:auto;}}.{cls} tr{{text-align:left;}}"
    f".{cls} th{{padding:2px;padding-right:8px;}}"
    for cls, extra in (("foliumtooltip", ""), ("foliumpopup", "margin:auto;"))
)


class GeoJsonLayer(folium.map.Layer):
    """A GeoJSON overlay whose data and script are written once and never templated.

    Unlike ``folium.GeoJson``, nothing is computed per feature in Python: the features
    carry their style (property ``_style``) and one JavaScript callback applies it; the
    script is put on the page as it is (:class:`RawHtml`), so the data is never compiled
    as a Jinja2 template. The page calls ``<name>_add(<GeoJSON>)`` as Folium does.

    Parameters
    ----------
    data
        GeoJSON text of the layer (:func:`feature_collection`).
    name
        Name in the layer control.
    style
        Leaflet style of every feature (a feature's ``_style`` overrides it).
    highlight
        Style while the pointer is over a feature.
    marker
        Circle-marker options for points (None: Leaflet's default markers).
    tooltip, popup
        ``(fields, aliases)`` shown on hover and on click.
    show
        Shown on opening.
    """

    _template = Template(
        "{% macro script(this, kwargs) %}{{ this.script_text() }}{% endmacro %}"
    )

    def __init__(
        self,
        data: str,
        *,
        name: str,
        style: Mapping[str, Any] | None = None,
        highlight: Mapping[str, Any] | None = None,
        marker: Mapping[str, Any] | None = None,
        tooltip: tuple[list[str], list[str]] | None = None,
        popup: tuple[list[str], list[str]] | None = None,
        show: bool = True,
    ) -> None:
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "GeoJson"
        self.data_text = data
        self.style = dict(style or {})
        self.highlight = dict(highlight) if highlight else None
        self.marker = dict(marker) if marker else None
        self.tooltip = tooltip
        self.popup = popup

    def script_text(self) -> str:
        """Return the layer's JavaScript (data included)."""
        name = self.get_name()
        style = _js_json(self.style)
        lines = [f"var {name} = L.geoJson(null, {{"]
        if self.highlight:
            lines.append(
                "    onEachFeature: function(feature, layer) {\n"
                "        layer.on({\n"
                "            mouseout: function(e) {\n"
                '                if (typeof e.target.setStyle === "function") '
                f"{{ {name}.resetStyle(e.target); }}\n"
                "            },\n"
                "            mouseover: function(e) {\n"
                '                if (typeof e.target.setStyle === "function") '
                f"{{ e.target.setStyle({_js_json(self.highlight)}); }}\n"
                "            }\n"
                "        });\n"
                "    },"
            )
        lines.append("    style: function(feature) { return Object.assign("
                     f"{{}}, {style}, feature.properties._style); }},")
        if self.marker is not None:
            lines.append("    pointToLayer: function(feature, latlng) { return new L.CircleMarker("
                         f"latlng, Object.assign({{}}, {_js_json(self.marker)}, {style}, "
                         "feature.properties._style)); }")
        lines.append("});")
        lines.append(f"function {name}_add (data) {{ {name}.addData(data); }}")
        lines.append(f"{name}_add({self.data_text});")
        if self.tooltip is not None:
            lines.append(f"{name}.bindTooltip({_detail_js(*self.tooltip)}, "
                         '{"sticky": true, "className": "foliumtooltip"});')
        if self.popup is not None:
            lines.append(f"{name}.bindPopup({_detail_js(*self.popup)}, "
                         '{"className": "foliumpopup"});')
        if self.show and self._parent is not None:
            lines.append(f"{name}.addTo({self._parent.get_name()});")
        return "\n".join(lines) + "\n"

    def render(self, **kwargs: Any) -> None:
        """Put the script on the page as it is (never compiled as a template)."""
        self.get_root().script.add_child(RawHtml(self.script_text()), name=self.get_name())


def _geojson(
    features: tuple[Any, Mapping[str, list[Any]]],
    *,
    styles: list[dict[str, Any]] | None = None,
    tolerance: float = 0.0,
    **kwargs: Any,
) -> GeoJsonLayer:
    """Return a layer of ``(geometries, properties)`` (see :class:`GeoJsonLayer`)."""
    geometry, properties = features
    data = feature_collection(geometry, properties, styles=styles, tolerance=tolerance)
    return GeoJsonLayer(data, **kwargs)


def _popup(fields: list[str], aliases: list[str]) -> tuple[list[str], list[str]]:
    return (list(fields), list(aliases))


def _tooltip(fields: list[str], aliases: list[str]) -> tuple[list[str], list[str]]:
    return (list(fields), list(aliases))


def _legend_html(result: RunResult, lang: str, *, legend_open: bool = True) -> str:
    rows: list[str] = []

    def swatch(colour: str, label: str, *, round_: bool = False) -> str:
        radius = "50%" if round_ else "2px"
        return (
            f'<div><span style="display:inline-block;width:12px;height:12px;'
            f"background:{colour};border-radius:{radius};margin-right:6px;"
            f'opacity:0.85"></span>{_e(label)}</div>'
        )

    rows.append(f"<div style='margin-top:4px'><i>{_e(text('units', lang))}</i></div>")
    rows.append(swatch(COMPLIANCE_COLOURS["pass"], text("all_pass", lang)))
    rows.append(swatch(COMPLIANCE_COLOURS["fail"], text("some_fail", lang)))
    rows.append(swatch(COMPLIANCE_COLOURS["not_applicable"], text("not_applicable", lang)))
    keys = _isochrone_keys(result.isochrones)
    if keys:
        rows.append(f"<div style='margin-top:4px'><i>{_e(text('isochrones', lang))}</i></div>")
        for mode, minutes in keys:
            label = text("isochrone", lang, minutes=minutes, mode=mode_label(mode, lang))
            rows.append(swatch(isochrone_colour(minutes), label))
    rows.append(f"<div style='margin-top:4px'><i>{_e(text('uncovered', lang))}</i></div>")
    sampled = sample_note(len(result.places), len(sample_places(result.places)), lang)
    if sampled:
        rows.append(f"<div id='map-sample-note' style='font-size:11px'><b>{_e(sampled)}</b></div>")
    rows.append(f"<div style='font-size:11px'>{_e(text('shortfall', lang))}</div>")
    for _upper, label, colour in SHORTFALL_CLASSES:
        rows.append(swatch(colour, label, round_=True))
    rows.append(swatch(UNREACHABLE_COLOUR, text("unreachable", lang), round_=True))
    rows.append(f"<div style='margin-top:4px'></div>{swatch(FACILITY_COLOUR, text('facilities', lang), round_=True)}")  # noqa: E501
    if result.proposals is not None and len(result.proposals):
        rows.append(swatch(PROPOSAL_COLOUR, text("proposals", lang), round_=True))
    rows.append(f"<div style='margin-top:6px;font-size:11px'>{_e(ATTRIBUTION)}</div>")
    body = "".join(rows)
    # a <details> box: the reader can fold the legend away where it hides the map
    return (
        '<div id="map-legend" style="position:fixed;bottom:70px;left:10px;z-index:1000;'
        "background:rgba(255,255,255,0.92);padding:8px 10px;border:1px solid #999;"
        'border-radius:4px;font:12px/1.4 sans-serif;max-height:70vh;overflow:auto">'
        f'<details{" open" if legend_open else ""}><summary style="cursor:pointer">'
        f"<b>{_e(text('legend', lang))}</b></summary>{body}</details></div>"
    )


def _title_html(result: RunResult) -> str:
    return (
        '<div id="map-title" style="position:fixed;top:10px;left:50px;z-index:1000;'
        "background:rgba(255,255,255,0.9);padding:4px 10px;border-radius:4px;"
        f'font:bold 14px sans-serif">{_label(result.name)}</div>'
    )


def _rule_names(result: RunResult, lang: str) -> dict[str, str]:
    """Rule name as ``unit_results`` has it (English title) -> the name in ``lang``."""
    ur = result.unit_results
    if ur.empty or "rule_id" not in ur.columns:
        return {}
    first = normalise_unit_results(ur).drop_duplicates("rule_id")
    local = localise_rule_texts(first, lang)
    return dict(zip(first["rule_name"].astype(str), local["rule_name"].astype(str),
                    strict=False))


def _rule_line(row: Any, lang: str, format_value: Any) -> str:
    """One rule of a unit's popup in Chinese: 规则：未达标（82.7%，标准 100.0%）."""
    unit = getattr(row, "value_unit", None)
    value = format_value(getattr(row, "value", None), unit, lang)
    need = format_value(getattr(row, "threshold", None), unit, lang)
    line = f"{_label(row.rule_name)}：{_e(status_label(str(row.status), lang))}"
    return f"{line}（{_e(value)}，标准 {_e(need)}）" if value and need else line


def _unit_layer(result: RunResult, lang: str, *, popup: bool = True, tolerance: float = 0.0
                ) -> GeoJsonLayer:
    units = result.units
    compliance = compliance_by_unit(result.unit_results)
    from covplan.outputs.report import format_value

    ur = localise_rule_texts(normalise_unit_results(result.unit_results), lang)
    zh = lang == "zh"
    rules_html: dict[str, str] = {}
    if not ur.empty:
        for unit_id, group in ur.groupby("unit_id", sort=False):
            lines = [_rule_line(row, lang, format_value) if zh else
                     f"{_label(row.rule_name)}: {_e(status_label(str(row.status), lang))}"
                     f" ({_fmt(getattr(row, 'value', None), 2)} / {_fmt(getattr(row, 'threshold', None), 2)})"  # noqa: E501
                     for row in group.itertuples(index=False)]
            rules_html[str(unit_id)] = "<br>".join(lines)
    state = [compliance.get(str(u), "not_applicable") for u in units["unit_id"]]
    layer = (
        units.geometry.to_crs("EPSG:4326").to_numpy(),
        {
            "unit_id": [_label(u) for u in units["unit_id"]],
            "name": [_label(n) for n in units["name"]],
            "population": [_fmt(p) for p in units.get("population", [None] * len(units))],
            "compliance": state,
            "status": [_e(status_label(s, lang) if s != "not_applicable"
                          else text("not_applicable", lang)) for s in state],
            "rules": [rules_html.get(str(u), "") for u in units["unit_id"]],
        },
    )
    fields = ["name", "unit_id", "population", "status", "rules"]
    aliases = [text("name", lang), text("id", lang), text("population", lang),
               column_label("status", lang), text("rules", lang)]
    return _geojson(
        layer,
        name=text("units", lang),
        style={"color": "#333333", "weight": 1, "fillOpacity": 0.35},
        styles=[{"fillColor": COMPLIANCE_COLOURS.get(c, "#bdbdbd")} for c in state],
        highlight={"weight": 3},
        tolerance=tolerance,
        tooltip=_tooltip(["name", "status"], [text("name", lang), aliases[3]]),
        popup=_popup(fields, aliases) if popup else None,
    )


def _facility_layer(result: RunResult, lang: str) -> GeoJsonLayer:
    fac = result.facilities.to_crs("EPSG:4326")
    types = [facility_type_label(str(t), language=lang) for t in fac["type"]]
    layer = _points_layer(
        fac,
        fac.geometry,
        {
            "facility_id": [_label(v) for v in fac["facility_id"]],
            "name": [_label(v) for v in fac["name"]],
            "type": [_label(v) for v in types],
        },
    )
    return _geojson(
        layer,
        name=text("facilities", lang),
        marker={"radius": 6, "fill": True, "fillOpacity": 0.9, "weight": 1},
        style={"color": "#ffffff", "fillColor": FACILITY_COLOUR},
        tooltip=_tooltip(["name"], [text("name", lang)]),
        popup=_popup(["name", "type", "facility_id"],
                     [text("name", lang), text("type", lang), text("id", lang)]),
    )


def _place_layers(result: RunResult, lang: str, shortfalls: pd.DataFrame | None = None
                  ) -> tuple[GeoJsonLayer, GeoJsonLayer]:
    places = sample_places(result.places).to_crs("EPSG:4326")  # above the limit: a sample
    if shortfalls is None:
        shortfalls = place_shortfalls(result, place_ids=places["place_id"], language=lang)
    facility_names = dict(
        zip(result.facilities["facility_id"], result.facilities["name"], strict=False)
    )
    uncovered_mask = places["place_id"].isin(shortfalls.index)
    unc = places[uncovered_mask]
    info = shortfalls.reindex(unc["place_id"])
    colours = [shortfall_class(float(s))[1] for s in info["shortfall"]]
    pop = pd.to_numeric(unc["population"], errors="coerce").fillna(0.0).to_numpy()
    radius = [float(min(14.0, 3.0 + math.sqrt(max(p, 0.0)) / 6.0)) for p in pop]
    details = []
    names = _rule_names(result, lang)  # the shortfalls may name the rules in English
    for rules in info["rules"]:
        details.append("<br>".join(
            f"{_label(names.get(name, name))}: {_fmt(value, 1)} / {_fmt(threshold, 1)}"
            if lang != "zh" else
            f"{_label(names.get(name, name))}：{_fmt(value, 1)}（标准 {_fmt(threshold, 1)}）"
            for name, value, threshold in (rules if isinstance(rules, list) else [])
        ))
    uncovered = _points_layer(
        unc,
        unc.geometry,
        {
            "place_id": [_label(v) for v in unc["place_id"]],
            "population": [_fmt(v) for v in unc["population"]],
            "shortfall": [_fmt(v, 1) if math.isfinite(float(v)) else _e(text("unreachable", lang))
                          for v in info["shortfall"]],
            "nearest": [_label(facility_names.get(f, f)) for f in info["facility_id"]],
            "rules": details,
        },
    )
    unc_layer = _geojson(
        uncovered,
        name=text("uncovered", lang),
        marker={"radius": 5, "fill": True, "fillOpacity": 0.85, "weight": 1},
        style={"color": "#444444"},
        styles=[{"fillColor": c, "radius": round(r, 2)}
                for c, r in zip(colours, radius, strict=True)],
        tooltip=_tooltip(["place_id", "shortfall"], [text("id", lang), text("shortfall", lang)]),
        popup=_popup(
            ["place_id", "population", "shortfall", "nearest", "rules"],
            [text("id", lang), text("population", lang), text("shortfall", lang),
             text("nearest", lang), text("rules", lang)],
        ),
    )
    cov = places[~uncovered_mask]
    minutes_cols = [c for c in cov.columns if c.startswith("minutes_")]
    covered = _points_layer(
        cov,
        cov.geometry,
        {
            "place_id": [_label(v) for v in cov["place_id"]],
            "population": [_fmt(v) for v in cov["population"]],
            **{c: [_fmt(v, 1) for v in cov[c]] for c in minutes_cols},
        },
    )
    cov_aliases = [text("id", lang), text("population", lang)] + [
        f"{text('minutes', lang)} ({mode_label(c[len('minutes_'):], lang)})" for c in minutes_cols
    ]
    cov_layer = _geojson(
        covered,
        name=text("covered", lang),
        show=False,
        marker={"radius": 3, "fill": True, "fillOpacity": 0.7, "weight": 0},
        style={"fillColor": COVERED_COLOUR, "color": COVERED_COLOUR},
        popup=_popup(["place_id", "population", *minutes_cols], cov_aliases),
    )
    return unc_layer, cov_layer


def _proposal_layer(result: RunResult, lang: str) -> GeoJsonLayer | None:
    prop = result.proposals
    if prop is None or not len(prop):
        return None
    prop = prop.to_crs("EPSG:4326")
    layer = _points_layer(
        prop,
        prop.geometry,
        {
            "site_id": [_label(v) for v in prop.get("site_id", prop.index)],
            "rank": [_fmt(v) for v in prop.get("rank", [None] * len(prop))],
            "gain": [_fmt(v) for v in prop.get("gain", [None] * len(prop))],
        },
    )
    return _geojson(
        layer,
        name=text("proposals", lang),
        marker={"radius": 8, "fill": True, "fillOpacity": 0.9, "weight": 2},
        style={"color": "#ffffff", "fillColor": PROPOSAL_COLOUR},
        tooltip=_tooltip(["rank"], [text("rank", lang)]),
        popup=_popup(["site_id", "rank", "gain"],
                     [text("id", lang), text("rank", lang), text("gain", lang)]),
    )


LEAFLET_CDN = (
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.4/dist/leaflet.js",
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.4/dist/leaflet.css",
)


@cache
def _vendor(name: str) -> str | None:
    """Return a vendored file's text, or None when the package was installed without it."""
    try:
        return resources.files("covplan.outputs").joinpath("vendor", name).read_text("utf-8")
    except (FileNotFoundError, OSError):
        return None


def _leaflet_element() -> RawHtml:
    """Leaflet inlined from ``vendor/``; CDN links (with a warning) if the copy is missing."""
    js, css = _vendor("leaflet.js"), _vendor("leaflet.css")
    if js is not None and css is not None:
        return RawHtml(f"<style>{css}</style>\n<script>{js}</script>")
    warnings.warn(
        "coverage/outputs/vendor/leaflet.js or leaflet.css is missing from this installation; "
        "map.html links Leaflet from a CDN and needs a network to display "
        "(reinstall coverage-planner with its package data)",
        UserWarning,
        stacklevel=3,
    )
    return RawHtml(
        f'<script src="{LEAFLET_CDN[0]}"></script>\n'
        f'<link rel="stylesheet" href="{LEAFLET_CDN[1]}"/>'
    )


def build_map(
    result: RunResult,
    *,
    language: str | None = None,
    manifest: Mapping[str, Any] | None = None,
    legend_open: bool = True,
    inline_leaflet: bool = True,
    collapsed_layers: bool = False,
    unit_popups: bool = True,
    shortfalls: pd.DataFrame | None = None,
) -> folium.Map:
    """Build the Folium map of a run (see the module docstring for its contents).

    Parameters
    ----------
    result
        The run.
    language
        ``"zh"`` or ``"en"``; default the run's language.
    manifest
        Embedded as ``<script type="application/json" id="run-manifest">`` when given.
    legend_open
        Show the legend unfolded (the reader can fold and unfold it).
    inline_leaflet
        Inline the vendored Leaflet into the page header; False leaves Leaflet to the
        caller (e.g. :func:`covplan.outputs.planmap.app_map` links it as ``data:`` URIs).
    collapsed_layers
        Start with the layer control folded.
    unit_popups
        Give the unit polygons their popup (False keeps only the tooltip, so that a click
        on a unit reaches the map).
    shortfalls
        :func:`place_shortfalls` of the run when the caller has it already (computed
        once for both maps); default computed here.

    Notes
    -----
    Unit and isochrone outlines are simplified for display to about one pixel at the first
    zoom (:func:`display_tolerance`, topology preserved) and coordinates are rounded to
    :data:`COORD_DECIMALS` decimals; results.gpkg keeps the full geometry.
    """
    lang = check_language(language or result.language)
    bounds = result.units.to_crs("EPSG:4326").total_bounds
    if not np.all(np.isfinite(bounds)):
        bounds = result.places.to_crs("EPSG:4326").total_bounds
    centre = [(bounds[1] + bounds[3]) / 2, (bounds[0] + bounds[2]) / 2]
    fmap = folium.Map(location=centre, zoom_start=11, tiles=None, control_scale=True)
    # Only Leaflet is needed, and it is inlined below: drop Folium's CDN links.
    fmap.default_js = []
    fmap.default_css = []
    root = fmap.get_root()
    root.title = _label(result.name)
    if inline_leaflet:
        root.header.add_child(_leaflet_element(), name="leaflet_inline")
    root.header.add_child(
        RawHtml(
            "<style>html,body{width:100%;height:100%;margin:0;padding:0;}"
            "#map{position:absolute;top:0;bottom:0;right:0;left:0;}"
            ".leaflet-popup-content th{text-align:left;padding-right:6px;vertical-align:top}"
            f"{DETAIL_CSS}</style>"
        ),
        name="page_style",
    )
    if manifest is not None:
        root.header.add_child(
            RawHtml(
                '<script type="application/json" id="run-manifest">'
                f"{safe_json_text(script_safe_json(manifest))}</script>"
            ),
            name="run_manifest",
        )
    folium.TileLayer(
        tiles=OSM_TILES, attr=ATTRIBUTION, name="OpenStreetMap", max_zoom=19
    ).add_to(fmap)
    tolerance = display_tolerance(bounds)
    _unit_layer(result, lang, popup=unit_popups, tolerance=tolerance).add_to(fmap)
    iso = result.isochrones
    if iso is not None and not iso.empty:
        iso_modes = iso["mode"].astype(str).to_numpy()
        iso_minutes = iso["minutes"].astype(float).to_numpy()
        iso_geoms = iso.geometry.to_crs("EPSG:4326").to_numpy()
    for mode, minutes in _isochrone_keys(iso):
        shapes = iso_geoms[(iso_modes == mode) & (iso_minutes == minutes)]
        shapes = shapes[~pd.Series(shapely.to_wkb(shapes)).duplicated().to_numpy()]  # once each
        colour = isochrone_colour(minutes)
        label = text("isochrone", lang, minutes=minutes, mode=mode_label(mode, lang))
        _geojson(
            (shapes, {"label": [_e(label)] * len(shapes)}),
            name=label,
            style={"fillColor": colour, "color": colour, "weight": 1, "fillOpacity": 0.25},
            tooltip=_tooltip(["label"], [text("isochrones", lang)]),
            tolerance=tolerance,
        ).add_to(fmap)
    _facility_layer(result, lang).add_to(fmap)
    unc_layer, cov_layer = _place_layers(result, lang, shortfalls)
    unc_layer.add_to(fmap)
    cov_layer.add_to(fmap)
    proposals = _proposal_layer(result, lang)
    if proposals is not None:
        proposals.add_to(fmap)
    folium.LayerControl(collapsed=collapsed_layers).add_to(fmap)
    root.html.add_child(RawHtml(_title_html(result)), name="map_title")
    root.html.add_child(
        RawHtml(_legend_html(result, lang, legend_open=legend_open)), name="map_legend"
    )
    fmap.fit_bounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]])
    return fmap


def render_map_html(
    result: RunResult,
    *,
    language: str | None = None,
    manifest: Mapping[str, Any] | None = None,
    shortfalls: pd.DataFrame | None = None,
) -> str:
    """Return the complete map.html text (``shortfalls``: see :func:`build_map`)."""
    return build_map(result, language=language, manifest=manifest,
                     shortfalls=shortfalls).get_root().render()


def write_map(
    result: RunResult,
    path: str | os.PathLike[str],
    *,
    language: str | None = None,
    manifest: Mapping[str, Any] | None = None,
    shortfalls: pd.DataFrame | None = None,
) -> Path:
    """Write map.html for ``result`` to ``path`` (UTF-8) and return the path.

    ``shortfalls``: :func:`place_shortfalls` when the caller has it (see :func:`build_map`).
    """
    Path(path).write_text(
        render_map_html(result, language=language, manifest=manifest, shortfalls=shortfalls),
        encoding="utf-8",
    )
    return Path(path)
