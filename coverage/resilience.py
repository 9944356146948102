"""Roads that close: the coverage a closure loses, and the road segments the circle hangs on.

:func:`run_with_closures` runs a scenario twice, on its roads and on the roads left once a
:class:`Closure` (hazard polygons, OSM way ids, road classes; removed or slowed) is applied
with :func:`covplan.engine.closures.close_roads`; :func:`closure_loss` compares them per unit
(the places' unit) and travel standard: residents covered before and after, lost, and the
places cut off (no road route to any facility of the standard any more), with, per place,
the facility it depended on and the one it depends on now.

:func:`spof_for_scenario` ranks the road segments whose closure alone drops the most
residents out of the emergency circle (the scenario's ambulance travel-time standards, e.g.
BZ-12 urban 15 min and BZ-13 rural 30 min) with
:func:`covplan.engine.closures.single_points_of_failure`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from covplan.engine.access import RoadAccess, access_for_networks
from covplan.engine.closures import (
    close_roads,
    single_points_of_failure,
    single_points_of_failure_bruteforce,
)
from covplan.errors import CoverageError, InputError, Problem
from covplan.inputs.layers import Inputs
from covplan.progress import Steps
from covplan.standards.rules import DistanceRule, Rule, TravelTimeRule

if TYPE_CHECKING:
    from covplan.results import RunResult
    from covplan.scenario import Scenario

__all__ = [
    "CLOSURE_LOSS_COLUMNS",
    "CLOSURE_PLACE_COLUMNS",
    "SPOF_FILE_COLUMNS",
    "Closure",
    "ClosureRun",
    "closure_for_scenario",
    "closure_loss",
    "emergency_rules",
    "read_closure_polygons",
    "run_with_closures",
    "spof_for_scenario",
]

#: Columns of ``closure_loss.csv`` (one row per unit and travel standard).
CLOSURE_LOSS_COLUMNS = (
    "rule_id", "unit_id", "unit_name", "population", "residents_covered_before",
    "residents_covered_after", "residents_lost", "places_lost", "places_cut_off",
    "residents_cut_off",
)  # fmt: skip
#: Columns of ``closure_places.csv`` (one row per place and standard whose answer changed).
CLOSURE_PLACE_COLUMNS = (
    "rule_id", "place_id", "unit_id", "population", "value_before", "value_after",
    "value_unit", "facility_before", "facility_after", "covered_before", "covered_after",
    "cut_off",
)  # fmt: skip
#: Columns of ``single_points_of_failure.csv``.
SPOF_FILE_COLUMNS = (
    "rank", "osm_way_id", "residents_lost", "places_lost", "highway", "length_m", "segment",
    "lon", "lat",
)  # fmt: skip
_EPS = 1e-9
_POLYGON_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".zip")


@dataclass(frozen=True)
class Closure:
    """Roads closed by a hazard.

    Attributes
    ----------
    polygons
        Hazard areas in EPSG:4326, or None.
    way_ids, highway
        OSM way ids and road classes to close (with polygons: only those inside them).
    factor
        0: closed roads are removed; in (0, 1]: their speed is multiplied by it.
    source
        Where the polygons came from (for the manifest).
    """

    polygons: gpd.GeoDataFrame | None = None
    way_ids: tuple[int, ...] = ()
    highway: tuple[str, ...] = ()
    factor: float = 0.0
    source: str = ""

    def describe(self) -> dict[str, Any]:
        """Return the closure as manifest parameters."""
        return {"polygons": self.source, "way_ids": list(self.way_ids),
                "highway": list(self.highway), "factor": self.factor}

    def apply(self, access: RoadAccess, modes: Sequence[str]) -> RoadAccess:
        """Return a road access over the closed networks of ``modes`` (same inputs)."""
        closed = {
            mode: close_roads(access.network(mode), polygons=self.polygons,
                              way_ids=self.way_ids, highway=self.highway,
                              factor=self.factor or None)
            for mode in modes
        }
        return access_for_networks(closed, access.inputs, max_snap_m=access.spec.max_snap_m)


def read_closure_polygons(path: str | Path) -> gpd.GeoDataFrame:
    """Read hazard polygons (GeoJSON, GeoPackage, Shapefile) in EPSG:4326.

    Raises
    ------
    InputError
        If the file is missing, unreadable, has no CRS-less-safe polygons or no polygon.
    """
    path = Path(path).expanduser()
    where = f"closure polygons {path}"
    if not path.is_file():
        raise InputError([Problem(where, "file not found",
                                  "give a GeoJSON, GeoPackage or Shapefile of hazard polygons")])
    try:
        layer = gpd.read_file(path)
    except Exception as exc:  # GDAL/pyogrio errors of many kinds
        raise InputError([Problem(where, f"cannot be read: {exc}",
                                  "save it as GeoJSON, GeoPackage or Shapefile")]) from exc
    if layer.crs is None:
        layer = layer.set_crs("EPSG:4326")
    layer = layer.to_crs("EPSG:4326")
    polys = layer[layer.geometry.notna() & ~layer.geometry.is_empty
                  & layer.geom_type.isin(["Polygon", "MultiPolygon"])]
    if polys.empty:
        raise InputError([Problem(where, "holds no polygon",
                                  "draw the flooded or blocked area as a polygon")])
    return polys[["geometry"]].reset_index(drop=True)


def closure_for_scenario(scenario: Scenario, close: str | Path | None = None) -> Closure | None:
    """Return the closure of a run: ``[inputs.closures]``, its ``path`` replaced by ``close``.

    None when the scenario has no ``[inputs.closures]`` and ``close`` is None.
    """
    table = getattr(scenario.inputs, "closures", None)
    if table is None and close is None:
        return None
    path = close if close is not None else (table.path if table is not None else None)
    polygons = read_closure_polygons(path) if path is not None else None
    return Closure(
        polygons=polygons,
        way_ids=tuple(int(w) for w in (table.way_ids if table is not None else ())),
        highway=tuple(str(h) for h in (table.highway if table is not None else ())),
        factor=float(table.factor) if table is not None else 0.0,
        source=str(path) if path is not None else "",
    )


def _travel_rules(rules: Sequence[Rule]) -> list[TravelTimeRule | DistanceRule]:
    return [r for r in rules if isinstance(r, TravelTimeRule | DistanceRule)]


def _place_answers(rule: TravelTimeRule | DistanceRule, inputs: Inputs,
                   access: RoadAccess) -> pd.DataFrame:
    places = inputs.places
    near = access.nearest(tuple(rule.facility_types), mode=rule.mode, metric=rule.metric)
    out = pd.DataFrame({
        "place_id": places["place_id"].to_numpy(),
        "unit_id": places["unit_id"].to_numpy(),
        "population": places["population"].to_numpy(dtype=float),
        "limit": rule.limit_per_place(places).to_numpy(),
        "value": near["value"].to_numpy(dtype=float),
        "facility_id": near["facility_id"].to_numpy(),
    })  # fmt: skip
    return out[out["limit"].notna()].reset_index(drop=True)


def closure_loss(
    rules: Sequence[Rule], inputs: Inputs, before: RoadAccess, after: RoadAccess
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compare every travel standard on the open and the closed roads.

    Parameters
    ----------
    rules
        The scenario's standards (only travel-time and distance rules are compared).
    inputs
        The loaded layers.
    before, after
        Road access on the open roads and on the closed ones.

    Returns
    -------
    tuple of pandas.DataFrame
        Per unit (the places' unit) and standard: :data:`CLOSURE_LOSS_COLUMNS`; per place
        and standard whose value or facility changed: :data:`CLOSURE_PLACE_COLUMNS`
        (``facility_after`` is the facility the place now depends on; ``cut_off`` when no
        road route to any facility of the standard is left).
    """
    names = (inputs.units.drop_duplicates("unit_id").set_index("unit_id")["name"]
             if "name" in inputs.units else pd.Series(dtype=object))
    loss_frames, place_frames = [], []
    for rule in _travel_rules(rules):
        b = _place_answers(rule, inputs, before)
        a = _place_answers(rule, inputs, after)
        cov_b = b["value"] <= b["limit"] + _EPS
        cov_a = a["value"] <= a["limit"] + _EPS
        cut = np.isfinite(b["value"]) & ~np.isfinite(a["value"])
        lost = cov_b & ~cov_a
        pop = b["population"]
        frame = pd.DataFrame({
            "unit_id": b["unit_id"], "population": pop,
            "residents_covered_before": pop.where(cov_b, 0.0),
            "residents_covered_after": pop.where(cov_a, 0.0),
            "residents_lost": pop.where(lost, 0.0), "places_lost": lost.astype(int),
            "places_cut_off": cut.astype(int), "residents_cut_off": pop.where(cut, 0.0),
        })  # fmt: skip
        table = frame.groupby("unit_id", sort=True).sum().reset_index()
        table.insert(0, "rule_id", rule.id)
        table.insert(2, "unit_name", table["unit_id"].map(names))
        loss_frames.append(table)
        changed = (~np.isclose(b["value"], a["value"], rtol=0, atol=1e-9)
                   & ~(np.isinf(b["value"]) & np.isinf(a["value"]))) | (
                   b["facility_id"].astype(str) != a["facility_id"].astype(str))
        places = pd.DataFrame({
            "rule_id": rule.id, "place_id": b["place_id"], "unit_id": b["unit_id"],
            "population": pop, "value_before": b["value"], "value_after": a["value"],
            "value_unit": rule.value_unit, "facility_before": b["facility_id"],
            "facility_after": a["facility_id"], "covered_before": cov_b,
            "covered_after": cov_a, "cut_off": cut,
        })[changed.to_numpy()]  # fmt: skip
        place_frames.append(places)
    loss = (pd.concat(loss_frames, ignore_index=True) if loss_frames
            else pd.DataFrame(columns=list(CLOSURE_LOSS_COLUMNS)))
    places = (pd.concat(place_frames, ignore_index=True) if place_frames
              else pd.DataFrame(columns=list(CLOSURE_PLACE_COLUMNS)))
    return loss[list(CLOSURE_LOSS_COLUMNS)], places[list(CLOSURE_PLACE_COLUMNS)]


@dataclass
class ClosureRun:
    """A scenario run on open and on closed roads, and what the closure lost.

    Attributes
    ----------
    before, after
        The runs on the open and on the closed roads (``after`` is what an audit with the
        closure writes; its manifest names the closure).
    loss, places
        :func:`closure_loss`'s tables.
    closure
        The closure applied.
    """

    before: RunResult
    after: RunResult
    loss: pd.DataFrame
    places: pd.DataFrame
    closure: Closure = field(default_factory=Closure)


def run_with_closures(
    scenario: Scenario, closure: Closure, *, steps: Steps | None = None, new_sites: int = 0
) -> ClosureRun:
    """Run a scenario on its roads and on the roads left by ``closure``; compare them."""
    from covplan import pipeline

    steps = steps or Steps(verbosity=0)
    inputs = pipeline.load_inputs(scenario, steps=steps)
    rules = pipeline.rules_for_scenario(scenario)
    access = pipeline.road_access(scenario, inputs, steps=steps)
    before = pipeline.run_scenario(scenario, steps=steps, inputs=inputs, access=access,
                                   with_isochrones=False)
    modes = sorted({r.mode for r in _travel_rules(rules)}) or ["drive"]
    with steps.step("Closing roads"):
        closed = closure.apply(access, modes)
    after = pipeline.run_scenario(scenario, steps=steps, new_sites=new_sites, inputs=inputs,
                                  access=closed)
    parameters = after.manifest.get("parameters")
    if isinstance(parameters, dict):
        parameters["closures"] = closure.describe()
    loss, places = closure_loss(rules, inputs, access, closed)
    return ClosureRun(before=before, after=after, loss=loss, places=places, closure=closure)


def emergency_rules(rules: Sequence[Rule], rule_ids: Sequence[str] = ()) -> list[TravelTimeRule]:
    """Return the emergency circle's rules: ``rule_ids``, else every ambulance travel-time rule.

    Raises
    ------
    CoverageError
        If there is none, a named rule is unknown or not a travel-time rule, or the rules
        differ in mode or facility types (run them one at a time).
    """
    by_id = {r.id: r for r in rules}
    if rule_ids:
        unknown = [i for i in rule_ids if i not in by_id]
        if unknown:
            raise CoverageError(f"unknown standard(s) {', '.join(unknown)}; the scenario has "
                                f"{', '.join(by_id)}")
        chosen = [by_id[i] for i in rule_ids]
    else:
        chosen = [r for r in rules if isinstance(r, TravelTimeRule) and r.mode == "ambulance"]
    if not chosen or not all(isinstance(r, TravelTimeRule) for r in chosen):
        raise CoverageError(
            "the single-points-of-failure report needs travel-time standards (the emergency "
            "circle, e.g. preset bazhong BZ-12/BZ-13 by ambulance); add one or name it with "
            "--rule"
        )
    if len({(r.mode, tuple(sorted(r.facility_types))) for r in chosen}) > 1:
        raise CoverageError(
            f"standards {', '.join(r.id for r in chosen)} differ in travel mode or facility "
            "types; name the ones of one emergency circle with --rule"
        )
    return chosen  # type: ignore[return-value]


def spof_for_scenario(
    scenario: Scenario,
    *,
    top: int | None = 20,
    rule_ids: Sequence[str] = (),
    steps: Steps | None = None,
    bruteforce: bool = False,
) -> pd.DataFrame:
    """Rank the road segments whose closure alone drops the most residents out of the circle.

    A place is in the emergency circle when its time is within the threshold of its class
    (the largest of the chosen rules that apply to it). Segments are way pieces between
    junctions; each row names its OSM way.

    Returns
    -------
    pandas.DataFrame
        :data:`SPOF_FILE_COLUMNS`, most residents lost first; only segments with a loss.
    """
    from covplan import pipeline

    steps = steps or Steps(verbosity=0)
    inputs = pipeline.load_inputs(scenario, steps=steps)
    chosen = emergency_rules(pipeline.rules_for_scenario(scenario), rule_ids)
    access = pipeline.road_access(scenario, inputs, steps=steps)
    mode = chosen[0].mode
    net = access.network(mode)
    facilities = inputs.facilities
    src = access.attachment(mode, "facilities")
    mask = facilities["type"].isin(chosen[0].facility_types).to_numpy() & src.reachable
    if not mask.any():
        raise CoverageError(
            f"no facility of types {', '.join(chosen[0].facility_types)} can be reached by "
            f"{mode}; check the facilities layer"
        )
    limits = np.column_stack([r.limit_per_place(inputs.places).to_numpy() for r in chosen])
    limit = np.where(np.isnan(limits).all(axis=1), np.nan,
                     np.nanmax(np.where(np.isnan(limits), -np.inf, limits), axis=1))
    fn = single_points_of_failure_bruteforce if bruteforce else single_points_of_failure
    with steps.step(f"Single points of failure on {len(net.seg_fwd)} road segments"):
        table = fn(net, src.subset(mask), access.attachment(mode, "places"),
                   limit_minutes=limit, weights=inputs.places["population"].to_numpy(float),
                   top=top)
    mid = shapely.line_interpolate_point(net.seg_geometry[table["segment"].to_numpy()], 0.5,
                                         normalized=True)  # on the line, in lon/lat
    table = table.assign(rank=np.arange(1, len(table) + 1), lon=shapely.get_x(mid),
                         lat=shapely.get_y(mid))
    return table[list(SPOF_FILE_COLUMNS)]
