"""The app's map of a region and the plan's own layer on it (see :mod:`covplan.outputs.planmap`)."""

from __future__ import annotations

from typing import Any

import folium
from covplan.outputs.planmap import app_map, plan_layer
from covplan.planning.plans import Plan
from covplan.planning.region import Region

__all__ = ["app_map", "plan_map_layer"]


def plan_map_layer(region: Region, plan: Plan, whatif: Any = None,
                   unit_id: str | None = None) -> folium.FeatureGroup:
    """Return the plan's map layer: candidates, places newly covered and the selected unit.

    Parameters
    ----------
    region
        The region (read only).
    plan
        The plan whose candidate stations are drawn.
    whatif
        The siting engine's what-if answer for the plan (its ``newly_covered`` place rows
        are drawn), or None.
    unit_id
        The unit picked in the results table, or None.
    """
    selected = None
    if unit_id is not None:
        units = region.inputs.units
        selected = units[units["unit_id"].astype(str) == str(unit_id)]
    gained = None
    newly = getattr(whatif, "newly_covered", None)
    if newly is not None and len(newly):
        gained = region.inputs.places.iloc[newly]
    return plan_layer(plan.named_points, selected_unit=selected, gained_places=gained)
