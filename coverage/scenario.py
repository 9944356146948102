"""Scenario files: one TOML file names the inputs, travel modes, standards and outputs of a run.

A scenario is read, checked and parsed in one step, :func:`load_scenario`, which reports every
problem at once with its key path (``standards[2].minutes: must be a positive number, got -5``)
and resolves relative paths against the scenario file's folder. Nothing is loaded or written
here: the parsed :class:`Scenario` is what the loaders, the engine and the audit take.

The sections are typed models (:class:`ScenarioFile` and its parts) built with pydantic v2,
chosen because it gives three things hand-written checks did not: the JSON Schema of the file
for free (:func:`scenario_json_schema`, ``covplan schema``: completion and checking in editors),
discriminated unions (a ``[inputs.population]`` table is one of three kinds, a
``[[standards]]`` table one of six), and errors located by key path, which become
:class:`covplan.errors.Problem` records here. Every default is declared once, on its model
field. The rule tables themselves are checked by :func:`covplan.standards.parse_standards` and
the ``[modes]`` table by :func:`covplan.engine.modes.parse_modes`, whose messages are kept.

``--set`` overrides (:func:`apply_overrides`) take three forms::

    --set inputs.network.buffer_m=3000      # a key path into the file
    --set 'standards[3].minutes=20'         # an own rule, by position
    --set BZ-12.minutes=20                  # any rule by its id, also one of a preset
"""

from __future__ import annotations

import copy
import difflib
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Le
from covplan.engine.access import DEFAULT_BUFFER_M, DEFAULT_MAX_SNAP_M, NetworkSpec
from covplan.errors import InputError, Problem
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import GenerateJsonSchema, SkipJsonSchema
from pydantic_core import PydanticCustomError, core_schema

__all__ = [
    "BoundariesSection",
    "FacilitiesSection",
    "InputsSection",
    "NetworkSection",
    "OutputsSection",
    "PointsPopulation",
    "RasterPopulation",
    "Scenario",
    "ScenarioDocument",
    "ScenarioFile",
    "ScenarioSection",
    "UnitsLevelSection",
    "UnitsPopulation",
    "apply_overrides",
    "load_scenario",
    "load_scenario_table",
    "load_scenario_with_overrides",
    "parse_scenario",
    "scenario_json_schema",
]

_ONLINE_PREFIX = "online:"
_NETWORK_SUFFIXES = (".osm.pbf", ".pbf", ".osm", ".graphml", ".xml")
_CACHE_ENV = "COVPLAN_CACHE_DIR"
_PRESET_REF_KEYS = ("preset", "only", "override")


# ------------------------------------------------------------------------------ value types
def _problem(what: str, fix: str = "", key: str = "") -> PydanticCustomError:
    """Return an error that becomes ``Problem(<its key path>[.key], what, fix)`` unchanged."""
    return PydanticCustomError("covplan", "{what}", {"what": what, "fix": fix, "key": key})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _non_negative(value: Any) -> Any:
    if not _is_number(value):
        raise _problem(f"must be int or float, got {value!r}")
    if not math.isfinite(value):
        raise _problem(f"must be a finite number, got {value!r}")
    if value < 0:
        raise _problem(f"must be a non-negative number, got {value}")
    return value


def _positive(value: Any) -> Any:
    if _is_number(value) and not math.isfinite(value):
        raise _problem(f"must be a finite number, got {value!r}")
    if not _is_number(value) or value <= 0:
        raise _problem(f"must be a positive number, got {value!r}")
    return value


def _share(value: Any) -> Any:
    if not _is_number(value) or not math.isfinite(value) or not 0 < value <= 1:
        raise _problem(f"must be a number in (0, 1], got {value!r}")
    return value


#: A finite number >= 0 (``nan`` and ``inf`` are rejected with the key path).
NonNegative = Annotated[float, Ge(0), BeforeValidator(_non_negative)]
#: A finite number > 0.
Positive = Annotated[float, Gt(0), BeforeValidator(_positive)]
Share = Annotated[float, Gt(0), Le(1), BeforeValidator(_share)]
Text = Annotated[str, Field(strict=True)]
Whole = Annotated[int, Field(strict=True), Ge(0)]
Language = Literal["en", "zh"]
UrbanRural = Literal["urban", "rural"]


def _scenario_path(path: str | Path) -> Path:
    """Return a scenario file's path resolved; a symbolic link loop is an InputError."""
    from covplan.inputs._io import resolve_path

    return resolve_path(path, role="scenario")


def _folder(info: ValidationInfo) -> Path | None:
    context = info.context if isinstance(info.context, Mapping) else {}
    folder = context.get("folder")
    return Path(folder) if folder is not None else None


def _resolve(value: Any, info: ValidationInfo) -> Path:
    if not isinstance(value, (str, Path)):
        raise _problem(f"must be str, got {value!r}")
    path = Path(value).expanduser()
    folder = _folder(info)
    try:
        return (folder / path).resolve() if folder is not None else path
    except (RuntimeError, OSError) as exc:  # a symbolic link loop (RuntimeError before 3.13)
        from covplan.inputs._io import symlink_loop_problem

        loop = symlink_loop_problem(folder / path if folder is not None else path)
        raise _problem(loop.what, loop.fix) from exc


def _input_file(value: Any, info: ValidationInfo) -> Path:
    path = _resolve(value, info)
    if _folder(info) is not None and not path.exists():
        raise _problem(f"file not found: {path}",
                       "paths are relative to the scenario file's folder")
    return path


def _dem_file(value: Any, info: ValidationInfo) -> Path:
    path = _resolve(value, info)
    if _folder(info) is not None and not path.exists():
        raise _problem(f"file not found: {path}")
    return path


def _network_source(value: Any, info: ValidationInfo) -> str | Path:
    if not isinstance(value, (str, Path)):
        raise _problem(f"must be str, got {value!r}")
    if isinstance(value, str) and value.startswith(_ONLINE_PREFIX):
        return value
    path = _resolve(value, info)
    if _folder(info) is not None:
        if not path.exists():
            raise _problem(f"file not found: {path}",
                           "give an .osm.pbf, .osm or .graphml file, or online:<place name>")
        if not path.name.lower().endswith(_NETWORK_SUFFIXES):
            raise _problem(f"unknown road network format: {path.name}",
                           "use .osm.pbf, .osm or .graphml")
    return path


def _no_cache_dir(value: Any) -> None:
    raise _problem(
        "not allowed in a scenario file: a scenario, which may be shared, must not choose "
        "where cached road networks are read from",
        f"remove it and set the {_CACHE_ENV} environment variable instead",
    )


_STRING = {"type": "string"}
#: A file that must exist (relative to the scenario file's folder).
InputFile = Annotated[Path, BeforeValidator(_input_file), WithJsonSchema(_STRING)]
DemFile = Annotated[Path, BeforeValidator(_dem_file), WithJsonSchema(_STRING)]
OutputFolder = Annotated[Path, BeforeValidator(_resolve), WithJsonSchema(_STRING)]
NetworkSource = Annotated[
    str | Path,
    BeforeValidator(_network_source),
    WithJsonSchema({"type": "string", "description": "an .osm.pbf, .osm or .graphml file, or "
                    "online:<place name>"}),
]


class _Section(BaseModel):
    """A TOML table: unknown keys are errors, values are checked when the table is read."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=False)


# --------------------------------------------------------------------------------- sections
class ScenarioSection(_Section):
    """``[scenario]``: the name and language of a run."""

    name: Text = Field(description="Shown in reports and maps.")
    language: Language = Field("en", description="Language of tables, maps and report.")
    description: Text = ""
    crs: Text | None = Field(None, description="Projected CRS for metric work (default: UTM).")


class FacilitiesSection(_Section):
    """``[inputs.facilities]``: the facilities file and its columns (None: the loader's guess)."""

    path: InputFile = Field(description="CSV/Excel with lon/lat, GeoJSON, GeoPackage, "
                            "Shapefile or zip; relative to the scenario file's folder.")
    crs: Text | None = Field(None, description="For tables: WGS-84 (default), GCJ-02, BD-09, "
                             "CGCS2000, EPSG:...")
    layer: Text | None = None
    id_column: Text | None = None
    name_column: Text | None = None
    type_column: Text | None = None
    lon_column: Text | None = None
    lat_column: Text | None = None
    type_map: dict[str, Text] | None = Field(
        None, description="Source type names to facility types, e.g. 卫生院 = "
        "township_health_centre.")
    status: list[Literal["existing", "under_construction", "planned", "现有", "在建", "规划"]
                 ] | None = Field(
        None, description="With a 状态 column: the statuses counted (default [\"existing\"], "
        "i.e. 现有 only; add under_construction/planned to plan ahead).")


class BoundariesSection(_Section):
    """``[inputs.boundaries]``: the administrative units of one level results are reported by.

    For several levels (区县, 镇街, 村社区) use ``[[inputs.units]]`` instead.
    """

    path: InputFile
    layer: Text | None = None
    id_column: Text = "unit_id"
    name_column: Text = "name"
    level: Text = Field("unit", description="What a unit is: county, township, village, ...")
    population_column: Text | None = None
    parent_column: Text | None = None
    urban_rural_column: Text | None = None
    code_column: Text | None = None
    kind_column: Text | None = None


#: Rank of the level names presets use, coarsest first (``[[inputs.units]]`` are listed so).
_LEVEL_RANK = {"county": 0, "township": 1, "village": 2}


class UnitsLevelSection(_Section):
    """One ``[[inputs.units]]`` table: the units of one level, from a file or derived.

    List the levels from the coarsest (county) to the finest (village). Each level's units are
    linked to the level above by NBS code prefix (a village's 12-digit code starts with its
    township's 9 digits), else by ``parent_column``, else by largest overlap; a unit with no
    parent found is reported (a warning with where, what and how to fix).
    """

    level: Text = Field(description="county, township, village (the levels presets judge "
                        "at) or a name of your own.")
    path: InputFile | None = Field(None, description="The polygons of this level.")
    derive: Literal["union"] | None = Field(
        None, description="Build this level as unions of the next finer level's units, "
        "grouped by NBS code prefix (else by parent_column, else one unit).")
    name: Text | None = Field(None, description="Name of the unit of a derived level when "
                              "its code is not an NBS code (e.g. the county's name).")
    layer: Text | None = None
    crs: Text | None = None
    id_column: Text = "unit_id"
    name_column: Text = "name"
    code_column: Text | None = Field(None, description="Column with the NBS code (default: "
                                     "the id when it is a 6-, 9- or 12-digit code).")
    population_column: Text | None = None
    parent_column: Text | None = None
    urban_rural_column: Text | None = None
    kind_column: Text | None = Field(None, description="Column with each unit's kind (街道, "
                                     "镇, 乡, 社区, 行政村), used when code and name do not say.")

    @model_validator(mode="after")
    def _path_or_derive(self) -> UnitsLevelSection:
        if (self.path is None) == (self.derive is None):
            raise _problem("give either path (a file of this level) or derive = \"union\"",
                           "one of the two, not both", key="path")
        return self


class _Population(_Section):
    layer: Text | None = None
    population_column: Text | None = None
    id_column: Text | None = None
    urban_rural_column: Text | None = None
    nbs_code_column: Text | None = None
    crs: Text | None = None
    urban_density_per_km2: Positive | None = Field(
        None, description="Places denser than this count as urban when no column says.")
    place_area_km2: Positive | None = Field(
        None, description="Area each population point stands for (e.g. 0.0625 for 250 m "
        "cells), for urban_density_per_km2 on points; polygon places and rasters have their own.")


class PointsPopulation(_Population):
    """``[inputs.population]`` with ``kind = "points"``: population places in a file."""

    kind: Literal["points"]
    path: InputFile


class RasterPopulation(_Population):
    """``[inputs.population]`` with ``kind = "raster"``: a population grid."""

    kind: Literal["raster"]
    path: InputFile


class UnitsPopulation(_Population):
    """``[inputs.population]`` with ``kind = "units"``: each unit's total at its centre."""

    kind: Literal["units"]
    path: InputFile | None = None


PopulationSection = Annotated[
    PointsPopulation | RasterPopulation | UnitsPopulation, Field(discriminator="kind")
]
_POPULATION_KINDS = ("points", "units", "raster")


class NetworkSection(_Section):
    """``[inputs.network]``: where the roads come from and how points join them."""

    source: NetworkSource
    buffer_m: NonNegative = Field(DEFAULT_BUFFER_M, description="Metres of road kept beyond "
                                  "the study area.")
    max_snap_m: NonNegative = Field(DEFAULT_MAX_SNAP_M, description="Points farther than this "
                                    "from a road are unreachable.")
    dem: DemFile | None = Field(None, description="Elevation model for slope-aware walking.")
    # Not a setting: present only to reject it with a message saying what to do instead.
    cache_dir: SkipJsonSchema[Annotated[None, BeforeValidator(_no_cache_dir)]] = Field(
        None, exclude=True
    )


class ClosuresSection(_Section):
    """``[inputs.closures]``: roads closed (floods, landslides) for ``covplan audit``.

    Edges crossing the polygons of ``path`` (and, when given, of the OSM ways ``way_ids`` and
    road classes ``highway``: every criterion given must hold) are removed (``factor = 0``)
    or slowed (their speed times ``factor``); see :mod:`covplan.resilience`.
    """

    path: InputFile | None = Field(None, description="Hazard polygons: GeoJSON, GeoPackage "
                                   "or Shapefile.")
    factor: Annotated[float, Ge(0), Le(1), BeforeValidator(_non_negative)] = Field(
        0.0, description="0: closed roads are removed; in (0, 1]: their speed is multiplied.")
    way_ids: list[Whole] = Field(default_factory=list, description="OSM way ids to close.")
    highway: list[Text] = Field(default_factory=list, description="Road classes to close.")

    @model_validator(mode="after")
    def _something_closes(self) -> ClosuresSection:
        if self.path is None and not self.way_ids and not self.highway:
            raise _problem("nothing is closed", "give path (hazard polygons), way_ids or "
                           "highway")
        return self


class InputsSection(_Section):
    """``[inputs]``: facilities, boundaries (or units), population, roads.

    Units come from one ``[inputs.boundaries]`` table (one level) or from ``[[inputs.units]]``
    tables (several levels, coarsest first); population defaults to ``kind = "units"``.
    """

    facilities: FacilitiesSection
    boundaries: BoundariesSection | None = None
    units: list[UnitsLevelSection] | None = None
    population: PopulationSection = UnitsPopulation(kind="units")
    network: NetworkSection
    closures: ClosuresSection | None = None

    @model_validator(mode="after")
    def _units_need_a_column(self) -> InputsSection:
        if self.boundaries is None and not self.units:
            raise _problem("missing section", "add an [inputs.boundaries] table with path, or "
                           "[[inputs.units]] tables (one per level)", key="boundaries")
        if self.boundaries is not None and self.units:
            raise _problem("give [inputs.boundaries] or [[inputs.units]], not both",
                           "move the boundaries file into an [[inputs.units]] table",
                           key="units")
        if self.units:
            _check_unit_levels(self.units)
        finest = self.boundaries if self.boundaries is not None else self.units[-1]
        if (
            "population" in self.model_fields_set
            and self.population.kind == "units"
            and finest.population_column is None
        ):
            raise _units_problem()
        return self


def _check_unit_levels(levels: list[UnitsLevelSection]) -> None:
    names = [u.level for u in levels]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise _problem(f"level {dup[0]!r} is given more than once",
                       "give each level one [[inputs.units]] table", key="units")
    ranks = [_LEVEL_RANK[n] for n in names if n in _LEVEL_RANK]
    if ranks != sorted(ranks):
        raise _problem(f"levels are listed {names}: list them from the coarsest to the finest",
                       "order the [[inputs.units]] tables county, township, village",
                       key="units")
    if levels[-1].derive is not None:
        raise _problem(f"the finest level ({levels[-1].level!r}) cannot be derived",
                       "give it a path; derive = \"union\" builds a coarser level from it",
                       key="units")


def _units_problem() -> PydanticCustomError:
    return _problem("required when inputs.population.kind = 'units'",
                    "name the column of the boundaries layer holding the population",
                    key="boundaries.population_column")


class OutputsSection(_Section):
    """``[outputs]``: where and in what language results are written."""

    dir: OutputFolder | None = Field(None, description="Default: out/<scenario file name> in "
                                     "the current folder.")
    language: Language | None = Field(None, description="Default: [scenario] language.")
    isochrone_minutes: list[Positive] | None = Field(
        None, description="Isochrone bands (default: the pipeline's, 15 and 30).")


class ScenarioFile(_Section):
    """A whole scenario file, as parsed.

    ``modes`` and ``standards`` are kept as tables: :func:`covplan.engine.modes.parse_modes`
    and :func:`covplan.standards.parse_standards` check and build them.
    """

    scenario: ScenarioSection
    inputs: InputsSection
    modes: dict[str, Any] = Field(default_factory=dict, description="Changes to the shipped "
                                  "travel modes (walk, drive, ambulance).")
    standards: list[dict[str, Any]] = Field(default_factory=list)
    outputs: OutputsSection = OutputsSection()

    @model_validator(mode="before")
    @classmethod
    def _inputs_table(cls, data: Any) -> Any:
        # a file without [inputs] reports each missing input section, not "inputs" alone
        if isinstance(data, Mapping) and "inputs" not in data:
            return {**data, "inputs": {}}
        return data


# ---------------------------------------------------------------- standards (for the schema)
def _preset_names(schema: dict[str, Any]) -> None:
    from covplan.standards.presets import list_presets

    schema["enum"] = list_presets()


FacilityTypes = Text | list[Text]
Threshold = Positive | dict[UrbanRural, Positive]
#: Facility attribute filters: column -> value (a string also matches as a prefix).
Where = dict[str, Text | bool | float | list[Text]]


class _RuleTable(_Section):
    id: Text | None = None
    level: Text | None = None
    title: Text | None = None
    title_zh: Text | None = None
    source: Text | None = None
    quote: Text | None = None
    params: dict[str, Any] | None = None
    note: Text | None = None
    target_year: Whole | None = None


class TravelTimeTable(_RuleTable):
    """A ``travel_time`` rule: residents within so many minutes of a facility."""

    rule: Literal["travel_time"]
    facility_types: FacilityTypes
    minutes: Threshold
    mode: Text | None = None
    required_share: Share | None = None


class DistanceTable(_RuleTable):
    """A ``distance`` rule: residents within so many km of a facility."""

    rule: Literal["distance"]
    facility_types: FacilityTypes
    km: Threshold
    mode: Text | None = None
    distance: Literal["road", "straight_line"] | None = None
    required_share: Share | None = None


class PresenceTable(_RuleTable):
    """A ``presence`` rule: so many facilities in every unit."""

    rule: Literal["presence"]
    facility_types: FacilityTypes
    min_count: Whole | None = None
    max_count: Whole | None = None
    exactly: Whole | None = None
    unit_class: UrbanRural | None = None
    unit_name_pattern: Text | None = None
    unit_kinds: list[Text] | None = None
    exempt_if_hosts: FacilityTypes | None = None
    exempt_below_population: Positive | None = None
    exempt_near: Positive | None = None
    exempt_near_types: FacilityTypes | None = None
    exempt_near_mode: Text | None = None
    exempt_near_metric: Literal["time", "distance"] | None = None
    where: Where | None = None


class PopulationBandTable(_RuleTable):
    """A ``population_band`` rule: one facility per so many residents."""

    rule: Literal["population_band"]
    facility_types: FacilityTypes
    lower: Positive
    upper: Positive
    unit_class: UrbanRural | None = None
    unit_name_pattern: Text | None = None
    unit_kinds: list[Text] | None = None
    exclude_hosts_of: FacilityTypes | None = None


class RatioTable(_RuleTable):
    """A ``ratio`` rule: a facility attribute per so many residents."""

    rule: Literal["ratio"]
    attribute: Text
    target: Positive
    per: Positive | None = None
    comparison: Literal[">=", "<="] | None = None
    facility_types: FacilityTypes | None = None
    where: Where | None = None


class CountTable(_RuleTable):
    """A ``count`` rule: so many facilities (with attribute filters) in a whole unit."""

    rule: Literal["count"]
    facility_types: FacilityTypes
    min_count: Whole | None = None
    max_count: Whole | None = None
    exactly: Whole | None = None
    where: Where | None = None
    unit_kinds: list[Text] | None = None


class ServiceTable(_RuleTable):
    """A ``service`` rule: a facility with a yes/no service (发热门诊...) in every unit."""

    rule: Literal["service"]
    service: Text
    facility_types: FacilityTypes | None = None
    min_count: Whole | None = None
    unit_kinds: list[Text] | None = None
    where: Where | None = None


class ShareTable(_RuleTable):
    """A ``share`` rule: the share of facilities meeting a filter (甲级乡镇卫生院 >= 60 %)."""

    rule: Literal["share"]
    facility_types: FacilityTypes
    where: Where
    min_share: Share


class AttributeRatioTable(_RuleTable):
    """An ``attribute_ratio`` rule: one attribute per so many of another (药师 per 100 beds)."""

    rule: Literal["attribute_ratio"]
    numerator: Text
    denominator: Text
    target: Positive
    per: Positive | None = None
    comparison: Literal[">=", "<="] | None = None
    facility_types: FacilityTypes | None = None
    where: Where | None = None


class Tier(_Section):
    """One tier of a ``tiers`` rule: a facility of the types in every unit of the level."""

    level: Text
    facility_types: FacilityTypes
    name: Text | None = None
    unit_kinds: list[Text] | None = None
    where: Where | None = None


class TiersTable(_RuleTable):
    """A ``tiers`` rule: presence per level (头疼脑热不出村、常见病多发病不出乡镇...)."""

    rule: Literal["tiers"]
    tiers: list[Tier]


class ResponseTimeTable(_RuleTable):
    """A ``response_time`` rule: station -> patient -> receiving hospital within T minutes."""

    rule: Literal["response_time"]
    facility_types: FacilityTypes
    minutes: Threshold
    hospital_types: FacilityTypes | None = None
    mode: Text | None = None
    required_share: Share | None = None


class BackupCoverTable(_RuleTable):
    """A ``backup_cover`` rule: a second facility within T minutes (backup cover)."""

    rule: Literal["backup_cover"]
    facility_types: FacilityTypes
    minutes: Threshold
    mode: Text | None = None
    required_share: Share | None = None


class PresetReference(_Section):
    """Every rule of a shipped preset, or ``only`` some, with ``override`` values by rule id."""

    preset: Text = Field(json_schema_extra=_preset_names)
    only: list[Text] | None = None
    override: dict[str, dict[str, Any]] | None = None


def _standard_kind(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return "preset" if "preset" in value else value.get("rule")
    return None


#: The kinds of ``[[standards]]`` table, told apart by ``rule`` (or the ``preset`` key).
StandardTable = Annotated[
    Annotated[TravelTimeTable, Tag("travel_time")]
    | Annotated[DistanceTable, Tag("distance")]
    | Annotated[PresenceTable, Tag("presence")]
    | Annotated[PopulationBandTable, Tag("population_band")]
    | Annotated[RatioTable, Tag("ratio")]
    | Annotated[CountTable, Tag("count")]
    | Annotated[ServiceTable, Tag("service")]
    | Annotated[ShareTable, Tag("share")]
    | Annotated[AttributeRatioTable, Tag("attribute_ratio")]
    | Annotated[TiersTable, Tag("tiers")]
    | Annotated[ResponseTimeTable, Tag("response_time")]
    | Annotated[BackupCoverTable, Tag("backup_cover")]
    | Annotated[PresetReference, Tag("preset")],
    Discriminator(_standard_kind),
]
#: Rule kind -> the model of its table (the keys are covplan.standards.parse.KIND_KEYS').
RULE_TABLES: dict[str, type[_RuleTable]] = {
    "travel_time": TravelTimeTable, "distance": DistanceTable, "presence": PresenceTable,
    "population_band": PopulationBandTable, "ratio": RatioTable, "count": CountTable,
    "service": ServiceTable, "share": ShareTable, "attribute_ratio": AttributeRatioTable,
    "tiers": TiersTable,
    "response_time": ResponseTimeTable, "backup_cover": BackupCoverTable,
}  # fmt: skip


class ScenarioDocument(ScenarioFile):
    """A scenario file with its ``[[standards]]`` typed too: the model of the JSON Schema."""

    standards: list[StandardTable] = Field(default_factory=list)  # type: ignore[assignment]
    modes: dict[str, dict[str, Any]] = Field(default_factory=dict)


class _TomlSchema(GenerateJsonSchema):
    """JSON Schema for a TOML file: TOML has no null, so optional keys are just not required."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> dict[str, Any]:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> dict[str, Any]:
        if schema.get("default", ...) is None:
            return self.generate_inner(schema["schema"])
        return super().default_schema(schema)


def scenario_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of a scenario file (for editors such as Taplo/Even Better TOML).

    Returns
    -------
    dict
        A JSON Schema (draft 2020-12) document.
    """
    schema = ScenarioDocument.model_json_schema(schema_generator=_TomlSchema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "covplan scenario",
        "description": "A coverage-planner scenario file (TOML): inputs, travel modes, "
        "standards and outputs of one run.",
    }


# --------------------------------------------------------------------------------- Scenario
@dataclass(frozen=True)
class Scenario:
    """A parsed scenario.

    Attributes
    ----------
    path
        The scenario file (absolute).
    document
        The parsed file: ``scenario.document.inputs.network.buffer_m`` and so on, with every
        default filled in and every path absolute.
    raw
        The TOML table it was parsed from.

    The tables as plain dicts stay available as properties: ``facilities``, ``boundaries``,
    ``population``, ``network`` (the ``[inputs.*]`` tables, paths absolute, unset keys left
    out), ``modes``, ``standards`` (the raw tables, checked by
    :func:`covplan.standards.parse_standards`) and ``outputs`` (``dir`` absolute, default
    ``out/<file stem>`` beside the current working folder).
    """

    path: Path
    document: ScenarioFile
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def inputs(self) -> InputsSection:
        """The typed ``[inputs]`` sections."""
        return self.document.inputs

    @property
    def name(self) -> str:
        """``[scenario] name``."""
        return self.document.scenario.name

    @property
    def language(self) -> str:
        """``[scenario] language``: ``"en"`` or ``"zh"``."""
        return self.document.scenario.language

    @property
    def description(self) -> str:
        """``[scenario] description``."""
        return self.document.scenario.description

    @property
    def facilities(self) -> dict[str, Any]:
        """``[inputs.facilities]`` as a dict."""
        return self.inputs.facilities.model_dump(exclude_none=True)

    @property
    def boundaries(self) -> dict[str, Any]:
        """``[inputs.boundaries]`` as a dict; with ``[[inputs.units]]``, the finest level's."""
        if self.inputs.boundaries is None:
            assert self.inputs.units
            return self.inputs.units[-1].model_dump(exclude_none=True)
        return self.inputs.boundaries.model_dump(exclude_none=True)

    @property
    def unit_levels(self) -> list[dict[str, Any]]:
        """The unit levels, coarsest first, as dicts (one for ``[inputs.boundaries]``)."""
        if self.inputs.units:
            return [u.model_dump(exclude_none=True) for u in self.inputs.units]
        return [self.boundaries]

    @property
    def population(self) -> dict[str, Any]:
        """``[inputs.population]`` as a dict (``{"kind": "units"}`` when absent)."""
        return self.inputs.population.model_dump(exclude_none=True)

    @property
    def network(self) -> dict[str, Any]:
        """``[inputs.network]`` as a dict."""
        return self.inputs.network.model_dump(exclude_none=True)

    @property
    def modes(self) -> dict[str, Any]:
        """The ``[modes]`` table (checked by :func:`covplan.engine.modes.parse_modes`)."""
        return copy.deepcopy(self.document.modes)

    @property
    def standards(self) -> list[dict[str, Any]]:
        """The ``[[standards]]`` tables (checked by :func:`covplan.standards.parse_standards`)."""
        return copy.deepcopy(self.document.standards)

    @property
    def outputs(self) -> dict[str, Any]:
        """``[outputs]`` as a dict."""
        return self.document.outputs.model_dump(exclude_none=True)

    @property
    def network_is_online(self) -> bool:
        """True when the road network is to be downloaded (``source = "online:<place>"``)."""
        return str(self.inputs.network.source).startswith(_ONLINE_PREFIX)

    def network_spec(self) -> NetworkSpec:
        """Return the ``[inputs.network]`` table as the engine reads it (defaults filled in)."""
        net = self.inputs.network
        return NetworkSpec(
            source=net.source, buffer_m=net.buffer_m, max_snap_m=net.max_snap_m, dem=net.dem
        )

    def with_overrides(self, **changes: Any) -> Scenario:
        """Return a copy with ``standards`` or ``modes`` tables (or ``path``/``raw``) replaced.

        The new tables are not checked here: :func:`covplan.pipeline.rules_for_scenario` does.
        """
        tables = {k: changes.pop(k) for k in ("standards", "modes") if k in changes}
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"with_overrides() takes standards, modes, path or raw, not "
                            f"{', '.join(sorted(unknown))}")
        if tables:
            changes["document"] = self.document.model_copy(update=copy.deepcopy(tables))
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
    path = _scenario_path(path)
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
        The folder relative paths resolve against (and input files must exist in).
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
    document: ScenarioFile | None = None
    try:
        document = ScenarioFile.model_validate(table, context={"folder": folder})
    except ValidationError as exc:
        problems.extend(_problems(exc))
        # checks across sections run only once their sections are valid: run them on the table
        problems.extend(_cross_section_problems(table))

    modes = table.get("modes", {}) if isinstance(table, Mapping) else {}
    standards = table.get("standards", []) if isinstance(table, Mapping) else []
    if isinstance(modes, Mapping):
        problems.extend(_delegate(_modes_parser(), dict(modes), "modes"))
    if isinstance(standards, list) and all(isinstance(s, Mapping) for s in standards):
        problems.extend(_delegate(_standards_parser(), [dict(s) for s in standards],
                                  "standards"))
    if problems or document is None:
        raise InputError(list(dict.fromkeys(problems)), source=str(path))
    if document.outputs.dir is None:
        outputs = document.outputs.model_copy(update={"dir": (Path.cwd() / "out" / path.stem)})
        document = document.model_copy(update={"outputs": outputs})
    return Scenario(path=path, document=document, raw=dict(table))


# ------------------------------------------------------------------- pydantic errors to Problems
#: Key path -> the model of the table there (for "missing section" and "did you mean").
_TABLES: dict[tuple[str, ...], type[BaseModel]] = {
    (): ScenarioFile,
    ("scenario",): ScenarioSection,
    ("inputs",): InputsSection,
    ("inputs", "facilities"): FacilitiesSection,
    ("inputs", "boundaries"): BoundariesSection,
    ("inputs", "units"): UnitsLevelSection,
    ("inputs", "population"): PointsPopulation,
    ("inputs", "network"): NetworkSection,
    ("inputs", "closures"): ClosuresSection,
    ("outputs",): OutputsSection,
}
_NOT_TABLE = ("model_type", "model_attributes_type", "dict_type")


def _keys(model: type[BaseModel]) -> list[str]:
    return [name for name, info in model.model_fields.items() if not info.exclude]


def _where(loc: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _problems(exc: ValidationError) -> list[Problem]:
    """Turn pydantic's errors into Problems (key path, what, how to fix)."""
    out: list[Problem] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        tag = None
        if loc[:2] == ("inputs", "population") and len(loc) > 2 and loc[2] in _POPULATION_KINDS:
            tag, loc = loc[2], loc[:2] + loc[3:]  # the union's tag is not a key of the file
        out.append(_problem_of(error["type"], loc, error["input"], error.get("ctx") or {},
                               error["msg"], tag))
    return out


def _problem_of(
    kind: str, loc: tuple[str | int, ...], value: Any, ctx: Mapping[str, Any], msg: str,
    tag: str | None,
) -> Problem:
    where = _where(loc)
    if kind == "covplan":
        key = ctx.get("key") or ""
        return Problem(f"{where}.{key}" if where and key else where or key, ctx["what"],
                       ctx.get("fix", ""))
    if loc and loc[0] == "standards":
        return Problem("standards", "must be an array of tables", "write each as [[standards]]")
    if kind == "extra_forbidden":
        table_key = tuple(p for p in loc[:-1] if not isinstance(p, int))
        allowed = _keys(_TABLES.get(table_key, ScenarioFile))
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
        return Problem(where, "unknown key", hint)
    if kind == "missing":
        if loc in _TABLES:
            model = _TABLES[loc]
            needed = ", ".join(k for k, f in model.model_fields.items() if f.is_required())
            return Problem(where, "missing section", f"add a [{where}] table with {needed}")
        if tag is not None:
            return Problem(where, f"required when kind = {tag!r}")
        return Problem(where, "missing required key")
    if kind == "union_tag_not_found":
        return Problem(f"{where}.kind", "missing required key",
                       f"one of {', '.join(_POPULATION_KINDS)}")
    if kind == "union_tag_invalid":
        got = value.get("kind") if isinstance(value, Mapping) else value
        return Problem(f"{where}.kind",
                       f"must be one of {', '.join(_POPULATION_KINDS)}, got {got!r}")
    if kind in _NOT_TABLE:
        return Problem(where or "scenario file", f"must be a table, got {type(value).__name__}")
    if kind == "string_type":
        return Problem(where, f"must be str, got {value!r}")
    if kind == "list_type":
        return Problem(where, f"must be list, got {value!r}")
    if kind == "literal_error":
        return Problem(where, f"must be {ctx.get('expected', 'one of the allowed values')}, "
                       f"got {value!r}")
    return Problem(where or "scenario file", f"{msg}, got {value!r}")


def _cross_section_problems(table: Mapping[str, Any]) -> list[Problem]:
    """Run the checks of :meth:`InputsSection._units_need_a_column` on the raw table."""
    inputs = table.get("inputs") if isinstance(table, Mapping) else None
    if not isinstance(inputs, Mapping):
        return []
    population, boundaries = inputs.get("population"), inputs.get("boundaries")
    if (
        isinstance(population, Mapping)
        and population.get("kind") == "units"
        and isinstance(boundaries, Mapping)
        and "population_column" not in boundaries
    ):
        error = _units_problem()
        ctx = error.context or {}
        return [Problem(f"inputs.{ctx['key']}", ctx["what"], ctx["fix"])]
    return []


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


# -------------------------------------------------------------------------------- overrides
_PART = re.compile(r"\.|(\[\d+\])")


def apply_overrides(table: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """Return a copy of a parsed scenario table with ``key=value`` assignments applied.

    Values are TOML literals (``15``, ``"zh"``, ``[15, 30]``); a bare word is taken as a string.
    A key is either a key path into the file (``inputs.network.buffer_m``; list items by index,
    ``standards[3].minutes``) or a rule id followed by a key of that rule (``BZ-12.minutes``,
    ``BZ-12.minutes.urban``), which works on the scenario's own rules and on those a preset
    reference pulls in (it becomes an ``override`` of the reference).

    Raises
    ------
    InputError
        Listing every assignment that is malformed, points at a missing list item, names an
        unknown rule id, or indexes into a preset reference (whose rules are set by id).
    """
    out = copy.deepcopy(table)
    problems: list[Problem] = []
    top = tuple(ScenarioFile.model_fields)
    for text in assignments:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(Problem(f"--set {text}", "must look like key.path=value"))
            continue
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        head = re.split(r"[.\[]", key, maxsplit=1)[0]
        if head in top:
            parts = [p for p in _PART.split(key) if p]
            if not _into_preset_reference(out, parts, key, raw.strip(), problems):
                _set(out, parts, value, key, (), problems)
        else:
            _set_by_rule_id(out, key, value, problems)
    if problems:
        raise InputError(problems, source="command-line overrides")
    return out


def _index(part: str) -> int | None:
    return int(part[1:-1]) if re.fullmatch(r"\[\d+\]", part) else None


def _set(
    node: Any, parts: list[str], value: Any, key: str, prefix: tuple[str, ...],
    problems: list[Problem],
) -> None:
    """Set ``node[parts...] = value``, making missing tables; a Problem if the path is wrong."""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        index = _index(part)
        if index is None and ("[" in part or "]" in part):
            problems.append(Problem(f"--set {key}", f"{part!r} is not a key or an item number",
                                    "write list items as name[0]"))
            return
        if index is not None:
            if not isinstance(node, list) or index >= len(node):
                problems.append(Problem(f"--set {key}", f"there is no item {part}"))
                return
            if last:
                node[index] = value
            else:
                node = node[index]
            continue
        if not isinstance(node, dict):
            where = "".join(p if p.startswith("[") else f".{p}"
                            for p in (*prefix, *parts[:i])).lstrip(".")
            problems.append(Problem(f"--set {key}", f"{where} is not a table, so it has "
                                    f"no key {part!r}"))
            return
        if last:
            node[part] = value
        else:
            node = node.setdefault(part, {} if not parts[i + 1].startswith("[") else [])


def _into_preset_reference(
    table: dict[str, Any], parts: list[str], key: str, raw: str, problems: list[Problem]
) -> bool:
    """Refuse ``standards[i].minutes`` where standards[i] is a preset reference (True if so)."""
    if len(parts) < 3 or parts[0] != "standards" or _index(parts[1]) is None:
        return False
    standards = table.get("standards")
    index = _index(parts[1])
    if not isinstance(standards, list) or index is None or index >= len(standards):
        return False
    item = standards[index]
    if not isinstance(item, dict) or "preset" not in item or parts[2] in _PRESET_REF_KEYS:
        return False
    ids = [rid for rid, spots in _rule_ids(table).items() if any(i == index for i, _ in spots)]
    rest = ".".join(parts[2:])
    example = f" --set {ids[0]}.{rest}={raw}" if ids else ""
    problems.append(Problem(
        f"--set {key}",
        f"standards{parts[1]} is a reference to preset {item['preset']!r}, not a rule",
        f"set its rules by id, e.g.{example}; its rules: {', '.join(ids) or 'none'}",
    ))
    return True


def _rule_ids(table: Mapping[str, Any]) -> dict[str, list[tuple[int, str | None]]]:
    """Rule id -> where it comes from: (index in standards, preset name or None for own)."""
    from covplan.standards.presets import list_presets, preset_tables

    found: dict[str, list[tuple[int, str | None]]] = {}
    standards = table.get("standards")
    if not isinstance(standards, list):
        return found
    for i, item in enumerate(standards):
        if not isinstance(item, Mapping):
            continue
        name = item.get("preset")
        if "preset" in item:
            if not isinstance(name, str) or name not in list_presets():
                continue
            ids = [str(t.get("id")) for t in preset_tables(name)]
            only = item.get("only")
            if isinstance(only, list):
                ids = [rid for rid in ids if rid in only]
            for rid in ids:
                found.setdefault(rid, []).append((i, name))
        elif isinstance(item.get("id"), str):
            found.setdefault(item["id"], []).append((i, None))
    return found


def _left_out_by_only(table: Mapping[str, Any], rid: str) -> tuple[int, str] | None:
    """Return (index, preset) of the reference that leaves rule ``rid`` out with ``only``."""
    from covplan.standards.presets import list_presets, preset_tables

    standards = table.get("standards")
    for i, item in enumerate(standards if isinstance(standards, list) else []):
        name = item.get("preset") if isinstance(item, Mapping) else None
        if isinstance(name, str) and name in list_presets() and any(
            str(t.get("id")) == rid for t in preset_tables(name)
        ):
            return i, name
    return None


def _set_by_rule_id(
    table: dict[str, Any], key: str, value: Any, problems: list[Problem]
) -> None:
    from covplan.standards.presets import preset_tables

    ids = _rule_ids(table)
    matches = [rid for rid in ids if key == rid or key.startswith(f"{rid}.")]
    if not matches:
        head = re.split(r"[.\[]", key, maxsplit=1)[0]
        left_out = _left_out_by_only(table, head)
        if left_out is not None:
            index, name = left_out
            problems.append(Problem(
                f"--set {key}", f"rule {head!r} of preset {name!r} is left out by "
                f"standards[{index}].only", f"add it there first: --set "
                f"'standards[{index}].only=[...]' listing every rule to keep",
            ))
            return
        sections = ", ".join(ScenarioFile.model_fields)
        problems.append(Problem(
            f"--set {key}", f"{head!r} is neither a rule id nor a section",
            f"rule ids: {', '.join(ids) or 'none'}; sections: {sections}",
        ))
        return
    rid = max(matches, key=len)  # an id may itself hold a dot
    spots = ids[rid]
    if key == rid:
        problems.append(Problem(f"--set {key}", f"names rule {rid!r} but none of its keys",
                                f"write {rid}.minutes=20 or the like"))
        return
    if len(spots) > 1:
        problems.append(Problem(f"--set {key}", f"rule id {rid!r} is used {len(spots)} times",
                                "give every rule a unique id, or set it by key path"))
        return
    parts = [p for p in _PART.split(key[len(rid) + 1:]) if p]
    index, preset = spots[0]
    item = table["standards"][index]
    if preset is None:
        _set(item, parts, value, key, (rid,), problems)
        return
    override = item.setdefault("override", {})
    if not isinstance(override, dict):
        problems.append(Problem(f"--set {key}", f"standards[{index}].override is not a table"))
        return
    changes = override.setdefault(rid, {})
    if not isinstance(changes, dict):
        problems.append(Problem(f"--set {key}",
                                f"standards[{index}].override.{rid} is not a table"))
        return
    first = parts[0] if parts else ""
    if len(parts) > 1 and first not in changes:
        # a nested key (minutes.urban) changes the preset's table, not replaces it
        original = next(t for t in preset_tables(preset) if str(t.get("id")) == rid)
        if first in original:
            changes[first] = copy.deepcopy(original[first])
    _set(changes, parts, value, key, (rid,), problems)


def load_scenario_with_overrides(path: str | Path, assignments: list[str]) -> Scenario:
    """Read a scenario file, apply ``--set`` overrides (:func:`apply_overrides`), then check it."""
    path = _scenario_path(path)
    if not assignments:
        return load_scenario(path)
    scenario = load_scenario_table(path)
    return parse_scenario(apply_overrides(scenario, assignments), folder=path.parent, path=path)


def load_scenario_table(path: str | Path) -> dict[str, Any]:
    """Read a scenario file's TOML table without checking it (errors as in load_scenario)."""
    path = _scenario_path(path)
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
