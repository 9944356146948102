"""The checked input layers of a scenario, as one value the engine and the audit read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
from shapely.geometry.base import BaseGeometry

__all__ = ["Inputs"]


@dataclass
class Inputs:
    """The checked input layers of a scenario.

    Attributes
    ----------
    facilities, units, places
        Canonical layers (docs/ARCHITECTURE.md), EPSG:4326.
    files
        Role -> input file, for the manifest.
    notes
        Repairs and warnings raised while loading (each also issued as an InputWarning).
    """

    facilities: gpd.GeoDataFrame
    units: gpd.GeoDataFrame
    places: gpd.GeoDataFrame
    files: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def study_area(self) -> BaseGeometry:
        """The union of the units: the area the road network is cut to (plus a buffer)."""
        return self.units.geometry.union_all()
