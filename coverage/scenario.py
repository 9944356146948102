"""Scenario files: one TOML file names the inputs, travel modes, standards and outputs of a run.

A scenario is read and checked in one step, :func:`load_scenario`, which reports every problem
at once with its key path (``standards[2].minutes: must be a positive number, got -5``) and
resolves relative paths against the scenario file's folder. Nothing is loaded or written here:
the checked :class:`Scenario` is what the loaders, the engine and the audit take.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from covplan.engine.access import DEFAULT_BUFFER_M, DEFAULT_MAX_SNAP_M, NetworkSpec
from covplan.errors import InputError, Problem

__all__ = [
    "SECTION_KEYS",
    "Scenario",
    "apply_overrides",
    "load_scenario",
    "load_scenario_table",
    "load_scenario_with_overrides",
    "parse_scenario",
]

#: Allowed keys per section, with whether each is required and its expected type.
SECTION_KEYS: dict[str, dict[str, tuple[bool, type | tuple[type, ...]]]] = {
    "scenario": {
        "name": (True, str),
        "language": (False, str),
        "description": (False, str),
        "crs": (False, str),
    },
    "inputs.facilities": {
        "path": (True, str),
        "crs": (False, str),
        "layer": (False, str),
        "id_column": (False, str),
        "name_column": (False, str),
        "type_column": (False, str),
        "lon_column": (False, str),
        "lat_column": (False, str),
        "type_map": (False, dict),
    },
    "inputs.boundaries": {
        "path": (True, str),
        "layer": (False, str),
        "id_column": (False, str),
        "name_column": (False, str),
        "level": (False, str),
        "population_column": (False, str),
        "parent_column": (False, str),
        "urban_rural_column": (False, str),
    },
    "inputs.population": {
        "kind": (True, str),
        "path": (False, str),
        "layer": (False, str),
        "population_column": (False, str),
        "id_column": (False, str),
        "urban_rural_column": (False, str),
        "nbs_code_column": (False, str),
        "crs": (False, str),
        "urban_density_per_km2": (False, (int, float)),
    },
    "inputs.network": {
        "source": (True, str),
        "buffer_m": (False, (int, float)),
        "max_snap_m": (False, (int, float)),
        "dem": (False, str),
        "cache_dir": (False, str),
    },
    "outputs": {
        "dir": (False, str),
        "language": (False, str),
        "isochrone_minutes": (False, list),
    },
}

_TOP_LEVEL = ("scenario", "inputs", "modes", "standards", "outputs")
_INPUT_SECTIONS = ("facilities", "boundaries", "population", "network")
_PATH_KEYS = {
    "inputs.facilities": ("path",),
    "inputs.boundaries": ("path",),
    "inputs.population": ("path",),
    "inputs.network": ("dem", "cache_dir"),
    "outputs": ("dir",),
}
_POPULATION_KINDS = ("points", "units", "raster")
_LANGUAGES = ("en", "zh")
_ONLINE_PREFIX = "online:"
_NETWORK_SUFFIXES = (".osm.pbf", ".pbf", ".osm", ".graphml", ".xml")


@dataclass(frozen=True)
class Scenario:
    """A checked scenario.

    Attributes
    ----------
    path
        The scenario file (absolute).
    name, language, description
        From ``[scenario]``; ``language`` is ``"en"`` or ``"zh"``.
    facilities, boundaries, population, network
        The ``[inputs.*]`` tables with every path made absolute.
    modes
        The raw ``[modes]`` table (checked by :func:`covplan.engine.modes.parse_modes`).
    standards
        The raw ``[[standards]]`` tables (checked by :func:`covplan.standards.parse_standards`).
    outputs
        The ``[outputs]`` table with ``dir`` made absolute (default ``out/<file stem>`` beside
        the current working folder).
    """

    path: Path
    name: str
    language: str
    description: str
    facilities: dict[str, Any]
    boundaries: dict[str, Any]
    population: dict[str, Any]
    network: dict[str, Any]
    modes: dict[str, Any]
    standards: list[dict[str, Any]]
    outputs: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def network_is_online(self) -> bool:
        """True when the road network is to be downloaded (``source = "online:<place>"``)."""
        return str(self.network["source"]).startswith(_ONLINE_PREFIX)

    def network_spec(self) -> NetworkSpec:
        """Return the ``[inputs.network]`` table as the engine reads it (defaults filled in)."""
        spec = self.network
        return NetworkSpec(
            source=spec["source"],
            buffer_m=float(spec.get("buffer_m", DEFAULT_BUFFER_M)),
            max_snap_m=float(spec.get("max_snap_m", DEFAULT_MAX_SNAP_M)),
            dem=spec.get("dem"),
            cache_dir=spec.get("cache_dir"),
        )

    def with_overrides(self, **changes: Any) -> Scenario:
        """Return a copy with top-level attributes replaced (used by CLI options)."""
        return replace(self, **changes)


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file.

    Parameters
    ----------
    path
        A ``.toml`` scenario file.

    Returns
    -------
    Scenario

    Raises
    ------
    InputError
        Listing every problem found, each with its key path and how to fix it.
    """
    path = Path(path).expanduser().resolve()
    table = load_scenario_table(path)
    return parse_scenario(table, folder=path.parent, path=path)


def parse_scenario(
    table: Mapping[str, Any], *, folder: str | Path, path: str | Path | None = None
) -> Scenario:
    """Check a scenario given as a parsed TOML table.

    Parameters
    ----------
    table
        The parsed TOML document.
    folder
        The folder relative paths resolve against.
    path
        The file the table came from, for messages and provenance.

    Raises
    ------
    InputError
        Listing every problem found.
    """
    folder = Path(folder).resolve()
    path = Path(path).resolve() if path is not None else folder / "<scenario>"
    problems: list[Problem] = []
    _check_unknown(table, _TOP_LEVEL, "", problems)

    sections: dict[str, dict[str, Any]] = {}
    sections["scenario"] = _check_section(table, "scenario", problems)
    inputs = table.get("inputs", {})
    if not isinstance(inputs, Mapping):
        problems.append(Problem("inputs", f"must be a table, got {_kind(inputs)}"))
        inputs = {}
    _check_unknown(inputs, _INPUT_SECTIONS, "inputs.", problems)
    for name in _INPUT_SECTIONS:
        sections[f"inputs.{name}"] = _check_section(
            inputs, name, problems, prefix="inputs.", required=name != "population"
        )
    sections["outputs"] = _check_section(table, "outputs", problems, required=False)

    for key, names in _PATH_KEYS.items():
        for name in names:
            value = sections[key].get(name)
            if isinstance(value, str):
                sections[key][name] = (folder / Path(value).expanduser()).resolve()
    source = sections["inputs.network"].get("source")
    if isinstance(source, str) and not source.startswith(_ONLINE_PREFIX):
        sections["inputs.network"]["source"] = (folder / Path(source).expanduser()).resolve()
    _check_paths(sections, problems)
    _check_values(sections, problems)

    modes = table.get("modes", {})
    if not isinstance(modes, Mapping):
        problems.append(Problem("modes", f"must be a table, got {_kind(modes)}"))
        modes = {}
    standards = table.get("standards", [])
    if not isinstance(standards, list) or not all(isinstance(s, Mapping) for s in standards):
        problems.append(
            Problem("standards", "must be an array of tables", "write each as [[standards]]")
        )
        standards = []
    problems.extend(_delegate(_modes_parser(), dict(modes), "modes"))
    problems.extend(_delegate(_standards_parser(), [dict(s) for s in standards], "standards"))

    if problems:
        raise InputError(problems, source=str(path))

    head = sections["scenario"]
    outputs = sections["outputs"]
    outputs.setdefault("dir", (Path.cwd() / "out" / path.stem).resolve())
    population = sections["inputs.population"] or {"kind": "units"}
    return Scenario(
        path=path,
        name=head["name"],
        language=head.get("language", "en"),
        description=head.get("description", ""),
        facilities=sections["inputs.facilities"],
        boundaries=sections["inputs.boundaries"],
        population=population,
        network=sections["inputs.network"],
        modes=dict(modes),
        standards=[dict(s) for s in standards],
        outputs=outputs,
        raw=dict(table),
    )


def _kind(value: Any) -> str:
    return type(value).__name__


def _check_unknown(
    table: Mapping[str, Any], allowed: tuple[str, ...] | Any, prefix: str, problems: list[Problem]
) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
            problems.append(Problem(f"{prefix}{key}", "unknown key", hint))


def _check_section(
    parent: Mapping[str, Any],
    name: str,
    problems: list[Problem],
    *,
    prefix: str = "",
    required: bool = True,
) -> dict[str, Any]:
    key = f"{prefix}{name}"
    spec = SECTION_KEYS[key]
    if name not in parent:
        if required:
            needed = ", ".join(k for k, (req, _) in spec.items() if req)
            problems.append(Problem(key, "missing section", f"add a [{key}] table with {needed}"))
        return {}
    section = parent[name]
    if not isinstance(section, Mapping):
        problems.append(Problem(key, f"must be a table, got {_kind(section)}"))
        return {}
    _check_unknown(section, tuple(spec), f"{key}.", problems)
    for field_name, (req, expected) in spec.items():
        if field_name not in section:
            if req:
                problems.append(Problem(f"{key}.{field_name}", "missing required key"))
            continue
        value = section[field_name]
        if isinstance(value, bool) or not isinstance(value, expected):
            want = (
                " or ".join(t.__name__ for t in expected)
                if isinstance(expected, tuple)
                else expected.__name__
            )
            problems.append(
                Problem(f"{key}.{field_name}", f"must be {want}, got {value!r}")
            )
    return {k: v for k, v in section.items() if k in spec}


def _check_paths(sections: dict[str, dict[str, Any]], problems: list[Problem]) -> None:
    for key in ("inputs.facilities", "inputs.boundaries", "inputs.population"):
        value = sections[key].get("path")
        if isinstance(value, Path) and not value.exists():
            problems.append(
                Problem(f"{key}.path", f"file not found: {value}",
                        "paths are relative to the scenario file's folder")
            )
    dem = sections["inputs.network"].get("dem")
    if isinstance(dem, Path) and not dem.exists():
        problems.append(Problem("inputs.network.dem", f"file not found: {dem}"))
    source = sections["inputs.network"].get("source")
    if isinstance(source, Path):
        if not source.exists():
            problems.append(
                Problem("inputs.network.source", f"file not found: {source}",
                        "give an .osm.pbf, .osm or .graphml file, or online:<place name>")
            )
        elif not source.name.lower().endswith(_NETWORK_SUFFIXES):
            problems.append(
                Problem("inputs.network.source", f"unknown road network format: {source.name}",
                        "use .osm.pbf, .osm or .graphml")
            )


def _check_values(sections: dict[str, dict[str, Any]], problems: list[Problem]) -> None:
    for key in ("scenario", "outputs"):
        lang = sections[key].get("language")
        if isinstance(lang, str) and lang not in _LANGUAGES:
            problems.append(Problem(f"{key}.language", f"must be 'en' or 'zh', got {lang!r}"))
    kind = sections["inputs.population"].get("kind")
    if isinstance(kind, str):
        if kind not in _POPULATION_KINDS:
            problems.append(
                Problem("inputs.population.kind",
                        f"must be one of {', '.join(_POPULATION_KINDS)}, got {kind!r}")
            )
        elif kind in ("points", "raster") and "path" not in sections["inputs.population"]:
            problems.append(
                Problem("inputs.population.path", f"required when kind = {kind!r}")
            )
        elif kind == "units" and "population_column" not in sections["inputs.boundaries"]:
            problems.append(
                Problem("inputs.boundaries.population_column",
                        "required when inputs.population.kind = 'units'",
                        "name the column of the boundaries layer holding the population")
            )
    for key in ("buffer_m", "max_snap_m"):
        value = sections["inputs.network"].get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            problems.append(
                Problem(f"inputs.network.{key}", f"must be a non-negative number, got {value}")
            )
    minutes = sections["outputs"].get("isochrone_minutes")
    if isinstance(minutes, list):
        for i, value in enumerate(minutes):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                problems.append(
                    Problem(f"outputs.isochrone_minutes[{i}]",
                            f"must be a positive number, got {value!r}")
                )


Parser = Callable[..., Any]


def _modes_parser() -> Parser | None:
    try:
        from covplan.engine.modes import parse_modes
    except ImportError:
        return None
    return parse_modes


def _standards_parser() -> Parser | None:
    try:
        from covplan.standards import parse_standards
    except ImportError:
        return None
    return parse_standards


def _delegate(parser: Parser | None, value: Any, where: str) -> list[Problem]:
    if parser is None:
        return []
    try:
        parser(value, where=where)
    except InputError as exc:
        return list(exc.problems)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # a value of a type the parser does not expect (a list where a string belongs...)
        return [Problem(where, f"cannot be checked: {type(exc).__name__}: {exc}",
                        "check the types of its values: text in quotes, numbers without, "
                        "lists in [ ]")]
    return []


def apply_overrides(table: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """Return a copy of a parsed scenario table with ``key.path=value`` assignments applied.

    Values are TOML literals (``15``, ``"zh"``, ``[15, 30]``); a bare word is taken as a string.
    List items are addressed by index: ``standards[0].minutes=20``.

    Raises
    ------
    InputError
        Listing every assignment that is malformed or points at a missing list item.
    """
    import copy
    import re

    out = copy.deepcopy(table)
    problems: list[Problem] = []
    for text in assignments:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            problems.append(Problem(f"--set {text}", "must look like key.path=value"))
            continue
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        node: Any = out
        parts = [p for p in re.split(r"\.|(\[\d+\])", key.strip()) if p]
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            index = int(part[1:-1]) if re.fullmatch(r"\[\d+\]", part) else None
            if index is None and ("[" in part or "]" in part):
                problems.append(Problem(f"--set {key}", f"{part!r} is not a key or an item "
                                        "number", "write list items as name[0]"))
                break
            if index is not None:
                if not isinstance(node, list) or index >= len(node):
                    problems.append(Problem(f"--set {key}", f"there is no item {part}"))
                    break
                if last:
                    node[index] = value
                else:
                    node = node[index]
                continue
            if not isinstance(node, dict):
                where = "".join(p if p.startswith("[") else f".{p}" for p in parts[:i]).lstrip(".")
                problems.append(Problem(f"--set {key}", f"{where} is not a table, so it has "
                                        f"no key {part!r}"))
                break
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {} if not parts[i + 1].startswith("[") else [])
    if problems:
        raise InputError(problems, source="command-line overrides")
    return out


def load_scenario_with_overrides(path: str | Path, assignments: list[str]) -> Scenario:
    """Read a scenario file, apply ``key.path=value`` overrides, then check it in one step."""
    path = Path(path).expanduser().resolve()
    if not assignments:
        return load_scenario(path)
    scenario = load_scenario_table(path)
    return parse_scenario(apply_overrides(scenario, assignments), folder=path.parent, path=path)


def load_scenario_table(path: str | Path) -> dict[str, Any]:
    """Read a scenario file's TOML table without checking it (errors as in load_scenario)."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise InputError(
            [Problem(str(path), "scenario file not found",
                     "check the path; scenarios ship in data/scenarios/")],
            source=str(path),
        )
    from covplan.inputs._io import check_size

    check_size(path, role="scenario", kind="scenario")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(
            [Problem(str(path), f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                     "save the scenario file as UTF-8")],
            source=str(path),
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(
            [Problem(str(path), f"not valid TOML: {exc}", "fix the syntax at that line")],
            source=str(path),
        ) from None
