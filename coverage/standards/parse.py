"""Standards tables (TOML ``[[standards]]``) to rule objects, with every problem reported at once.

A table names its kind with ``rule`` (one of :data:`covplan.standards.rules.RULE_KINDS`) and
gives that kind's values; or it pulls in a shipped preset::

    [[standards]]
    preset = "bazhong"                       # every rule of the Bazhong preset
    only = ["BZ-12", "BZ-13"]                # optional: just these ids
    override = { "BZ-12" = { mode = "drive" } }   # optional: change open parameters

    [[standards]]
    id = "my-15min"
    rule = "travel_time"
    facility_types = ["hospitals"]           # types or groups (covplan.facility_types)
    minutes = { urban = 15, rural = 30 }     # or one number
    mode = "ambulance"
    required_share = 0.95

    [[standards]]
    id = "my-village-clinic"
    rule = "presence"
    level = "village"                        # the level the rule is judged at
    unit_kinds = ["行政村"]                   # only administrative villages (not 社区)
    facility_types = ["village_clinic"]

    [[standards]]                            # 4 三级医院 in the district
    id = "my-tertiary"
    rule = "count"
    level = "county"                         # or "region": the whole study area as one unit
    facility_types = ["hospitals"]
    where = { grade = "三级" }                # 三级甲等, 三级乙等 ... (a prefix matches)
    min_count = 4

    [[standards]]                            # >= 60 % of 乡镇卫生院 at 甲级
    id = "my-grade-a-share"
    rule = "share"
    facility_types = ["township_health_centre"]
    where = { grade = "甲级" }
    min_share = 0.6

    [[standards]]                            # 1 临床药师 per 100 beds
    id = "my-pharmacists"
    rule = "attribute_ratio"
    numerator = "clinical_pharmacists"
    denominator = "beds"
    per = 100
    target = 1
    facility_types = ["hospitals"]

    [[standards]]                            # a 发热门诊 in each 镇街
    id = "my-fever-clinics"
    rule = "service"
    service = "fever_clinic"                 # a yes/no column of the facility file
    level = "township"

    [[standards]]                            # 大病重病不出区、常见病多发病不出乡镇、头疼脑热不出村
    id = "my-tiers"
    rule = "tiers"
    tiers = [
      { name = "不出村", level = "village", facility_types = ["grassroots"] },
      { name = "不出乡镇", level = "township", facility_types = ["township_health_centre"] },
      { name = "不出区", level = "county", facility_types = ["hospital_grade_2"] },
    ]
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from covplan.errors import InputError, Problem
from covplan.facility_types import FACILITY_GROUPS, FACILITY_TYPES, expand_types
from covplan.inputs.unit_kinds import UNIT_KINDS, normalise_kind
from covplan.standards.access import METRICS
from covplan.standards.presets import list_presets, preset_tables
from covplan.standards.rules import (
    REGION,
    RULE_KINDS,
    AttributeRatioRule,
    CountRule,
    DistanceRule,
    PopulationBandRule,
    PresenceRule,
    RatioRule,
    Rule,
    ServiceRule,
    ShareRule,
    TierRule,
    TravelTimeRule,
)

__all__ = ["COMMON_KEYS", "KIND_KEYS", "TIER_KEYS", "load_preset", "parse_standards"]

#: Keys every rule table may have. ``params``, ``note`` and ``target_year`` are
#: documentation only (presets use them to explain open values).
COMMON_KEYS: tuple[str, ...] = (
    "rule", "id", "level", "title", "title_zh", "source", "quote", "params", "note",
    "target_year",
)  # fmt: skip

#: Keys of each rule kind (beyond :data:`COMMON_KEYS`); required ones are marked True.
KIND_KEYS: dict[str, dict[str, bool]] = {
    "travel_time": {"facility_types": True, "minutes": True, "mode": False,
                    "required_share": False},
    "distance": {"facility_types": True, "km": True, "mode": False, "distance": False,
                 "required_share": False},
    "presence": {"facility_types": True, "min_count": False, "max_count": False,
                 "exactly": False, "unit_class": False, "unit_name_pattern": False,
                 "unit_kinds": False, "exempt_if_hosts": False,
                 "exempt_below_population": False, "exempt_near": False,
                 "exempt_near_types": False, "exempt_near_mode": False,
                 "exempt_near_metric": False, "where": False},
    "population_band": {"facility_types": True, "lower": True, "upper": True,
                        "unit_class": False, "unit_name_pattern": False,
                        "unit_kinds": False, "exclude_hosts_of": False},
    "ratio": {"attribute": True, "target": True, "per": False, "comparison": False,
              "facility_types": False, "where": False},
    "count": {"facility_types": True, "min_count": False, "max_count": False,
              "exactly": False, "where": False, "unit_kinds": False},
    "service": {"service": True, "facility_types": False, "min_count": False,
                "unit_kinds": False, "where": False},
    "share": {"facility_types": True, "where": True, "min_share": True},
    "attribute_ratio": {"numerator": True, "denominator": True, "target": True, "per": False,
                        "comparison": False, "facility_types": False, "where": False},
    "tiers": {"tiers": True},
    "response_time": {"facility_types": True, "minutes": True, "hospital_types": False,
                      "mode": False, "required_share": False},
    "backup_cover": {"facility_types": True, "minutes": True, "mode": False,
                     "required_share": False},
}  # fmt: skip

#: Keys of one table of a ``tiers`` rule; required ones are marked True.
TIER_KEYS: dict[str, bool] = {"level": True, "facility_types": True, "name": False,
                              "unit_kinds": False, "where": False}

_PRESET_KEYS = ("preset", "only", "override")
_CLASSES = ("urban", "rural")
_DISTANCES = ("road", "straight_line")
_COMPARISONS = (">=", "<=")


def parse_standards(
    tables: Sequence[Mapping[str, Any]],
    *,
    where: str = "standards",
    modes: Iterable[str] | None = None,
) -> list[Rule]:
    """Check standards tables and build the rules, reporting every problem at once.

    Parameters
    ----------
    tables
        The ``[[standards]]`` tables of a scenario (or of a preset file).
    where
        Key-path prefix used in messages, e.g. ``standards`` gives ``standards[2].minutes``.
    modes
        Mode names a ``mode`` may take; None accepts any name (the engine checks later).

    Returns
    -------
    list of Rule
        In table order, presets expanded in their file order.

    Raises
    ------
    InputError
        Listing every problem with its key path, e.g.
        ``standards[2].minutes: must be a positive number, got -5``.
    """
    problems: list[Problem] = []
    rules: list[Rule] = []
    ids: list[str] = []
    known_modes = tuple(modes) if modes is not None else None
    if not isinstance(tables, Sequence) or isinstance(tables, (str, bytes)):
        raise InputError([Problem(where, "must be an array of tables",
                                  "write each standard as [[standards]]")])
    for i, table in enumerate(tables):
        path = f"{where}[{i}]"
        if not isinstance(table, Mapping):
            problems.append(Problem(path, f"must be a table, got {table!r}"))
            continue
        if "preset" in table:
            included = _parse_preset_ref(table, path, problems, known_modes)
            rules.extend(included)
            ids.extend(r.id for r in included)
        else:
            ids.append(str(table.get("id", path)))
            rule = _parse_rule(table, path, problems, known_modes)
            if rule is not None:
                rules.append(rule)
    seen: dict[str, int] = {}
    for rid in ids:
        seen[rid] = seen.get(rid, 0) + 1
    for rid, n in seen.items():
        if n > 1:
            problems.append(Problem(where, f"rule id {rid!r} is used {n} times",
                                    "give every rule a unique id"))
    if problems:
        raise InputError(problems, source=where)
    return rules


# --------------------------------------------------------------------------------- presets
def _parse_preset_ref(
    table: Mapping[str, Any], path: str, problems: list[Problem], modes: tuple[str, ...] | None
) -> list[Rule]:
    for key in table:
        if key not in _PRESET_KEYS:
            problems.append(Problem(f"{path}.{key}", "unknown key in a preset reference",
                                    f"allowed keys: {', '.join(_PRESET_KEYS)}"))
    name = table["preset"]
    if not isinstance(name, str) or name not in list_presets():
        problems.append(Problem(f"{path}.preset", f"unknown preset {name!r}",
                                f"known presets: {', '.join(list_presets())}"))
        return []
    raw = preset_tables(name)
    ids = [str(t.get("id")) for t in raw]
    only = table.get("only")
    if only is not None:
        if not isinstance(only, list) or not all(isinstance(x, str) for x in only):
            problems.append(Problem(f"{path}.only", f"must be a list of rule ids, got {only!r}"))
            only = None
        else:
            for j, rid in enumerate(only):
                if rid not in ids:
                    problems.append(Problem(f"{path}.only[{j}]",
                                            f"preset {name!r} has no rule {rid!r}",
                                            f"its rules: {', '.join(ids)}"))
    override = table.get("override", {})
    if not isinstance(override, Mapping):
        problems.append(Problem(f"{path}.override",
                                "must be a table of rule id -> table of values"))
        override = {}
    for rid, values in override.items():
        if rid not in ids:
            problems.append(Problem(f"{path}.override.{rid}", f"preset {name!r} has no rule "
                                    f"{rid!r}", f"its rules: {', '.join(ids)}"))
        elif not isinstance(values, Mapping):
            problems.append(Problem(f"{path}.override.{rid}", "must be a table of values"))
    rules: list[Rule] = []
    for raw_table in raw:
        rid = str(raw_table.get("id"))
        if only is not None and rid not in only:
            continue
        merged = dict(raw_table)
        changes = override.get(rid, {})
        if isinstance(changes, Mapping):
            merged.update(changes)
        where = f"{path}.override.{rid}" if changes else f"{path}(preset {name}: {rid})"
        rule = _parse_rule(merged, where, problems, modes)
        if rule is not None:
            rules.append(rule)
    return rules


# ----------------------------------------------------------------------------------- rules
def _parse_rule(
    table: Mapping[str, Any], path: str, problems: list[Problem], modes: tuple[str, ...] | None
) -> Rule | None:
    start = len(problems)
    kind = table.get("rule")
    if not isinstance(kind, str) or kind not in RULE_KINDS:
        problems.append(Problem(
            f"{path}.rule",
            f"unknown rule {kind!r}" if kind is not None else "missing",
            f"known rules: {', '.join(RULE_KINDS)}; or pull in a preset with preset = \"...\"",
        ))
        return None
    allowed = KIND_KEYS[kind]
    for key in table:
        if key not in COMMON_KEYS and key not in allowed:
            problems.append(Problem(f"{path}.{key}", f"unknown key for rule {kind!r}",
                                    f"allowed keys: {', '.join(list(allowed) + ['level', 'id'])}"))
    for key, required in allowed.items():
        if required and key not in table:
            problems.append(Problem(f"{path}.{key}", f"missing (required by rule {kind!r})"))
    c = _Checker(table, path, problems)
    common: dict[str, Any] = {
        "id": c.text("id", default=path),
        "title": c.text("title", default=""),
        "title_zh": c.text("title_zh", default=""),
        "source": c.text("source", default=""),
        "quote": c.text("quote", default=""),
    }
    if "level" in table:
        common["level"] = c.text("level", default=None)
    for key in ("params",):
        if key in table and not isinstance(table[key], Mapping):
            problems.append(Problem(f"{path}.{key}", "must be a table"))
    rule: Rule | None = None
    if kind in ("response_time", "backup_cover"):
        from covplan.standards.rules import BackupCoverRule, ResponseTimeRule

        emergency = {
            "facility_types": c.types("facility_types"), "minutes": c.threshold("minutes"),
            "mode": c.choice("mode", modes, default="ambulance"),
            "required_share": c.number("required_share", default=1.0,
                                       check=lambda v: 0 < v <= 1, must="a number in (0, 1]"),
        }
        if kind == "response_time":
            rule = ResponseTimeRule(**common, **emergency,
                                    hospital_types=c.types("hospital_types", default=()))
        else:
            rule = BackupCoverRule(**common, **emergency)
    elif kind in ("travel_time", "distance"):
        types = c.types("facility_types")
        mode = c.choice("mode", modes, default="drive")
        share = c.number("required_share", default=1.0, check=lambda v: 0 < v <= 1,
                         must="a number in (0, 1]")
        if kind == "travel_time":
            minutes = c.threshold("minutes")
            rule = TravelTimeRule(**common, facility_types=types, minutes=minutes, mode=mode,
                                  required_share=share)
        else:
            km = c.threshold("km")
            dist = c.choice("distance", _DISTANCES, default="road")
            rule = DistanceRule(**common, facility_types=types, km=km, mode=mode,
                                required_share=share, distance=dist)
    elif kind == "presence":
        types = c.types("facility_types")
        exactly = c.integer("exactly", default=None)
        lo = c.integer("min_count", default=exactly if exactly is not None else 1)
        hi = c.integer("max_count", default=exactly)
        if lo is not None and hi is not None and hi < lo:
            problems.append(Problem(f"{path}.max_count",
                                    f"must be >= min_count ({lo}), got {hi}"))
        rule = PresenceRule(
            **common, facility_types=types, min_count=lo if lo is not None else 1,
            max_count=hi, unit_class=c.choice("unit_class", _CLASSES, default=None),
            unit_name_pattern=c.pattern("unit_name_pattern"),
            unit_kinds=c.kinds("unit_kinds"),
            exempt_if_hosts=c.types("exempt_if_hosts", default=()),
            exempt_below_population=c.number("exempt_below_population", default=None),
            exempt_near=c.number("exempt_near", default=None),
            exempt_near_types=c.types("exempt_near_types", default=("township_health_centre",)),
            exempt_near_mode=c.choice("exempt_near_mode", modes, default="drive"),
            exempt_near_metric=c.choice("exempt_near_metric", METRICS, default="time"),
            where=c.where("where"),
        )
    elif kind == "population_band":
        types = c.types("facility_types")
        lower = c.number("lower")
        upper = c.number("upper")
        if lower is not None and upper is not None and upper <= lower:
            problems.append(Problem(f"{path}.upper",
                                    f"must be greater than lower ({lower:g}), got {upper:g}"))
        rule = PopulationBandRule(
            **common, facility_types=types, lower=lower or 1.0, upper=upper or 2.0,
            unit_class=c.choice("unit_class", _CLASSES, default=None),
            unit_name_pattern=c.pattern("unit_name_pattern"),
            unit_kinds=c.kinds("unit_kinds"),
            exclude_hosts_of=c.types("exclude_hosts_of", default=()),
        )
    elif kind == "ratio":
        attribute = c.text("attribute", default="")
        if "attribute" in table and not attribute:
            problems.append(Problem(f"{path}.attribute", "must be a facility column name"))
        rule = RatioRule(
            **common, attribute=attribute, target=c.number("target") or 1.0,
            per=c.number("per", default=1000.0) or 1000.0,
            comparison=c.choice("comparison", _COMPARISONS, default=">="),
            facility_types=c.types("facility_types", default=()),
            where=c.where("where"),
        )
    elif kind in ("count", "service"):
        exactly = c.integer("exactly", default=None)
        lo = c.integer("min_count", default=exactly if exactly is not None else 1)
        hi = c.integer("max_count", default=exactly)
        if lo is not None and hi is not None and hi < lo:
            problems.append(Problem(f"{path}.max_count",
                                    f"must be >= min_count ({lo}), got {hi}"))
        counts = {"min_count": lo if lo is not None else 1, "max_count": hi,
                  "unit_kinds": c.kinds("unit_kinds"), "where": c.where("where")}
        if kind == "count":
            rule = CountRule(**common, facility_types=c.types("facility_types"), **counts)
        else:
            service = c.text("service", default="")
            if "service" in table and not service:
                problems.append(Problem(f"{path}.service", "must be a yes/no column name",
                                        'e.g. service = "fever_clinic"'))
            extra = ({"facility_types": c.types("facility_types")}
                     if "facility_types" in table else {})
            rule = ServiceRule(**common, service=service or "service", **extra, **counts)
    elif kind == "share":
        rule = ShareRule(
            **common, facility_types=c.types("facility_types"), where=c.where("where"),
            min_share=c.number("min_share", default=1.0, check=lambda v: 0 < v <= 1,
                               must="a share in (0, 1], e.g. 0.6 for 60 %") or 1.0,
        )
    elif kind == "attribute_ratio":
        names = {k: c.text(k, default="") for k in ("numerator", "denominator")}
        for k, v in names.items():
            if k in table and not v:
                problems.append(Problem(f"{path}.{k}", "must be a facility column name"))
        rule = AttributeRatioRule(
            **common, numerator=names["numerator"] or "numerator",
            denominator=names["denominator"] or "denominator",
            target=c.number("target") or 1.0, per=c.number("per", default=100.0) or 100.0,
            comparison=c.choice("comparison", _COMPARISONS, default=">="),
            facility_types=c.types("facility_types", default=()), where=c.where("where"),
        )
    elif kind == "tiers":
        tiers = c.tiers("tiers")
        if "level" in table:
            problems.append(Problem(f"{path}.level", "a tiers rule has no level of its own",
                                    "give each tier its level"))
        common.pop("level", None)
        rule = TierRule(**common, tiers=tiers) if tiers else None
    if "level" in table and table.get("level") == REGION and kind in (
        "travel_time", "distance", "population_band"
    ):
        problems.append(Problem(f"{path}.level", f"rule {kind!r} is judged per unit, not "
                                f"for the whole region", "give a unit level, or none"))
    return rule if len(problems) == start else None


class _Checker:
    """Reads typed values out of one table, appending a Problem for each bad one."""

    def __init__(self, table: Mapping[str, Any], path: str, problems: list[Problem]) -> None:
        self.table = table
        self.path = path
        self.problems = problems

    def _bad(self, key: str, what: str, fix: str = "") -> None:
        self.problems.append(Problem(f"{self.path}.{key}", what, fix))

    def text(self, key: str, *, default: Any) -> Any:
        value = self.table.get(key, default)
        if key in self.table and not isinstance(value, str):
            self._bad(key, f"must be a string, got {value!r}")
            return default
        return value

    def number(
        self,
        key: str,
        *,
        default: Any = None,
        check: Callable[[float], bool] = lambda v: v > 0,
        must: str = "a positive number",
    ) -> Any:
        if key not in self.table:
            return default
        value = self.table[key]
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or not check(float(value))):
            self._bad(key, f"must be {must}, got {value!r}")
            return default
        return float(value)

    def pattern(self, key: str) -> str | None:
        value = self.text(key, default=None)
        if value is None:
            return None
        try:
            re.compile(value)
        except re.error as exc:
            self._bad(key, f"not a valid regular expression ({exc}): {value!r}")
            return None
        return value

    def integer(self, key: str, *, default: Any) -> Any:
        if key not in self.table:
            return default
        value = self.table[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self._bad(key, f"must be a whole number >= 0, got {value!r}")
            return default
        return value

    def choice(self, key: str, options: Iterable[str] | None, *, default: Any) -> Any:
        if key not in self.table:
            return default
        value = self.table[key]
        opts = tuple(options) if options is not None else None
        if not isinstance(value, str) or (opts is not None and value not in opts):
            known = f"one of {', '.join(opts)}" if opts else "a string"
            self._bad(key, f"must be {known}, got {value!r}")
            return default
        return value

    def types(self, key: str, *, default: Any = ()) -> tuple[str, ...]:
        if key not in self.table:
            return tuple(default)
        value = self.table[key]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self._bad(key, f"must be a list of facility types, got {value!r}")
            return tuple(default)
        unknown = [v for v in value if v not in FACILITY_TYPES and v not in FACILITY_GROUPS]
        for v in unknown:
            self._bad(key, f"unknown facility type {v!r}",
                      f"known types: {', '.join(FACILITY_TYPES)}; "
                      f"groups: {', '.join(FACILITY_GROUPS)}")
        if unknown:
            return tuple(default)
        if not value:
            self._bad(key, "must name at least one facility type")
        return expand_types(value)

    def kinds(self, key: str) -> tuple[str, ...]:
        """Read a list of unit kinds (Chinese names or keys; empty = every kind)."""
        if key not in self.table:
            return ()
        value = self.table[key]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self._bad(key, f"must be a list of unit kinds, got {value!r}",
                      'e.g. unit_kinds = ["行政村"] or ["街道"]')
            return ()
        out: list[str] = []
        for j, word in enumerate(value):
            kind = normalise_kind(word)
            if kind is None:
                self._bad(f"{key}[{j}]", f"unknown unit kind {word!r}",
                          f"use 街道, 镇, 乡, 社区, 行政村 or one of {', '.join(UNIT_KINDS)}")
            elif kind not in out:
                out.append(kind)
        return tuple(out)

    def where(self, key: str) -> dict[str, Any]:
        """Read attribute filters: column -> string, number, true/false or list of strings."""
        if key not in self.table:
            return {}
        value = self.table[key]
        if not isinstance(value, Mapping) or not value:
            self._bad(key, f"must be a table of column = value, got {value!r}",
                      'e.g. where = { grade = "甲级" } or { fever_clinic = true }')
            return {}
        out: dict[str, Any] = {}
        for column, want in value.items():
            ok = (isinstance(want, (str, bool, int, float))
                  or (isinstance(want, list) and want
                      and all(isinstance(w, (str, int, float)) for w in want)))
            if not ok:
                self._bad(f"{key}.{column}", f"must be a string, number, true/false or a "
                          f"list of strings, got {want!r}")
            else:
                out[str(column)] = list(want) if isinstance(want, list) else want
        return out

    def tiers(self, key: str) -> tuple[dict[str, Any], ...]:
        """Read the tiers of a ``tiers`` rule (each: level, facility_types, ...)."""
        value = self.table.get(key)
        if not isinstance(value, list) or not value:
            self._bad(key, f"must be a non-empty array of tables, got {value!r}",
                      'e.g. tiers = [{ level = "village", facility_types = ["grassroots"] }]')
            return ()
        out: list[dict[str, Any]] = []
        for j, tier in enumerate(value):
            where = f"{key}[{j}]"
            if not isinstance(tier, Mapping):
                self._bad(where, f"must be a table, got {tier!r}")
                continue
            for k in tier:
                if k not in TIER_KEYS:
                    self._bad(f"{where}.{k}", "unknown key in a tier",
                              f"allowed keys: {', '.join(TIER_KEYS)}")
            for k, required in TIER_KEYS.items():
                if required and k not in tier:
                    self._bad(f"{where}.{k}", "missing (required in each tier)")
            sub = _Checker(tier, f"{self.path}.{where}", self.problems)
            level = sub.text("level", default=None)
            types = sub.types("facility_types") if "facility_types" in tier else ()
            if level and types:
                out.append({"level": level, "facility_types": types,
                            "name": sub.text("name", default=""),
                            "unit_kinds": sub.kinds("unit_kinds"),
                            "where": sub.where("where")})
        return tuple(out)

    def threshold(self, key: str) -> Any:
        if key not in self.table:
            return 1.0
        value = self.table[key]
        if isinstance(value, Mapping):
            out: dict[str, float] = {}
            if not value:
                self._bad(key, "must give at least one of urban, rural")
            for cls, v in value.items():
                if cls not in _CLASSES:
                    self._bad(f"{key}.{cls}", "unknown urban/rural class",
                              f"use {', '.join(_CLASSES)}")
                elif (isinstance(v, bool) or not isinstance(v, (int, float))
                      or not math.isfinite(v) or v <= 0):
                    self._bad(f"{key}.{cls}", f"must be a positive number, got {v!r}")
                else:
                    out[cls] = float(v)
            return out or 1.0
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or value <= 0):
            self._bad(key, f"must be a positive number or a table {{urban = .., rural = ..}}, "
                           f"got {value!r}")
            return 1.0
        return float(value)


def load_preset(name: str) -> list[Rule]:
    """Return the rules of a shipped preset.

    Parameters
    ----------
    name
        One of :func:`list_presets`.

    Raises
    ------
    CoverageError
        If the preset does not exist; ``InputError`` if its file is invalid.
    """
    return parse_standards(preset_tables(name), where=f"preset {name}")
