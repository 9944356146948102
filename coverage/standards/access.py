"""How the audit asks "how far is the nearest facility?": a Protocol and a straight-line version.

The audit never talks to the road engine directly. It takes an object implementing
:class:`Access`; the road engine (``covplan.engine``) is plugged in behind the same Protocol.
:class:`StraightLineAccess` is a simple, dependency-free implementation: geodesic straight-line
distance on the WGS-84 ellipsoid, optionally multiplied by a detour factor, and converted to
minutes with one speed per mode. It is an approximation (roads are longer than straight lines,
and speeds vary by road class) used for tests, quick looks and the straight-line variant of
SPB-02.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import geopandas as gpd
import numpy as np
import pandas as pd
from covplan.errors import CoverageError
from pyproj import Geod
from scipy.spatial import cKDTree

__all__ = ["METRICS", "Access", "ResponseAccess", "StraightLineAccess"]

#: The metrics an :class:`Access` answers: ``"time"`` in minutes, ``"length"`` in kilometres.
METRICS: tuple[str, ...] = ("time", "length")

_GEOD = Geod(ellps="WGS84")
_CANDIDATES = 8


@runtime_checkable
class Access(Protocol):
    """Nearest-facility values for every population place.

    Implementations hold the places (and facilities) they were built for.
    """

    def nearest(
        self, facility_types: tuple[str, ...], *, mode: str, metric: str
    ) -> pd.DataFrame:
        """Return the nearest facility of the given types for every place.

        Parameters
        ----------
        facility_types
            Facility types (keys of ``covplan.facility_types.FACILITY_TYPES``) to consider.
        mode
            Travel mode name, e.g. ``"drive"``, ``"walk"``, ``"ambulance"``.
        metric
            ``"time"`` (values in minutes) or ``"length"`` (values in kilometres).

        Returns
        -------
        pandas.DataFrame
            Index ``place_id`` of every place; columns ``value`` (float, ``inf`` when no facility
            can be reached) and ``facility_id`` (the nearest facility's id, or None).
        """
        ...


@runtime_checkable
class ResponseAccess(Access, Protocol):
    """An :class:`Access` that also answers the emergency-response questions (optional).

    The ``response_time`` and ``backup_cover`` rules need these two methods; with an access
    that lacks them (e.g. :class:`StraightLineAccess`) they are ``cannot_check``. The road
    engine's ``covplan.engine.access.RoadAccess`` implements them.
    """

    def two_leg(
        self, station_types: tuple[str, ...], hospital_ids: tuple[str, ...], *, mode: str
    ) -> pd.DataFrame:
        """Return station -> patient -> receiving hospital times for every place.

        Parameters
        ----------
        station_types
            Facility types the ambulance leaves from (nearest one, with the mode's turnout).
        hospital_ids
            ``facility_id`` of the receiving hospitals (nearest one for leg 2).
        mode
            Travel mode name; its ``on_scene_minutes`` is the time with the patient.

        Returns
        -------
        pandas.DataFrame
            Index ``place_id``; columns ``leg1_minutes``, ``station_id``, ``on_scene``,
            ``leg2_minutes``, ``hospital_id``, ``value`` (the total, minutes; ``inf`` when a
            leg cannot be travelled) and ``facility_id`` (the station).
        """
        ...

    def nearest_two(
        self, facility_types: tuple[str, ...], *, mode: str, cutoff: float
    ) -> pd.DataFrame:
        """Return the nearest and second-nearest facility within ``cutoff`` minutes.

        Returns
        -------
        pandas.DataFrame
            Index ``place_id``; columns ``value`` / ``facility_id`` (nearest) and
            ``second_value`` / ``second_facility_id`` (the backup; ``inf`` / None when fewer
            than two facilities lie within the cutoff).
        """
        ...


class StraightLineAccess:
    """Straight-line (geodesic) access: an approximation of road access.

    ``length`` = geodesic distance on the WGS-84 ellipsoid x ``detour_factor`` (km);
    ``time`` = that length / ``speeds_kmh[mode]`` x 60 (minutes). Candidates are found with a
    k-d tree in the layer's UTM zone, then measured exactly on the ellipsoid.

    Parameters
    ----------
    facilities
        Facility layer (``facility_id``, ``type``, Point geometry).
    places
        Population places (``place_id``, Point geometry).
    speeds_kmh
        Speed per mode name, km/h (e.g. ``{"drive": 40.0, "walk": 4.8}``).
    detour_factor
        Road length / straight-line length; 1.0 means plain straight lines. Typical road
        networks are 1.2-1.4.
    """

    def __init__(
        self,
        facilities: gpd.GeoDataFrame,
        places: gpd.GeoDataFrame,
        *,
        speeds_kmh: Mapping[str, float],
        detour_factor: float = 1.0,
    ) -> None:
        for name, layer, cols in (
            ("facilities", facilities, ("facility_id", "type")),
            ("places", places, ("place_id",)),
        ):
            missing = [c for c in cols if c not in layer.columns]
            if missing:
                raise CoverageError(
                    f"{name}: missing column(s) {missing}; give the canonical layer "
                    "(see docs/ARCHITECTURE.md)"
                )
        if not detour_factor >= 1.0:
            raise CoverageError(
                f"detour_factor must be >= 1 (road length over straight-line length), "
                f"got {detour_factor!r}"
            )
        bad = {k: v for k, v in speeds_kmh.items() if not (isinstance(v, (int, float)) and v > 0)}
        if bad:
            raise CoverageError(f"speeds_kmh: speeds must be positive numbers, got {bad}")
        self.facilities = facilities.to_crs(4326)
        self.places = places.to_crs(4326)
        self.speeds_kmh = dict(speeds_kmh)
        self.detour_factor = float(detour_factor)
        crs = self.places.estimate_utm_crs() if len(self.places) else None
        self._crs = crs

    def nearest(
        self, facility_types: tuple[str, ...], *, mode: str, metric: str
    ) -> pd.DataFrame:
        """Return the nearest facility of the given types for every place (see :class:`Access`).

        Raises
        ------
        CoverageError
            If ``metric`` is unknown, or ``metric == "time"`` and ``mode`` has no speed.
        """
        if metric not in METRICS:
            raise CoverageError(f"metric must be one of {METRICS}, got {metric!r}")
        if metric == "time" and mode not in self.speeds_kmh:
            raise CoverageError(
                f"StraightLineAccess has no speed for mode {mode!r}; known modes: "
                f"{sorted(self.speeds_kmh)} (pass speeds_kmh={{{mode!r}: ...}})"
            )
        index = pd.Index(self.places["place_id"].astype(str), name="place_id")
        out = pd.DataFrame(
            {"value": np.full(len(index), np.inf), "facility_id": pd.Series([None] * len(index),
                                                                              dtype=object)},
            index=index,
        )
        fac = self.facilities[self.facilities["type"].isin(facility_types)]
        if fac.empty or out.empty:
            return out
        fac_xy = _xy(fac.to_crs(self._crs))
        place_xy = _xy(self.places.to_crs(self._crs))
        k = min(_CANDIDATES, len(fac))
        _, idx = cKDTree(fac_xy).query(place_xy, k=k)
        idx = np.asarray(idx).reshape(len(place_xy), k)
        flon, flat = fac.geometry.x.to_numpy(), fac.geometry.y.to_numpy()
        plon = np.repeat(self.places.geometry.x.to_numpy(), k)
        plat = np.repeat(self.places.geometry.y.to_numpy(), k)
        cand = idx.ravel()
        _, _, dist_m = _GEOD.inv(plon, plat, flon[cand], flat[cand])
        dist_m = np.asarray(dist_m).reshape(len(place_xy), k)
        best = np.argmin(dist_m, axis=1)
        rows = np.arange(len(place_xy))
        km = dist_m[rows, best] / 1000.0 * self.detour_factor
        out["value"] = km if metric == "length" else km / self.speeds_kmh[mode] * 60.0
        out["facility_id"] = fac["facility_id"].astype(str).to_numpy()[idx[rows, best]]
        return out


def _xy(gdf: gpd.GeoDataFrame) -> np.ndarray:
    return np.column_stack([gdf.geometry.x.to_numpy(), gdf.geometry.y.to_numpy()])
