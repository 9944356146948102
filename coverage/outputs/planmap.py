"""The planner app's map (``map.html``'s, for ``st_folium``) and the plan's own layer.

:func:`app_map` is :func:`~covplan.outputs.webmap.build_map` for the app; :func:`plan_layer`
draws the plan's candidate stations, newly covered places and the selected unit.

``st_folium`` loads scripts only from the map's ``default_js`` links (it inserts the page
header with ``innerHTML``, where inline scripts do not run), so :func:`app_map` gives the
vendored Leaflet as ``data:`` links instead of inlining it: the app's map needs no CDN.
:func:`plan_layer` is a separate :class:`folium.FeatureGroup` that ``st_folium`` redraws
without reloading the map. Every string from the data goes through
:func:`covplan.outputs.html_text.escape` (cut to
:data:`~covplan.outputs.html_text.LABEL_MAX` characters), as in ``map.html``.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Sequence
from importlib import resources

import folium
import geopandas as gpd
from covplan.errors import CoverageError
from covplan.outputs.html_text import LABEL_MAX, escape
from covplan.outputs.webmap import build_map
from covplan.results import RunResult

__all__ = [
    "CANDIDATE_COLOUR",
    "GAINED_COLOUR",
    "HIGHLIGHT_COLOUR",
    "app_map",
    "plan_layer",
]

CANDIDATE_COLOUR = "#ff7f00"
GAINED_COLOUR = "#1a9850"
HIGHLIGHT_COLOUR = "#00bfff"


@functools.cache
def _data_uri(name: str, mime: str) -> str:
    """Return a vendored Leaflet file (``coverage/outputs/vendor``) as a base64 data URI."""
    try:
        raw = resources.files("covplan.outputs").joinpath("vendor", name).read_bytes()
    except (FileNotFoundError, OSError) as exc:
        raise CoverageError(
            f"coverage/outputs/vendor/{name} is missing; reinstall coverage-planner with its "
            "package data (the app's map needs the vendored Leaflet)"
        ) from exc
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


def app_map(result: RunResult, *, language: str) -> folium.Map:
    """Return the map of a run ready for ``st_folium``.

    Parameters
    ----------
    result
        The run (the baseline, with light isochrones).
    language
        ``"zh"`` or ``"en"``.

    Returns
    -------
    folium.Map
        :func:`~covplan.outputs.webmap.build_map`'s map with Leaflet linked as ``data:``
        URIs, the legend and the layer control folded, and no popup on the unit polygons
        (they keep their tooltip), so that a click on the map adds a station; facilities
        and places keep their popups.

    Raises
    ------
    CoverageError
        When the vendored Leaflet is missing from the installation.
    """
    fmap = build_map(result, language=language, legend_open=False, inline_leaflet=False,
                     collapsed_layers=True, unit_popups=False)
    fmap.default_js = [("leaflet", _data_uri("leaflet.js", "text/javascript"))]
    fmap.default_css = [("leaflet_css", _data_uri("leaflet.css", "text/css"))]
    return fmap


def plan_layer(
    candidates: Sequence[tuple[str, float, float]] = (),
    *,
    selected_unit: gpd.GeoDataFrame | None = None,
    gained_places: gpd.GeoDataFrame | None = None,
) -> folium.FeatureGroup:
    """Return the plan's layer: the selected unit, newly covered places and candidates.

    Parameters
    ----------
    candidates
        (name, lon, lat) of each candidate station (WGS-84).
    selected_unit
        The unit picked in the results table (columns ``name`` and a geometry, any CRS).
    gained_places
        Places the plan newly covers (columns ``place_id``, ``population``, points).
    """
    group = folium.FeatureGroup(name="plan")
    if selected_unit is not None and len(selected_unit):
        shape = gpd.GeoDataFrame(
            {"name": [escape(selected_unit["name"].iloc[0], LABEL_MAX)]},
            geometry=selected_unit.geometry.to_numpy()[:1], crs=selected_unit.crs,
        )
        folium.GeoJson(
            shape.to_crs("EPSG:4326"),
            style_function=lambda f: {"color": HIGHLIGHT_COLOUR, "weight": 5,
                                      "fillOpacity": 0.1},
            tooltip=folium.GeoJsonTooltip(["name"], labels=False),
        ).add_to(group)
    if gained_places is not None and len(gained_places):
        gained = gpd.GeoDataFrame(
            {"place": [escape(p, LABEL_MAX) for p in gained_places["place_id"]],
             "population": [f"{p:,.0f}" for p in gained_places["population"]]},
            geometry=gained_places.geometry.to_numpy(), crs=gained_places.crs or "EPSG:4326",
        ).to_crs("EPSG:4326")
        folium.GeoJson(
            gained, marker=folium.CircleMarker(radius=4, fill=True, fill_opacity=0.9, weight=0),
            style_function=lambda f: {"fillColor": GAINED_COLOUR, "color": GAINED_COLOUR},
            tooltip=folium.GeoJsonTooltip(["place", "population"]),
        ).add_to(group)
    if candidates:
        cands = gpd.GeoDataFrame(
            {"station": [escape(name, LABEL_MAX) for name, _, _ in candidates],
             "lonlat": [f"{lon:.5f}, {lat:.5f}" for _, lon, lat in candidates]},
            geometry=gpd.points_from_xy([lon for _, lon, _ in candidates],
                                        [lat for _, _, lat in candidates]),
            crs="EPSG:4326",
        )
        folium.GeoJson(
            cands, marker=folium.CircleMarker(radius=9, fill=True, fill_opacity=0.95, weight=2),
            style_function=lambda f: {"fillColor": CANDIDATE_COLOUR, "color": "#ffffff"},
            tooltip=folium.GeoJsonTooltip(["station", "lonlat"], labels=False),
        ).add_to(group)
    return group
