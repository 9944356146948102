"""The engine's facade: nearest-facility answers per mode, networks built once and shared.

:class:`RoadAccess` is what the audit (through :class:`covplan.standards.access.Access`), the
siting session and the what-if ask; :class:`NetworkSpec` says where its roads come from.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from covplan import settings
from covplan.engine.attach import Attachment, attach
from covplan.engine.modes import Mode
from covplan.engine.network import RoadNetwork, build_network, network_from_place
from covplan.engine.routing import nearest
from covplan.errors import CoverageError, InputWarning
from covplan.inputs.layers import Inputs
from covplan.progress import Steps

__all__ = [
    "DEFAULT_BUFFER_M", "DEFAULT_MAX_SNAP_M", "NetworkSpec", "RoadAccess", "SharedRoadAccess",
    "access_for_networks",
]

#: Metres the road network reaches beyond the study area (trips may leave it and come back).
DEFAULT_BUFFER_M = 5000.0
#: Metres from a road beyond which a point counts as unreachable.
DEFAULT_MAX_SNAP_M = 1000.0
ONLINE_PREFIX = "online:"


@dataclass(frozen=True)
class NetworkSpec:
    """Where a scenario's roads come from and how points join them.

    Attributes
    ----------
    source
        A ``.osm.pbf``/``.osm``/``.graphml`` path, or ``"online:<place name>"``.
    buffer_m
        Metres beyond the study area that the network keeps.
    max_snap_m
        Points farther than this from a road are unreachable.
    dem
        An elevation model for slope-aware walking, or None.
    cache_dir
        Where built networks are cached (None: the settings' cache folder).
    """

    source: str | Path
    buffer_m: float = DEFAULT_BUFFER_M
    max_snap_m: float = DEFAULT_MAX_SNAP_M
    dem: str | Path | None = None
    cache_dir: str | Path | None = None

    @property
    def online_place(self) -> str | None:
        """The place name to download roads for, or None for a file source."""
        text = str(self.source)
        if text.startswith(ONLINE_PREFIX):
            return text.removeprefix(ONLINE_PREFIX).strip()
        return None


class RoadAccess:
    """Nearest-facility travel times and distances on the road network of each mode.

    Implements :class:`covplan.standards.access.Access`. Networks are built (or read from the
    on-disk cache) the first time a mode is asked for; facilities and places are attached once
    per mode; answers are cached per (facility types, mode, metric).

    Parameters
    ----------
    spec
        Where the roads come from and how they are cut and snapped to.
    inputs
        The loaded layers.
    modes
        Travel modes by name (the scenario's, overrides applied).
    steps
        Progress display.
    """

    def __init__(
        self,
        spec: NetworkSpec,
        inputs: Inputs,
        *,
        modes: dict[str, Mode],
        steps: Steps | None = None,
    ) -> None:
        self.spec = spec
        self.inputs = inputs
        self.steps = steps or Steps(verbosity=0)
        self.modes: dict[str, Mode] = dict(modes)
        self._networks: dict[str, RoadNetwork] = {}
        self._attached: dict[tuple[str, str], Attachment] = {}
        self._answers: dict[tuple[object, ...], pd.DataFrame] = {}  # per question asked

    def with_facilities(self, facilities: gpd.GeoDataFrame) -> RoadAccess:
        """Return an access for another facility layer that reuses this one's networks.

        Used by what-if questions and by the app's per-session plans: the road networks and
        the places' attachments stay this object's (shared, never changed); only the
        facilities are attached anew.
        """
        inputs = Inputs(
            facilities, self.inputs.units, self.inputs.places, files=self.inputs.files,
            notes=self.inputs.notes,
        )
        return SharedRoadAccess(self, inputs)

    def mode(self, name: str) -> Mode:
        """Return the mode called ``name``.

        Raises
        ------
        CoverageError
            Naming the known modes, if there is no such mode.
        """
        if name not in self.modes:
            raise CoverageError(
                f"unknown travel mode {name!r}; known modes: {', '.join(self.modes)}"
            )
        return self.modes[name]

    def network(self, mode: str) -> RoadNetwork:
        """Return the road network of a mode, building it on first use."""
        if mode not in self._networks:
            spec = self.spec
            with self.steps.step(f"Building the {mode} road network"):
                if spec.online_place is not None:
                    net = network_from_place(
                        spec.online_place, mode=self.mode(mode), buffer_m=spec.buffer_m
                    )
                else:
                    net = build_network(
                        spec.source,
                        mode=self.mode(mode),
                        study_area=self.inputs.study_area,
                        buffer_m=spec.buffer_m,
                        dem=spec.dem,
                        cache_dir=(spec.cache_dir if spec.cache_dir is not None
                                   else settings.network_cache_dir()),
                    )
                self.steps.detail(net.report.summary())
            self._networks[mode] = net
        return self._networks[mode]

    def attachment(self, mode: str, layer: str) -> Attachment:
        """Return where the facilities (``layer="facilities"``) or places join a mode's roads."""
        key = (mode, layer)
        if key not in self._attached:
            gdf = self.inputs.facilities if layer == "facilities" else self.inputs.places
            attached = attach(self.network(mode), gdf, max_snap_m=self.spec.max_snap_m)
            _warn_unreachable(gdf, attached, layer=layer, mode=mode)
            self._attached[key] = attached
        return self._attached[key]

    def nearest(
        self, facility_types: tuple[str, ...], *, mode: str, metric: str
    ) -> pd.DataFrame:
        """Nearest facility of the given types for every place (see the Access protocol)."""
        key = (tuple(facility_types), mode, metric)
        if key in self._answers:
            return self._answers[key]
        places = self.inputs.places
        facilities = self.inputs.facilities
        net = self.network(mode)
        src_all = self.attachment(mode, "facilities")
        mask = facilities["type"].isin(facility_types).to_numpy() & src_all.reachable
        out = pd.DataFrame(
            {"value": np.full(len(places), np.inf), "facility_id": None},
            index=pd.Index(places["place_id"].to_numpy(), name="place_id"),
        )
        if mask.any():
            label = f"Travel {metric} by {mode} to {int(mask.sum())} facilities"
            with self.steps.step(label):
                result = nearest(
                    net, src_all.subset(mask), self.attachment(mode, "places"), metric=metric
                )
            ids = facilities["facility_id"].to_numpy()[mask]
            found = result.source >= 0
            out["value"] = np.where(found, result.value, np.inf)
            out["facility_id"] = np.where(found, ids[np.clip(result.source, 0, None)], None)
        self._answers[key] = out
        return out


    def two_leg(
        self, station_types: tuple[str, ...], hospital_ids: tuple[str, ...], *, mode: str
    ) -> pd.DataFrame:
        """Station -> patient -> hospital for every place (see ``ResponseAccess.two_leg``).

        Leg 1 from the nearest station of ``station_types`` (with the mode's turnout), the
        mode's ``on_scene_minutes``, leg 2 to the nearest of ``hospital_ids``; computed by
        :func:`covplan.engine.response.two_leg_times`, cached per arguments.
        """
        from covplan.engine.response import two_leg_times

        key = ("two_leg", tuple(station_types), tuple(hospital_ids), mode)
        if key in self._answers:
            return self._answers[key]
        places, fac = self.inputs.places, self.inputs.facilities
        src_all = self.attachment(mode, "facilities")
        ids = fac["facility_id"].astype(str).to_numpy()
        st = fac["type"].isin(station_types).to_numpy() & src_all.reachable
        ho = np.isin(ids, [str(h) for h in hospital_ids]) & src_all.reachable
        index = pd.Index(places["place_id"].to_numpy(), name="place_id")
        if not st.any() or not ho.any():
            out = pd.DataFrame({"leg1_minutes": np.inf, "station_id": None, "on_scene": np.nan,
                                "leg2_minutes": np.inf, "hospital_id": None}, index=index)
        else:
            with self.steps.step(f"Two-leg response by {mode}: {int(st.sum())} stations, "
                                 f"{int(ho.sum())} hospitals"):
                out = two_leg_times(self.network(mode), src_all.subset(st), src_all.subset(ho),
                                    self.attachment(mode, "places"), self.mode(mode),
                                    station_ids=ids[st], hospital_ids=ids[ho])
            out = out.rename(columns={"total_minutes": "value"}).set_index(index)
        if "value" not in out.columns:
            out["value"] = np.inf
        out["facility_id"] = out["station_id"]
        self._answers[key] = out
        return out

    def nearest_two(
        self, facility_types: tuple[str, ...], *, mode: str, cutoff: float
    ) -> pd.DataFrame:
        """Nearest and backup facility within ``cutoff`` minutes (``ResponseAccess``).

        One bounded search per facility (:func:`covplan.engine.response.nearest_k`, ``k=2``),
        cached per arguments.
        """
        from covplan.engine.response import nearest_k

        key = ("nearest_two", tuple(facility_types), mode, float(cutoff))
        if key in self._answers:
            return self._answers[key]
        places, fac = self.inputs.places, self.inputs.facilities
        src_all = self.attachment(mode, "facilities")
        mask = fac["type"].isin(facility_types).to_numpy() & src_all.reachable
        n = len(places)
        minutes, source = np.full((n, 2), np.inf), np.full((n, 2), -1)
        if mask.any():
            with self.steps.step(f"Nearest two of {int(mask.sum())} facilities by {mode}"):
                minutes, source = nearest_k(self.network(mode), src_all.subset(mask),
                                            self.attachment(mode, "places"), k=2,
                                            cutoff=float(cutoff))
        ids = fac["facility_id"].astype(str).to_numpy()[mask]
        ids = ids if ids.size else np.array([None], dtype=object)

        def label(j: int) -> np.ndarray:
            return np.where(source[:, j] >= 0, ids[np.clip(source[:, j], 0, None)], None)

        out = pd.DataFrame(
            {"value": minutes[:, 0], "facility_id": label(0), "second_value": minutes[:, 1],
             "second_facility_id": label(1)},
            index=pd.Index(places["place_id"].to_numpy(), name="place_id"),
        )
        self._answers[key] = out
        return out


def access_for_networks(networks: Mapping[str, RoadNetwork], inputs: Inputs, *,
                        max_snap_m: float = DEFAULT_MAX_SNAP_M) -> RoadAccess:
    """Return a :class:`RoadAccess` over networks already built (or made from a graph).

    Parameters
    ----------
    networks
        Travel mode name -> its road network.
    inputs
        The layers to answer for.
    max_snap_m
        Points farther than this from a road are unreachable.
    """
    spec = NetworkSpec(source="in-memory", max_snap_m=max_snap_m)
    access = RoadAccess(spec, inputs, modes={name: net.mode for name, net in networks.items()})
    access._networks.update(networks)
    return access


class SharedRoadAccess(RoadAccess):
    """Road access for another facility layer, reading a base access's networks read-only.

    Networks and place attachments come from ``base``; facilities are attached anew.

    Parameters
    ----------
    base
        The region's road access.
    inputs
        Layers with the same places as ``base`` and other facilities.
    """

    def __init__(self, base: RoadAccess, inputs: Inputs) -> None:
        super().__init__(base.spec, inputs, modes=base.modes, steps=Steps(verbosity=0))
        self.base = base

    def network(self, mode: str) -> RoadNetwork:
        """Return the base's network of ``mode``."""
        return self.base.network(mode)

    def attachment(self, mode: str, layer: str) -> Attachment:
        """Return the base's place attachment, or this layer's facility attachment."""
        if layer == "places":
            return self.base.attachment(mode, "places")
        return super().attachment(mode, layer)


def _warn_unreachable(
    gdf: gpd.GeoDataFrame, attached: Attachment, *, layer: str, mode: str
) -> None:
    far = ~attached.reachable
    if not far.any():
        return
    id_column = "facility_id" if layer == "facilities" else "place_id"
    ids = gdf[id_column].to_numpy()[far]
    shown = ", ".join(
        f"{i} ({d:,.0f} m)" for i, d in zip(ids[:8], attached.snap_m[far][:8], strict=True)
    )
    more = f" and {len(ids) - 8} more" if len(ids) > 8 else ""
    warnings.warn(
        f"{len(ids)} {layer} lie farther than {attached.max_snap_m:,.0f} m from any {mode} road "
        f"and count as unreachable by {mode}: {shown}{more}. Check their coordinates, or raise "
        "inputs.network.max_snap_m if the roads there are missing from the map",
        InputWarning,
        stacklevel=3,
    )
