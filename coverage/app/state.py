"""One session's plan: candidate stations, closures, standards edits, named scenarios, files.

Nothing here touches Streamlit or the shared caches: a :class:`Plan` is plain data that the
page keeps in ``st.session_state`` (one per browser session, so one user's edits never reach
another's), and :func:`save_plans` / :func:`load_plans` turn the session's plans into a JSON
file and back so work survives a restart.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from covplan.errors import CoverageError
from covplan.inputs.uploads import safe_name
from covplan.standards.presets import list_presets, preset_tables

__all__ = [
    "FILE_FORMAT",
    "UPLOAD_LIMITS_MB",
    "UPLOAD_SUFFIXES",
    "Candidate",
    "Plan",
    "SessionPlans",
    "check_upload",
    "load_plans",
    "save_plans",
    "standards_tables",
    "write_upload_scenario",
]

#: The ``format`` field of a saved scenario file.
FILE_FORMAT = "coverage-planner-app-plan"
FILE_VERSION = 1


@dataclass(frozen=True)
class Candidate:
    """A candidate station the planner placed.

    Attributes
    ----------
    name
        Short label shown in the app (``S1``, ``S2``, ...), unique within a plan.
    lon, lat
        WGS-84 position.
    """

    name: str
    lon: float
    lat: float


@dataclass
class Plan:
    """The edits of one scenario against the region's baseline.

    Attributes
    ----------
    region
        Key of the region (scenario file stem, e.g. ``"andorra"``).
    preset
        None for the scenario file's own standards, else the name of a shipped preset.
    thresholds
        Rule id -> replaced values (``{"minutes": 20}`` or ``{"minutes": {"urban": 10}}``).
    siting_rule
        Id of the travel-time standard that siting and the instant what-if use.
    station_type
        Facility type given to candidate stations (default: the siting rule's first type).
    candidates
        Added stations, in the order placed.
    closed
        Existing facility ids closed in this plan.
    """

    region: str
    preset: str | None = None
    thresholds: dict[str, dict[str, Any]] = field(default_factory=dict)
    siting_rule: str | None = None
    station_type: str | None = None
    candidates: list[Candidate] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)

    def add(self, lon: float, lat: float) -> Candidate:
        """Add a candidate station at (lon, lat) and return it (named ``S<n>``).

        Raises
        ------
        CoverageError
            When the coordinates are not finite WGS-84 longitude/latitude.
        """
        lon, lat = float(lon), float(lat)
        if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180
                and -90 <= lat <= 90):
            raise CoverageError(
                f"({lon}, {lat}) is not a WGS-84 longitude/latitude; longitude must be within "
                "-180..180 and latitude within -90..90"
            )
        used = {c.name for c in self.candidates}
        n = len(self.candidates) + 1
        while f"S{n}" in used:
            n += 1
        candidate = Candidate(f"S{n}", lon, lat)
        self.candidates.append(candidate)
        return candidate

    def remove(self, name: str) -> None:
        """Remove the candidate called ``name``.

        Raises
        ------
        CoverageError
            When there is no such candidate.
        """
        kept = [c for c in self.candidates if c.name != name]
        if len(kept) == len(self.candidates):
            known = ", ".join(c.name for c in self.candidates) or "none"
            raise CoverageError(f"no candidate station {name!r}; candidates: {known}")
        self.candidates = kept

    @property
    def points(self) -> list[tuple[float, float]]:
        """The candidates' (lon, lat) pairs."""
        return [(c.lon, c.lat) for c in self.candidates]

    def copy(self) -> Plan:
        """Return an independent copy."""
        return copy.deepcopy(self)

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "plan") -> Plan:
        """Build a plan from :meth:`to_dict` data.

        Raises
        ------
        CoverageError
            Naming the field that is missing or malformed.
        """
        if not isinstance(data, Mapping):
            raise CoverageError(f"{where}: must be an object, got {type(data).__name__}")
        if not isinstance(data.get("region"), str):
            raise CoverageError(f"{where}.region: missing or not text")
        preset = data.get("preset")
        if preset is not None and preset not in list_presets():
            raise CoverageError(
                f"{where}.preset: unknown preset {preset!r}; known: {', '.join(list_presets())}"
            )
        thresholds = data.get("thresholds", {}) or {}
        if not isinstance(thresholds, Mapping) or not all(
            isinstance(v, Mapping) for v in thresholds.values()
        ):
            raise CoverageError(f"{where}.thresholds: must map rule ids to tables of values")
        try:
            candidates = [
                Candidate(str(c["name"]), float(c["lon"]), float(c["lat"]))
                for c in data.get("candidates", []) or []
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise CoverageError(
                f"{where}.candidates: each needs name, lon and lat ({exc})"
            ) from exc
        closed = data.get("closed", []) or []
        if not isinstance(closed, list):
            raise CoverageError(f"{where}.closed: must be a list of facility ids")
        return cls(
            region=data["region"],
            preset=preset,
            thresholds={str(k): dict(v) for k, v in thresholds.items()},
            siting_rule=data.get("siting_rule"),
            station_type=data.get("station_type"),
            candidates=candidates,
            closed=[str(x) for x in closed],
        )


@dataclass
class SessionPlans:
    """The current plan and the named scenarios a session keeps.

    Attributes
    ----------
    current
        The plan being edited.
    named
        Name -> a kept copy (editing ``current`` never changes them).
    """

    current: Plan
    named: dict[str, Plan] = field(default_factory=dict)

    def keep(self, name: str) -> None:
        """Keep a copy of the current plan under ``name`` (replacing one of that name).

        Raises
        ------
        CoverageError
            When the name is empty.
        """
        name = name.strip()
        if not name:
            raise CoverageError("a named scenario needs a name; type one and keep it again")
        self.named[name] = self.current.copy()

    def restore(self, name: str) -> None:
        """Make a copy of the named scenario the current plan.

        Raises
        ------
        CoverageError
            When there is no such scenario.
        """
        if name not in self.named:
            raise CoverageError(
                f"no named scenario {name!r}; kept: {', '.join(self.named) or 'none'}"
            )
        self.current = self.named[name].copy()


def save_plans(plans: SessionPlans) -> str:
    """Return the session's plans as the text of a scenario file (JSON)."""
    document = {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "current": plans.current.to_dict(),
        "named": {name: plan.to_dict() for name, plan in plans.named.items()},
    }
    return json.dumps(document, ensure_ascii=False, indent=2)


def load_plans(text: str | bytes) -> SessionPlans:
    """Read a scenario file written by :func:`save_plans`.

    Raises
    ------
    CoverageError
        When the text is not such a file (the message says what is wrong).
    """
    try:
        document = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CoverageError(
            f"the scenario file is not JSON ({exc}); load a file saved by this app"
        ) from exc
    if not isinstance(document, dict) or document.get("format") != FILE_FORMAT:
        raise CoverageError(
            f"the file is not a saved plan (its 'format' is not {FILE_FORMAT!r}); "
            "load a file saved by this app"
        )
    if document.get("version") != FILE_VERSION:
        raise CoverageError(
            f"the plan file has version {document.get('version')!r}; this app reads version "
            f"{FILE_VERSION}"
        )
    named = document.get("named", {}) or {}
    if not isinstance(named, Mapping):
        raise CoverageError("named: must map scenario names to plans")
    return SessionPlans(
        current=Plan.from_dict(document.get("current"), where="current"),
        named={str(k): Plan.from_dict(v, where=f"named.{k}") for k, v in named.items()},
    )


def standards_tables(
    base: Sequence[Mapping[str, Any]],
    *,
    preset: str | None = None,
    thresholds: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Return the ``[[standards]]`` tables of a plan: the scenario's or a preset's, edited.

    Parameters
    ----------
    base
        The scenario file's standards tables (used when ``preset`` is None).
    preset
        A shipped preset whose every rule replaces the scenario's standards.
    thresholds
        Rule id -> values replacing the rule's own (``minutes``, ``km``, ...). Rules pulled
        from a preset get them as ``override`` entries; plain rules are edited directly.

    Returns
    -------
    list of dict
        New tables (``base`` is not modified).

    Raises
    ------
    CoverageError
        When a threshold edit names a rule the standards do not have.
    """
    tables = [{"preset": preset}] if preset else copy.deepcopy([dict(t) for t in base])
    edits = dict(thresholds or {})
    applied: set[str] = set()
    for table in tables:
        if "preset" in table:
            ids = [str(t.get("id")) for t in preset_tables(str(table["preset"]))]
            only = table.get("only")
            chosen = [i for i in ids if only is None or i in only]
            override = dict(table.get("override", {}))
            for rid in chosen:
                if rid in edits:
                    override[rid] = {**dict(override.get(rid, {})), **dict(edits[rid])}
                    applied.add(rid)
            if override:
                table["override"] = override
        elif str(table.get("id")) in edits:
            table.update(copy.deepcopy(dict(edits[str(table["id"])])))
            applied.add(str(table["id"]))
    missing = sorted(set(edits) - applied)
    if missing:
        raise CoverageError(
            f"threshold edits for {', '.join(missing)} match no standard of this plan; "
            "reset the thresholds or choose the standards that have these rules"
        )
    return tables


# ------------------------------------------------------------------------------ uploads
#: Largest upload accepted per role, in MB.
UPLOAD_LIMITS_MB: dict[str, float] = {
    "facilities": 20.0,
    "boundaries": 100.0,
    "population": 200.0,
    "network": 200.0,
}
#: File endings accepted per role.
UPLOAD_SUFFIXES: dict[str, tuple[str, ...]] = {
    "facilities": (".csv", ".xlsx", ".xls", ".geojson", ".json", ".gpkg", ".zip"),
    "boundaries": (".geojson", ".json", ".gpkg", ".zip"),
    "population": (".csv", ".xlsx", ".geojson", ".json", ".gpkg", ".zip", ".tif", ".tiff"),
    "network": (".pbf", ".osm", ".graphml", ".xml"),
}
#: Coordinate systems offered for uploaded tables (see :mod:`covplan.inputs.crs`).
UPLOAD_CRS: tuple[str, ...] = ("WGS-84", "GCJ-02", "BD-09", "CGCS2000")


def check_upload(role: str, name: str, size: int) -> str:
    """Check an uploaded file's role, ending and size; return a safe file name for it.

    Raises
    ------
    CoverageError
        For an unknown role, an unsupported ending or a file over the role's size limit.
    """
    if role not in UPLOAD_LIMITS_MB:
        raise CoverageError(f"unknown upload role {role!r}; use one of {list(UPLOAD_LIMITS_MB)}")
    safe = safe_name(name)
    lower = safe.lower()
    if not lower.endswith(UPLOAD_SUFFIXES[role]):
        raise CoverageError(
            f"{name}: a {role} file must end with one of {', '.join(UPLOAD_SUFFIXES[role])}"
        )
    limit = UPLOAD_LIMITS_MB[role]
    if size > limit * 1024 * 1024:
        raise CoverageError(
            f"{name} is {size / 1024 / 1024:,.1f} MB; {role} files are limited to {limit:g} MB "
            "(cut the file to the study area)"
        )
    return safe


def _toml(value: Any) -> str:
    """TOML text of a string, number or list (JSON strings are valid TOML basic strings)."""
    return json.dumps(value, ensure_ascii=False)


def write_upload_scenario(
    folder: str | Path,
    files: Mapping[str, tuple[str, bytes]],
    *,
    crs: str = "WGS-84",
    id_column: str = "unit_id",
    name_column: str = "name",
    level: str = "township",
    population_column: str = "population",
    preset: str = "bazhong",
) -> Path:
    """Write uploaded files and a scenario file naming them into ``folder``; return its path.

    Parameters
    ----------
    folder
        The session's private folder.
    files
        Role (``facilities``, ``boundaries``, ``population`` (optional), ``network``) ->
        (original file name, content).
    crs
        Coordinate system of the facilities' and population's coordinates.
    id_column, name_column, level, population_column
        How to read the boundaries (and the population, for points or units).
    preset
        The standards preset the scenario starts with.

    Raises
    ------
    CoverageError
        When a required file is missing, a file is refused by :func:`check_upload`, or the
        CRS or preset is unknown.
    """
    missing = [r for r in ("facilities", "boundaries", "network") if r not in files]
    if missing:
        raise CoverageError(
            f"upload the {', '.join(missing)} file(s): facilities, boundaries and a road "
            "network are needed (population is optional: without it the boundaries' "
            "population column is used)"
        )
    if crs not in UPLOAD_CRS:
        raise CoverageError(f"unknown coordinate system {crs!r}; choose one of {UPLOAD_CRS}")
    if preset not in list_presets():
        raise CoverageError(f"unknown preset {preset!r}; known: {', '.join(list_presets())}")
    folder = Path(folder) / "upload"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    paths: dict[str, Path] = {}
    for role, (name, content) in files.items():
        safe = check_upload(role, name, len(content))
        path = folder / f"{role}-{safe}"
        path.write_bytes(content)
        paths[role] = path
    lines = [
        "[scenario]",
        f"name = {_toml('Uploaded data')}",
        "",
        "[inputs.facilities]",
        f"path = {_toml(str(paths['facilities']))}",
        f"crs = {_toml(crs)}",
        "",
        "[inputs.boundaries]",
        f"path = {_toml(str(paths['boundaries']))}",
        f"id_column = {_toml(id_column)}",
        f"name_column = {_toml(name_column)}",
        f"level = {_toml(level)}",
    ]
    if "population" not in paths:
        lines.append(f"population_column = {_toml(population_column)}")
    lines += ["", "[inputs.population]"]
    if "population" in paths:
        raster = paths["population"].suffix.lower() in (".tif", ".tiff")
        lines += [
            f"kind = {_toml('raster' if raster else 'points')}",
            f"path = {_toml(str(paths['population']))}",
        ]
        if not raster:
            lines += [f"population_column = {_toml(population_column)}", f"crs = {_toml(crs)}"]
    else:
        lines.append(f"kind = {_toml('units')}")
    lines += [
        "",
        "[inputs.network]",
        f"source = {_toml(str(paths['network']))}",
        "buffer_m = 2000",
        "",
        "[[standards]]",
        f"preset = {_toml(preset)}",
        "",
        "[outputs]",
        f"dir = {_toml(str(folder / 'out'))}",
        "",
    ]
    scenario = folder / "scenario.toml"
    scenario.write_text("\n".join(lines), encoding="utf-8")
    return scenario
