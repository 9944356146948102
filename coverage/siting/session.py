"""Siting on a scenario: the travel-time matrix of one standard, proposals and what-if.

A :class:`SitingSession` is built once per scenario and standard (the expensive part: candidate
sites and the facility-by-place matrix from the road engine). Proposals and what-if questions
then run on the precomputed :class:`~covplan.siting.problem.SitingProblem` in milliseconds.
What-if questions are :class:`~covplan.whatif.FacilityChange` objects, the same as
:func:`covplan.whatif.what_if` takes (:meth:`SitingSession.apply`), with the same new
facility ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
from covplan.engine.attach import attach
from covplan.engine.routing import reach_matrix
from covplan.errors import CoverageError
from covplan.geo import project_geoms
from covplan.progress import Steps
from covplan.siting.candidates import exclude, grid_candidates
from covplan.siting.curve import coverage_curve
from covplan.siting.exact import solve
from covplan.siting.problem import SitingProblem, SitingResult
from covplan.siting.whatif import WhatIf, WhatIfResult
from covplan.standards.rules import Rule, TravelTimeRule
from covplan.whatif import FacilityChange, MovedFacility, NewFacility

if TYPE_CHECKING:
    from covplan.engine.access import RoadAccess

__all__ = ["Proposal", "SitingSession"]


@dataclass(frozen=True)
class Proposal:
    """Proposed new sites.

    Attributes
    ----------
    sites
        One row per proposed site: site_id, rank, covered_population (cumulative, with the
        sites of lower rank), covered_share, gain (population this site adds), Point geometry
        (EPSG:4326).
    result
        The solver's result (method, solver, objective, gap, notes).
    curve
        Coverage against the number of new sites (0..N).
    """

    sites: gpd.GeoDataFrame
    result: SitingResult
    curve: pd.DataFrame

    def describe(self) -> str:
        """Return a short text for the terminal."""
        lines = [self.result.summary()]
        for row in self.curve.itertuples():
            lines.append(
                f"  {row.n_new_sites} new site(s): {row.covered_population:,.0f} covered "
                f"({row.covered_share:.1%})"
            )
        return "\n".join(lines)


class SitingSession:
    """Precomputed siting state for one travel-time standard of a scenario.

    Build it with :meth:`from_access`. Rows of the matrix are the existing facilities of the
    standard's types (kept open) followed by the candidate sites.
    """

    def __init__(
        self,
        *,
        access: RoadAccess,
        rule: TravelTimeRule,
        problem: SitingProblem,
        site_points: gpd.GeoDataFrame,
        n_existing: int,
        cutoff: float,
    ) -> None:
        self.access = access
        self.rule = rule
        self.problem = problem
        self.site_points = site_points
        self.n_existing = n_existing
        self.cutoff = cutoff
        self.whatif = WhatIf(problem)
        facilities = access.inputs.facilities
        self._facility_types: dict[str, str] = dict(
            zip(facilities["facility_id"], facilities["type"], strict=False))
        self._existing_rows = {f: i for i, f in enumerate(site_points["site_id"][:n_existing])}
        self._types = frozenset(rule.facility_types)

    @classmethod
    def from_access(
        cls,
        access: RoadAccess,
        rules: Sequence[Rule],
        *,
        rule_id: str | None = None,
        spacing_m: float = 500.0,
        min_distance_m: float = 300.0,
        steps: Steps | None = None,
    ) -> SitingSession:
        """Build the matrix for a travel-time standard (``rule_id``, default the first one).

        Parameters
        ----------
        access
            The scenario's road access (networks and attachments are reused).
        rules
            The scenario's rules.
        rule_id
            Which travel-time rule sets the facility types, mode and thresholds.
        spacing_m
            Candidate grid spacing (candidates are the road nodes nearest the grid points).
        min_distance_m
            Candidates closer than this to an existing facility are left out.
        steps
            Progress display.

        Raises
        ------
        CoverageError
            When the scenario has no travel-time standard (or none called ``rule_id``).
        """
        steps = steps or access.steps
        travel = [r for r in rules if isinstance(r, TravelTimeRule)]
        if rule_id is not None:
            travel = [r for r in travel if r.id == rule_id]
        if not travel:
            known = ", ".join(r.id for r in rules if isinstance(r, TravelTimeRule)) or "none"
            raise CoverageError(
                f"siting needs a travel-time standard{f' called {rule_id!r}' if rule_id else ''}; "
                f"travel-time standards in this scenario: {known}"
            )
        rule = travel[0]
        inputs = access.inputs
        net = access.network(rule.mode)
        facilities = inputs.facilities
        fac_att = access.attachment(rule.mode, "facilities")
        mask = facilities["type"].isin(rule.facility_types).to_numpy() & fac_att.reachable
        existing = facilities[mask]
        with steps.step("Choosing candidate sites"):
            area = project_geoms(np.array([inputs.study_area]), "EPSG:4326", net.crs)[0]
            cands = grid_candidates(
                area, spacing_m=spacing_m, node_x=net.xy[:, 0], node_y=net.xy[:, 1]
            )
            fxy = project_geoms(existing.geometry.to_numpy(), "EPSG:4326", net.crs)
            cands = exclude(
                cands,
                facilities_x=np.array([p.x for p in fxy]),
                facilities_y=np.array([p.y for p in fxy]),
                min_distance_m=min_distance_m,
            )
        if len(cands) == 0:
            raise CoverageError(
                f"no candidate sites left at {spacing_m:g} m spacing; use a smaller spacing"
            )
        site_points = gpd.GeoDataFrame(
            {
                "site_id": list(existing["facility_id"])
                + [f"node-{net.node_ids[n]}" for n in cands.node],
                "existing": [True] * len(existing) + [False] * len(cands),
            },
            geometry=gpd.points_from_xy(
                np.concatenate([existing.geometry.x, net.lonlat[cands.node, 0]]),
                np.concatenate([existing.geometry.y, net.lonlat[cands.node, 1]]),
            ),
            crs="EPSG:4326",
        )
        places = inputs.places
        limits = rule.limit_per_place(places).to_numpy()
        population = np.where(np.isnan(limits), 0.0, places["population"].to_numpy(float))
        threshold = np.where(np.isnan(limits), 0.0, limits)
        cutoff = float(np.nanmax(limits)) if np.isfinite(limits).any() else 0.0
        with steps.step(f"Travel-time matrix {len(site_points)} sites x {len(places)} places"):
            src = attach(net, site_points, max_snap_m=fac_att.max_snap_m)
            times = reach_matrix(net, src, access.attachment(rule.mode, "places"), cutoff=cutoff)
        problem = SitingProblem.from_matrix(
            times,
            existing=np.arange(len(existing)),
            population=population,
            threshold_minutes=threshold,
            site_ids=site_points["site_id"].to_numpy(),
            place_ids=places["place_id"].to_numpy(),
            unit_ids=places["unit_id"].to_numpy(),
        )
        return cls(
            access=access, rule=rule, problem=problem, site_points=site_points,
            n_existing=len(existing), cutoff=cutoff,
        )

    def propose(self, n_sites: int, *, method: str = "mclp") -> Proposal:
        """Propose up to ``n_sites`` new sites.

        Parameters
        ----------
        n_sites
            How many new sites (for ``lscp``: the target share is taken as 100% and
            ``n_sites`` is ignored).
        method
            ``mclp`` (maximal covering), ``lscp`` (fewest sites for full coverage) or
            ``pmedian`` (least population-weighted minutes).
        """
        if method == "lscp":
            result = solve(self.problem, "lscp", target_share=1.0)
        elif method in ("mclp", "pmedian"):
            result = solve(self.problem, method, n_sites=n_sites)
        else:
            raise CoverageError(f"unknown siting method {method!r}; use mclp, lscp or pmedian")
        rows, covered = self._rank(list(result.sites), drop_idle=method != "pmedian")
        curve = coverage_curve(self.problem, max(len(rows), 1))
        chosen = self.site_points.iloc[rows].reset_index(drop=True)
        total = float(self.problem.population.sum()) or 1.0
        sites = gpd.GeoDataFrame(
            {
                "site_id": chosen["site_id"],
                "rank": np.arange(1, len(rows) + 1),
                "rule_id": self.rule.id,
                "method": result.method,
                "covered_population": covered,
                "covered_share": [c / total for c in covered],
                "gain": np.diff([self.whatif.apply().covered_after, *covered]),
            },
            geometry=chosen.geometry.to_numpy(),
            crs="EPSG:4326",
        )
        return Proposal(sites=sites, result=result, curve=curve)

    def _rank(self, rows: list[int], *, drop_idle: bool) -> tuple[list[int], list[float]]:
        """Order chosen sites by marginal gain; with ``drop_idle``, drop those adding none."""
        order: list[int] = []
        covered: list[float] = []
        base = self.whatif.apply().covered_after
        remaining = list(rows)
        while remaining:
            gains = [self.whatif.apply(add=[*order, r]).covered_after for r in remaining]
            best = int(np.argmax(gains))
            if drop_idle and gains[best] <= (covered[-1] if covered else base) + 1e-9:
                break
            order.append(remaining.pop(best))
            covered.append(float(gains[best]))
        return order, covered

    def apply(self, change: FacilityChange) -> WhatIfResult:
        """Return what ``change`` does to this standard, from the matrix (the fast path).

        Added facilities of the standard's types, and moved facilities of those types at
        their new place, are routed as point rows (:meth:`point_row`); closed and moved
        existing facilities are closed rows. Facilities of types the standard does not use
        change nothing here, as in :func:`covplan.whatif.what_if`. The answer carries
        ``change`` and its new facility ids (``new-1``, ...).

        Raises
        ------
        CoverageError
            For an unknown closed or moved facility id, or a point too far from the roads.
        """
        kind = self._facility_types
        change.check(kind.keys())
        rows, types = self._existing_rows, self._types
        add: list[sp.csr_matrix] = [
            self.point_row(f.lon, f.lat) for f in change.add if f.type in types
        ]
        close = [rows[f] for f in change.close if f in rows]
        for m in change.move:
            if kind.get(m.facility_id) in types:
                add.append(self.point_row(m.lon, m.lat))
                if m.facility_id in rows:
                    close.append(rows[m.facility_id])
        result = self.whatif.apply(add=add, close=close)
        return replace(result, action=change.describe(), change=change,
                       new_ids=change.new_ids)

    def change_for(
        self,
        points: Sequence[tuple[float, float]] = (),
        *,
        closed: Sequence[str] = (),
        facility_type: str | None = None,
        names: Sequence[str] | None = None,
    ) -> FacilityChange:
        """Return the :class:`~covplan.whatif.FacilityChange` of new stations and closures.

        Parameters
        ----------
        points
            (lon, lat) of the new stations, WGS-84 (ids ``new-1``, ... in this order).
        closed
            Ids of existing facilities to close (repeats are dropped).
        facility_type
            Type of the new stations; default the standard's first facility type.
        names
            Names of the new stations; default ``proposed station``.
        """
        kind = facility_type or self.rule.facility_types[0]
        labels = list(names) if names is not None else ["proposed station"] * len(points)
        if len(labels) != len(points):
            raise CoverageError(
                f"change_for: {len(labels)} names for {len(points)} points; give one name a point"
            )
        return FacilityChange(
            add=tuple(NewFacility(float(lon), float(lat), kind, name)
                      for (lon, lat), name in zip(points, labels, strict=True)),
            close=tuple(dict.fromkeys(closed)),
        )

    def add_point(
        self, lon: float, lat: float, *, facility_type: str | None = None
    ) -> WhatIfResult:
        """Return the change if a station opened at (lon, lat), against the existing facilities.

        The station is facility ``new-1`` of type ``facility_type`` (default the standard's
        first type).
        """
        return self.apply(self.change_for([(lon, lat)], facility_type=facility_type))

    def apply_points(
        self,
        points: Sequence[tuple[float, float]],
        *,
        closed: Sequence[str] = (),
        facility_type: str | None = None,
    ) -> WhatIfResult:
        """Return the change if stations opened at every (lon, lat) and ``closed`` closed.

        Parameters
        ----------
        points
            (lon, lat) of the new stations, WGS-84 (facilities ``new-1``, ... in this order).
        closed
            Ids of existing facilities to close; ids of facilities the standard does not use
            change nothing here.
        facility_type
            Type of the new stations; default the standard's first facility type.

        Raises
        ------
        CoverageError
            When a point is too far from the roads, or a closed id is not a facility.
        """
        return self.apply(self.change_for(points, closed=closed, facility_type=facility_type))

    def point_row(self, lon: float, lat: float) -> sp.csr_matrix:
        """Travel-time row (1 x n_places, minutes within the cutoff) of a point site."""
        net = self.access.network(self.rule.mode)
        point = gpd.GeoDataFrame(geometry=gpd.points_from_xy([lon], [lat]), crs="EPSG:4326")
        att = attach(net, point, max_snap_m=self.access.attachment(self.rule.mode, "facilities")
                     .max_snap_m)
        if not att.reachable[0]:
            raise CoverageError(
                f"the point ({lon:.5f}, {lat:.5f}) is {att.snap_m[0]:,.0f} m from the nearest "
                "road; place the station on or near a road"
            )
        return reach_matrix(
            net, att, self.access.attachment(self.rule.mode, "places"), cutoff=self.cutoff
        )

    def close(self, facility_id: str) -> WhatIfResult:
        """Return the change if an existing facility of the standard's types closed.

        Raises
        ------
        CoverageError
            When ``facility_id`` is not an existing facility of this standard.
        """
        if facility_id not in self._existing_rows:
            raise CoverageError(
                f"{facility_id!r} is not an existing facility of standard {self.rule.id}"
            )
        return self.apply(FacilityChange(close=(facility_id,)))

    def move(self, facility_id: str, lon: float, lat: float) -> WhatIfResult:
        """Return the change if an existing facility moved to (lon, lat) (it keeps its id)."""
        return self.apply(FacilityChange(move=(MovedFacility(facility_id, lon, lat),)))
