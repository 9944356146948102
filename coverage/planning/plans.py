"""One session's plans: candidate stations, closures, standards edits, named scenarios, files.

A :class:`Plan` is plain data (the app keeps one per browser session, so one user's edits
never reach another's), and :func:`save_plans` / :func:`load_plans` turn a session's plans
into a JSON file and back so work survives a restart. A loaded file is checked like a
scenario file: size (:data:`PLAN_MAX_BYTES`) and nesting (:data:`PLAN_MAX_DEPTH`) first, then
every field, with every problem reported at once by its key path
(``named["a"].candidates[2].lon: ...``).
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from covplan.errors import CoverageError, InputError, Problem
from covplan.facility_types import FACILITY_TYPES
from covplan.standards.presets import list_presets

__all__ = [
    "FILE_FORMAT",
    "FILE_VERSION",
    "PLAN_MAX_BYTES",
    "PLAN_MAX_CANDIDATES",
    "PLAN_MAX_DEPTH",
    "PLAN_MAX_NAMED",
    "PLAN_MAX_NAME_CHARS",
    "THRESHOLD_RANGE",
    "Candidate",
    "Plan",
    "SessionPlans",
    "load_plans",
    "nesting_depth",
    "save_plans",
]

#: The ``format`` field of a saved scenario file.
FILE_FORMAT = "coverage-planner-app-plan"
FILE_VERSION = 1
#: Largest plan file read (bytes): saved plans are a few kilobytes.
PLAN_MAX_BYTES = 1024 * 1024
#: Deepest nesting of objects and lists in a plan file (a saved plan nests 6 deep).
PLAN_MAX_DEPTH = 10
#: Most named scenarios, and most candidate stations per plan, in a plan file.
PLAN_MAX_NAMED = 50
PLAN_MAX_CANDIDATES = 500
#: Longest name (scenario, candidate, region, rule id) in a plan file, in characters.
PLAN_MAX_NAME_CHARS = 80
#: Smallest and largest threshold (minutes or km) the app accepts.
THRESHOLD_RANGE = (0.1, 1000.0)
_PLAN_KEYS = ("region", "preset", "thresholds", "siting_rule", "station_type", "candidates",
              "closed")
_DOCUMENT_KEYS = ("format", "version", "current", "named")
_CANDIDATE_KEYS = ("name", "lon", "lat")
_THRESHOLD_ATTRS = ("minutes", "km")
_RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')


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

    @property
    def named_points(self) -> list[tuple[str, float, float]]:
        """The candidates' (name, lon, lat) triples, in the order placed."""
        return [(c.name, c.lon, c.lat) for c in self.candidates]

    @property
    def edits_key(self) -> tuple[Any, ...]:
        """What changes the plan's facilities: candidates, station type and closures.

        Two plans with equal keys (and equal standards) evaluate to the same result, so the
        key identifies a memoised evaluation.
        """
        return (tuple(self.candidates), self.station_type, tuple(self.closed))

    def copy(self) -> Plan:
        """Return an independent copy."""
        return copy.deepcopy(self)

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "plan") -> Plan:
        """Build a plan from :meth:`to_dict` data, checking every field.

        Raises
        ------
        InputError
            Listing every field that is missing or malformed, by its key path.
        """
        problems: list[Problem] = []
        plan = _plan_from(data, where, problems)
        if problems or plan is None:
            raise InputError(problems, source=where)
        return plan


def _is_number(value: Any) -> bool:
    """Tell whether ``value`` is a finite int or float (``bool`` is not a number here)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _name_problem(value: Any, where: str, what: str) -> Problem | None:
    """Return why ``value`` is not a usable name (text, 1..80 characters, no control chars)."""
    if not isinstance(value, str):
        return Problem(where, f"the {what} must be text, got {type(value).__name__}",
                       f"write the {what} in quotes")
    if not value.strip():
        return Problem(where, f"the {what} is empty", f"give the {what} a name")
    if len(value) > PLAN_MAX_NAME_CHARS:
        return Problem(where, f"the {what} is {len(value)} characters long",
                       f"use at most {PLAN_MAX_NAME_CHARS}")
    if any(unicodedata.category(ch)[0] == "C" for ch in value):
        return Problem(where, f"the {what} {value!r} holds control characters",
                       "use letters, digits, spaces and punctuation only")
    return None


def _unknown_keys(data: Mapping[str, Any], known: Sequence[str], where: str,
                  problems: list[Problem]) -> None:
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(Problem(f"{where}.{key}", "unknown key",
                                    f"{hint}known keys: {', '.join(known)}"))


def _number_problem(value: Any, where: str) -> Problem | None:
    low, high = THRESHOLD_RANGE
    if not _is_number(value):
        return Problem(where, f"must be a number, got {value!r}",
                       f"write a number of minutes or km between {low:g} and {high:g}")
    if not low <= float(value) <= high:
        return Problem(where, f"{value!r} is out of range",
                       f"use a value between {low:g} and {high:g}")
    return None


def _thresholds_from(value: Any, where: str, problems: list[Problem]
                     ) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(Problem(where, "must map rule ids to tables of values",
                                'write e.g. {"BZ-12": {"minutes": 20}}'))
        return {}
    out: dict[str, dict[str, Any]] = {}
    for rid, edits in value.items():
        at = f"{where}[{rid!r}]"
        if len(str(rid)) > PLAN_MAX_NAME_CHARS or not _RULE_ID.match(str(rid)):
            problems.append(Problem(at, "is not a rule id",
                                    "rule ids are letters, digits, '-', '_' and '.'"))
            continue
        if not isinstance(edits, Mapping):
            problems.append(Problem(at, f"must be a table of values, got {edits!r}",
                                    'write e.g. {"minutes": 20}'))
            continue
        kept: dict[str, Any] = {}
        for attr, number in edits.items():
            spot = f"{at}.{attr}"
            if attr not in _THRESHOLD_ATTRS:
                problems.append(Problem(spot, "unknown threshold",
                                        f"the app edits {' and '.join(_THRESHOLD_ATTRS)}"))
            elif isinstance(number, Mapping):
                subs: dict[str, float] = {}
                for sub, sub_number in number.items():
                    where_sub = f"{spot}.{sub}"
                    problem = _name_problem(sub, where_sub, "area name") or _number_problem(
                        sub_number, where_sub)
                    if problem:
                        problems.append(problem)
                    else:
                        subs[str(sub)] = float(sub_number)
                kept[str(attr)] = subs
            elif (problem := _number_problem(number, spot)) is not None:
                problems.append(problem)
            else:
                kept[str(attr)] = float(number)
        out[str(rid)] = kept
    return out


def _candidates_from(value: Any, where: str, problems: list[Problem]) -> list[Candidate]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(Problem(where, "must be a list of stations",
                                'write e.g. [{"name": "S1", "lon": 1.5, "lat": 42.5}]'))
        return []
    if len(value) > PLAN_MAX_CANDIDATES:
        problems.append(Problem(where, f"{len(value)} stations",
                                f"a plan holds at most {PLAN_MAX_CANDIDATES}"))
        return []
    out: list[Candidate] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            problems.append(Problem(at, f"must be a table of name, lon and lat, got {item!r}"))
            continue
        _unknown_keys(item, _CANDIDATE_KEYS, at, problems)
        name, lon, lat = item.get("name"), item.get("lon"), item.get("lat")
        bad = False
        if (problem := _name_problem(name, f"{at}.name", "station name")) is not None:
            problems.append(problem)
            bad = True
        elif name in seen:
            problems.append(Problem(f"{at}.name", f"station name {name!r} is used twice",
                                    "give every station of a plan its own name"))
            bad = True
        for axis, number, limit in (("lon", lon, 180.0), ("lat", lat, 90.0)):
            if not _is_number(number) or not -limit <= float(number) <= limit:
                problems.append(Problem(
                    f"{at}.{axis}", f"must be a WGS-84 {axis} between {-limit:g} and "
                    f"{limit:g}, got {number!r}", "write the degrees as a number"))
                bad = True
        if not bad:
            seen.add(str(name))
            out.append(Candidate(str(name), float(lon), float(lat)))
    return out


def _plan_from(data: Any, where: str, problems: list[Problem]) -> Plan | None:
    """Check one plan's data, adding what is wrong to ``problems``; the plan when usable."""
    if not isinstance(data, Mapping):
        problems.append(Problem(where, f"must be a table (object), got {type(data).__name__}",
                                "load a file saved by this app"))
        return None
    count = len(problems)
    _unknown_keys(data, _PLAN_KEYS, where, problems)
    region = data.get("region")
    if "region" not in data:
        problems.append(Problem(f"{where}.region", "missing", "name the plan's region"))
    elif (problem := _name_problem(region, f"{where}.region", "region")) is not None:
        problems.append(problem)
    elif "/" in region or "\\" in region:
        problems.append(Problem(f"{where}.region", "is a file path, not a region name",
                                "save the plan again from this version of the app"))
    preset = data.get("preset")
    if preset is not None and preset not in list_presets():
        close = difflib.get_close_matches(str(preset), list_presets(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        problems.append(Problem(f"{where}.preset", f"unknown preset {preset!r}",
                                f"{hint}known: {', '.join(list_presets())}"))
    thresholds = _thresholds_from(data.get("thresholds"), f"{where}.thresholds", problems)
    siting_rule = data.get("siting_rule")
    if siting_rule is not None and (
            not isinstance(siting_rule, str) or not _RULE_ID.match(siting_rule)
            or len(siting_rule) > PLAN_MAX_NAME_CHARS):
        problems.append(Problem(f"{where}.siting_rule", f"is not a rule id: {siting_rule!r}",
                                "write the id of a travel-time standard, e.g. \"BZ-12\""))
    station_type = data.get("station_type")
    if station_type is not None and station_type not in FACILITY_TYPES:
        close = difflib.get_close_matches(str(station_type), list(FACILITY_TYPES), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        problems.append(Problem(f"{where}.station_type",
                                f"unknown facility type {station_type!r}",
                                f"{hint}use a type of covplan.facility_types"))
    candidates = _candidates_from(data.get("candidates"), f"{where}.candidates", problems)
    closed = data.get("closed")
    if closed is None:
        closed = []
    elif not isinstance(closed, list):
        problems.append(Problem(f"{where}.closed", "must be a list of facility ids",
                                'write e.g. ["F1", "F2"]'))
        closed = []
    else:
        for i, fid in enumerate(closed):
            if (problem := _name_problem(fid, f"{where}.closed[{i}]", "facility id")):
                problems.append(problem)
            elif closed.index(fid) != i:
                problems.append(Problem(f"{where}.closed[{i}]",
                                        f"facility {fid!r} is listed twice",
                                        "list each closed facility once"))
    if len(problems) > count:
        return None
    return Plan(
        region=str(region),
        preset=preset,
        thresholds=thresholds,
        siting_rule=siting_rule,
        station_type=station_type,
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


class _Object(dict):
    """A JSON object that remembers the keys its text gave more than once."""

    duplicates: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    seen: set[str] = set()
    obj.duplicates = tuple(k for k, _ in pairs if k in seen or seen.add(k))
    return obj


def _duplicate_problems(node: Any, where: str) -> list[Problem]:
    """Problems for every key given twice in one object, anywhere in the document."""
    problems: list[Problem] = []
    if isinstance(node, _Object):
        for key in dict.fromkeys(node.duplicates):
            problems.append(Problem(f"{where}[{key!r}]" if where else repr(key),
                                    f"the name {key!r} is given more than once",
                                    "give every entry its own name (only one would be kept)"))
        for key, value in node.items():
            problems += _duplicate_problems(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            problems += _duplicate_problems(value, f"{where}[{i}]")
    return problems


def nesting_depth(text: str) -> int:
    """Return how deep objects and lists nest in JSON text (brackets inside strings ignored)."""
    depth = deepest = 0
    for char in re.sub(r"[^\[\]{}]", "", _STRINGS.sub("", text)):
        depth += 1 if char in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def load_plans(text: str | bytes, *, source: str = "the plan file") -> SessionPlans:
    """Read and check a plan file written by :func:`save_plans`.

    Parameters
    ----------
    text
        The file's content.
    source
        How messages name the file (the uploaded file's own name, never a server path).

    Raises
    ------
    InputError
        When the text is not such a file: too large, too deeply nested, not JSON, or with
        fields that are missing, malformed or given twice; every problem is listed with its
        key path and how to fix it.
    """
    def fail(where: str, what: str, fix: str = "load a file saved by this app") -> InputError:
        return InputError([Problem(where, what, fix)], source=source)

    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > PLAN_MAX_BYTES:
        raise fail("file size", f"{size / 1024 / 1024:,.1f} MiB, over the "
                   f"{PLAN_MAX_BYTES // 1024 // 1024} MiB limit of plan files",
                   "load a file saved by this app (saved plans are a few kB)")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise fail(f"byte {exc.start}", "not UTF-8 text, so not JSON") from exc
    depth = nesting_depth(text)
    if depth > PLAN_MAX_DEPTH:
        raise fail("structure", f"objects and lists nest {depth} deep, over the limit of "
                   f"{PLAN_MAX_DEPTH}")
    try:
        document = json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        raise fail(f"line {exc.lineno} column {exc.colno}", f"not JSON: {exc.msg}") from exc
    except (ValueError, RecursionError) as exc:
        raise fail("content", f"not JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != FILE_FORMAT:
        raise fail("format", f"the file is not a saved plan (its 'format' is not "
                   f"{FILE_FORMAT!r})")
    version = document.get("version")
    if type(version) is not int or version != FILE_VERSION:
        raise fail("version", f"the plan file has version {version!r}; this app reads "
                   f"version {FILE_VERSION}", "save the plan again with this app")
    problems = _duplicate_problems(document, "")
    _unknown_keys(document, _DOCUMENT_KEYS, "file", problems)
    if "current" not in document:
        problems.append(Problem("current", "missing", "load a file saved by this app"))
    current = _plan_from(document.get("current"), "current", problems)
    named_data = document.get("named")
    named: dict[str, Plan] = {}
    if named_data is None:
        named_data = {}
    if not isinstance(named_data, Mapping):
        problems.append(Problem("named", "must map scenario names to plans",
                                'write e.g. {"one station": {...}}'))
    elif len(named_data) > PLAN_MAX_NAMED:
        problems.append(Problem("named", f"{len(named_data)} named scenarios",
                                f"a file holds at most {PLAN_MAX_NAMED}"))
    else:
        for name, data in named_data.items():
            where = f"named[{name!r}]"
            if (problem := _name_problem(name, where, "scenario name")) is not None:
                problems.append(problem)
                continue
            plan = _plan_from(data, where, problems)
            if plan is not None:
                named[name.strip()] = plan
    if problems or current is None:
        raise InputError(problems, source=source)
    return SessionPlans(current=current, named=named)
