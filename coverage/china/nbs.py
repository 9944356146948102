"""The shipped National Bureau of Statistics tables: counties, townships, villages, and joins.

Sources (official statistics, cite as such): 国家统计局 统计用区划代码和城乡划分代码 2016 and
2023, and the 7th national census 2020 (第七次全国人口普查) county table. The files live in
``coverage/china/tables/`` (package data, ``importlib.resources``):

- ``admin_units_nbs2016.csv``: the nine plan counties, their 279 townships and 3,471 villages
  with the urban-rural code ``ur_code`` (111 主城区, 112 城乡结合区, 121 镇中心区, 122 镇乡结合区,
  123 特殊区域 are urban; 210 乡中心区, 220 村庄 are rural);
- ``townships_nbs2023.csv`` and ``villages_nbs2023.csv``: the 2023 codes and names (no
  urban-rural code: a 2023 village takes its 2016 code when its code and name stem are
  unchanged);
- ``census2020_counties.csv``: county totals, urban and rural population.

Codes are kept as strings: 6 digits for a county, 9 for a township, 12 for a village (the
12-digit form of a county or township ends in zeros and is accepted as input).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import pandas as pd
from covplan import settings
from covplan.china.names import canonical_level, clean_name, match_names
from covplan.errors import CoverageError
from covplan.labels import urban_rural_class

__all__ = [
    "COUNTY_PINYIN",
    "GEOFABRIK_REGIONS",
    "County",
    "JoinReport",
    "data_dir",
    "join_by_code_or_name",
    "list_counties",
    "load_units",
    "lookup_county",
    "township_urban_rural",
    "urban_rural_from_ur_code",
]

#: Romanised names of the shipped counties (as used on English maps and by geoBoundaries).
COUNTY_PINYIN: dict[str, str] = {
    "500104": "Dadukou",
    "500106": "Shapingba",
    "500111": "Dazu",
    "500118": "Yongchuan",
    "511902": "Bazhou",
    "511903": "Enyang",
    "511921": "Tongjiang",
    "511922": "Nanjiang",
    "511923": "Pingchang",
}

#: Geofabrik region path of each province code (the extract covering the province).
GEOFABRIK_REGIONS: dict[str, str] = {
    "50": "asia/china/chongqing",
    "51": "asia/china/sichuan",
}

_YEARS = (2016, 2023)
_CODE_COLUMNS = ("code", "nbs_code", "区划代码", "统计用区划代码", "代码", "行政区划代码")
_NAME_COLUMNS = {
    "township": ("name", "名称", "单位名称", "乡镇", "乡镇街道", "乡镇(街道)", "乡镇（街道）",
                 "街道"),
    "village": ("name", "名称", "单位名称", "村", "村居", "村(社区)", "村（社区）", "社区",
                "村名", "村委会", "居委会"),
}


def data_dir() -> Path:
    """Return the folder of the shipped NBS tables.

    ``COVPLAN_CHINA_DATA`` overrides the tables shipped in the package (``covplan/china/tables``).

    Raises
    ------
    CoverageError
        When the folder does not hold ``admin_units_nbs2016.csv``.
    """
    folder = settings.china_data_dir() or Path(str(resources.files("covplan.china") / "tables"))
    if not (folder / "admin_units_nbs2016.csv").is_file():
        raise CoverageError(
            f"NBS tables not found in {folder}: set COVPLAN_CHINA_DATA to the folder holding "
            "admin_units_nbs2016.csv, townships_nbs2023.csv and villages_nbs2023.csv"
        )
    return folder


def urban_rural_from_ur_code(ur_code: object) -> str | None:
    """Return ``"urban"`` for an NBS urban-rural code 1xx, ``"rural"`` for 2xx, else None.

    Examples
    --------
    >>> urban_rural_from_ur_code("121"), urban_rural_from_ur_code(220), urban_rural_from_ur_code("")
    ('urban', 'rural', None)
    """
    text = clean_name(ur_code)
    if len(text.removesuffix(".0")) != 3:  # a class code, not a word
        return None
    return urban_rural_class(text, strict=False)


def _read(name: str) -> pd.DataFrame:
    path = data_dir() / name
    if not path.is_file():
        raise CoverageError(f"NBS table missing: {path}")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _unit_rows(
    level: str, code: pd.Series, name: pd.Series, parent_code: pd.Series,
    county_code: pd.Series, township_code: pd.Series | None = None,
    ur_code: pd.Series | list[object] | None = None,
) -> pd.DataFrame:
    """One level's rows of the units table (the same columns for every level and year)."""
    return pd.DataFrame({
        "code": code, "name": name, "level": level, "parent_code": parent_code,
        "county_code": county_code, "township_code": township_code, "ur_code": ur_code,
    })


@lru_cache(maxsize=4)
def _units(year: int) -> pd.DataFrame:
    base = _read("admin_units_nbs2016.csv")
    counties = base[base["level"] == "county"]
    county_rows = _unit_rows("county", counties["code"].str[:6], counties["name"],
                             counties["parent"].str[:4], counties["code"].str[:6])
    if year == 2016:
        towns = base[base["level"] == "town"]
        villages = base[base["level"] == "village"]
        town_rows = _unit_rows("township", towns["code"].str[:9], towns["name"],
                               towns["code"].str[:6], towns["code"].str[:6],
                               towns["code"].str[:9])
        village_rows = _unit_rows("village", villages["code"], villages["name"],
                                  villages["code"].str[:9], villages["code"].str[:6],
                                  villages["code"].str[:9], villages["ur_code"].replace("", None))
    else:
        towns = _read("townships_nbs2023.csv")
        villages = _read("villages_nbs2023.csv")
        town_rows = _unit_rows("township", towns["code"], towns["name"], towns["areaCode"],
                               towns["areaCode"], towns["code"])
        old = base[base["level"] == "village"].set_index("code")
        ur_codes: list[object] = []
        for code, name in zip(villages["code"], villages["name"], strict=True):
            ur = None
            if code in old.index:
                then = old.loc[code]
                same = _same_village(name, then["name"])
                ur = (then["ur_code"] or None) if same else None
            ur_codes.append(ur)
        village_rows = _unit_rows("village", villages["code"], villages["name"],
                                  villages["streetCode"], villages["areaCode"],
                                  villages["streetCode"], ur_codes)
    table = pd.concat([county_rows, town_rows, village_rows], ignore_index=True)
    table["urban_rural"] = [urban_rural_from_ur_code(u) for u in table["ur_code"]]
    # every urban-rural class shipped is the NBS 2016 one (carried to 2023 when the village
    # kept its code and name)
    table["ur_year"] = pd.array(table["ur_code"].notna().map({True: 2016, False: None}),
                                dtype="Int64")
    table["year"] = year
    return table


def _same_village(a: str, b: str) -> bool:
    return bool(match_names([a], [b], level="village")[0].index == 0)


def load_units(
    *, year: int = 2023, level: str | None = None, county: str | None = None
) -> pd.DataFrame:
    """Return the NBS units of the shipped counties as a table.

    Parameters
    ----------
    year
        2016 or 2023 codes and names.
    level
        ``"county"``, ``"township"`` or ``"village"``; None for all.
    county
        Restrict to one county, given by code or name (see :func:`lookup_county`).

    Returns
    -------
    pandas.DataFrame
        Columns ``code`` (6/9/12 digits), ``name``, ``level``, ``parent_code``,
        ``county_code``, ``township_code``, ``ur_code`` (str or None), ``urban_rural``
        (``"urban"``/``"rural"``/None), ``ur_year`` (year the ur_code is from), ``year``.
    """
    if year not in _YEARS:
        raise CoverageError(f"NBS tables are shipped for {_YEARS}, not year {year!r}")
    table = _units(year)
    if level is not None:
        level = "county" if level == "county" else canonical_level(level)
        table = table[table["level"] == level]
    if county is not None:
        table = table[table["county_code"] == lookup_county(county).code]
    return table.reset_index(drop=True).copy()


@dataclass(frozen=True)
class County:
    """One shipped county (区/县) with its 2020 census figures.

    Attributes
    ----------
    code
        6-digit NBS code.
    name, pinyin
        Chinese and romanised names (``大渡口区``, ``Dadukou``).
    province, city
        Names from the census table.
    population, urban_population, rural_population
        2020 census totals (人口数_合计, 城镇人口, 乡村人口).
    geofabrik_region
        Path of the Geofabrik extract covering it (``asia/china/chongqing``).
    """

    code: str
    name: str
    pinyin: str
    province: str
    city: str
    population: int | None
    urban_population: int | None
    rural_population: int | None
    geofabrik_region: str


@lru_cache(maxsize=1)
def _counties() -> dict[str, County]:
    units = _units(2016)
    census = _read("census2020_counties.csv").set_index("区划代码")
    out: dict[str, County] = {}
    for code, name in zip(units.loc[units["level"] == "county", "code"],
                          units.loc[units["level"] == "county", "name"], strict=True):
        row = census.loc[code] if code in census.index else None

        def number(column: str, row: pd.Series | None = row) -> int | None:
            if row is None or not row[column]:
                return None
            return int(float(row[column]))

        out[code] = County(
            code=code,
            name=name,
            pinyin=COUNTY_PINYIN.get(code, ""),
            province=row["省"] if row is not None else "",
            city=row["市"] if row is not None else "",
            population=number("人口数_合计"),
            urban_population=number("城镇人口"),
            rural_population=number("乡村人口"),
            geofabrik_region=GEOFABRIK_REGIONS.get(code[:2], ""),
        )
    return out


def list_counties() -> list[County]:
    """Return the shipped counties in code order."""
    return [c for _, c in sorted(_counties().items())]


def lookup_county(query: str | int | County) -> County:
    """Find a shipped county by NBS code, Chinese name or romanised name.

    Parameters
    ----------
    query
        ``500104``, ``"500104000000"``, ``"大渡口区"``, ``"大渡口"``, ``"Dadukou"`` or
        ``"Dadukou District"``.

    Raises
    ------
    CoverageError
        When nothing matches; the message lists the shipped counties and the closest name.
    """
    if isinstance(query, County):
        return query
    counties = _counties()
    text = clean_name(query)
    if text.isdigit():
        code = text[:6] if len(text) == 12 and text.endswith("000000") else text
        if code in counties:
            return counties[code]
    else:
        lowered = text.lower()
        for word in ("district", "county"):
            lowered = lowered.removesuffix(word)
        for county in counties.values():
            stem = county.name[:-1] if county.name[-1] in "区县市" else county.name
            if text in (county.name, stem) or lowered == county.pinyin.lower():
                return county
    names = [f"{c.code} {c.name} ({c.pinyin})" for c in list_counties()]
    close = difflib.get_close_matches(
        text, [c.name for c in counties.values()] + [c.pinyin for c in counties.values()], n=1
    )
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise CoverageError(
        f"county {query!r} is not in the shipped NBS tables{hint} Known counties: "
        + ", ".join(names)
        + ". For another county, pass its outline and codes yourself."
    )


def township_urban_rural(*, year: int = 2016, county: str | None = None) -> pd.DataFrame:
    """Classify each township urban or rural from its villages' urban-rural codes.

    A township is ``"urban"`` when at least half of its villages with a known code are urban
    (1xx), ``"rural"`` otherwise, None when none of its villages has a code.

    Returns
    -------
    pandas.DataFrame
        Indexed by township code, columns ``n_villages``, ``n_urban``, ``n_with_code``,
        ``urban_share`` and ``urban_rural``.
    """
    villages = load_units(year=year, level="village", county=county)
    towns = load_units(year=year, level="township", county=county)
    grouped = villages.groupby("township_code")
    out = pd.DataFrame(index=pd.Index(towns["code"], name="township_code"))
    out["n_villages"] = grouped.size().reindex(out.index).fillna(0).astype(int)
    out["n_urban"] = (
        grouped["urban_rural"].apply(lambda s: int((s == "urban").sum()))
        .reindex(out.index).fillna(0).astype(int)
    )
    out["n_with_code"] = (
        grouped["urban_rural"].apply(lambda s: int(s.notna().sum()))
        .reindex(out.index).fillna(0).astype(int)
    )
    out["urban_share"] = out["n_urban"] / out["n_with_code"].where(out["n_with_code"] > 0)
    out["urban_rural"] = [
        None if pd.isna(s) else ("urban" if s >= 0.5 else "rural") for s in out["urban_share"]
    ]
    return out


@dataclass
class JoinReport:
    """What a join of a user table to the NBS units did.

    Attributes
    ----------
    level, county, year
        What was joined against.
    n_rows, n_matched
        Rows in the user table and rows that found an NBS unit.
    matched_by
        Count of rows per way of matching (``code``, ``exact``, ``stem``, ``stem+kind``).
    unmatched
        One row per user row left unmatched: ``row`` (position), ``name``, ``code``,
        ``reason``, ``suggestions``.
    conflicts
        Rows whose code matched but whose name is another unit's (kept matched by code):
        ``row``, ``name``, ``code``, ``nbs_name``.
    duplicates
        NBS units matched by more than one user row: ``nbs_code``, ``nbs_name``, ``rows``.
    missing
        NBS units of the county and level no user row matched: ``code``, ``name``.
    """

    level: str
    county: County
    year: int
    n_rows: int
    n_matched: int
    matched_by: dict[str, int]
    unmatched: pd.DataFrame
    conflicts: pd.DataFrame = field(default_factory=pd.DataFrame)
    duplicates: pd.DataFrame = field(default_factory=pd.DataFrame)
    missing: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def complete(self) -> bool:
        """True when every row matched one distinct unit and no unit is missing."""
        return self.unmatched.empty and self.duplicates.empty and self.missing.empty

    def summary(self) -> str:
        """Return a short readable account of the join."""
        how = ", ".join(f"{k} {v}" for k, v in sorted(self.matched_by.items()))
        lines = [
            f"{self.county.name} ({self.county.code}) {self.level} NBS {self.year}: "
            f"{self.n_matched} of {self.n_rows} rows matched ({how or 'none'})"
        ]
        for rec in self.unmatched.itertuples(index=False):
            tip = f"; closest: {', '.join(rec.suggestions)}" if rec.suggestions else ""
            code = f" {rec.code}" if rec.code else ""
            lines.append(f"  unmatched row {rec.row} {rec.name!r}{code}: {rec.reason}{tip}")
        for rec in self.conflicts.itertuples(index=False):
            lines.append(
                f"  row {rec.row} {rec.name!r}: code {rec.code} is {rec.nbs_name!r} in NBS "
                f"{self.year} (matched by code; check the name)"
            )
        for rec in self.duplicates.itertuples(index=False):
            lines.append(f"  {rec.nbs_name} ({rec.nbs_code}) matched by rows {list(rec.rows)}")
        if not self.missing.empty:
            lines.append(
                f"  {len(self.missing)} NBS unit(s) not in the table: "
                + ", ".join(self.missing["name"].head(10))
                + (" ..." if len(self.missing) > 10 else "")
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _find_column(table: pd.DataFrame, given: str | None, choices: tuple[str, ...],
                 what: str) -> str | None:
    if given is not None:
        if given not in table.columns:
            raise CoverageError(
                f"{what} column {given!r} not in the table; columns are {list(table.columns)}"
            )
        return given
    for name in choices:
        if name in table.columns:
            return name
    return None


def _normal_code(value: object, *, level: str) -> str:
    text = clean_name(value)
    if text.endswith(".0"):
        text = text[:-2]
    if not text.isdigit():
        return ""
    if level == "township" and len(text) == 12 and text.endswith("000"):
        return text[:9]
    return text


def join_by_code_or_name(
    user_table: pd.DataFrame,
    *,
    level: str,
    county: str | int | County,
    year: int = 2023,
    code_column: str | None = None,
    name_column: str | None = None,
    parent_column: str | None = None,
    urban_rural_column: str | None = None,
) -> tuple[pd.DataFrame, JoinReport]:
    """Join a user's township or village table to the NBS units of one county.

    Each row is matched by its NBS code when it has one that exists, otherwise by name
    (exact, then suffix-tolerant stem, then stem plus level word; see
    :func:`covplan.china.names.match_names`). Village names repeat between townships, so at
    village level a ``parent_column`` (the township's code or name) narrows the search; without
    it a village name found in two townships is reported ambiguous.

    Parameters
    ----------
    user_table
        The user's table, one row per unit.
    level
        ``"township"`` (乡镇/街道) or ``"village"`` (村/社区).
    county
        The county, by code or name (see :func:`lookup_county`).
    year
        Which NBS codes and names to join to: 2016 or 2023.
    code_column, name_column
        Columns with the NBS code and the name; found by common names (``code``, ``区划代码``,
        ``name``, ``名称``, ``乡镇``, ``村`` ...) when not given. At least one must exist.
    parent_column
        Village level only: the township code or name of each row.
    urban_rural_column
        The user's own urban/rural class (``urban``/``rural``/``城镇``/``乡村``); where it is
        empty the NBS class is used.

    Returns
    -------
    joined : pandas.DataFrame
        The user table (same rows and order) plus ``nbs_code``, ``nbs_name``, ``nbs_parent_code``,
        ``match`` (how it matched, None when not), ``ur_code``, ``urban_rural`` and
        ``ur_source`` (``"column"`` or ``"nbs"``). At township level ``ur_code`` is None and
        the class comes from the township's villages (:func:`township_urban_rural`), with
        ``n_villages`` and ``urban_share`` added.
    report : JoinReport
        What matched, what did not and why, duplicates and NBS units not in the table.
    """
    level = canonical_level(level)
    place = lookup_county(county)
    if year not in _YEARS:
        raise CoverageError(f"NBS tables are shipped for {_YEARS}, not year {year!r}")
    code_col = _find_column(user_table, code_column, _CODE_COLUMNS, "code")
    name_col = _find_column(user_table, name_column, _NAME_COLUMNS[level], "name")
    if code_col is None and name_col is None:
        raise CoverageError(
            f"cannot join the {level} table: no code or name column among "
            f"{list(user_table.columns)}; pass code_column= or name_column="
        )
    if parent_column is not None and level != "village":
        raise CoverageError("parent_column is only used at village level")
    parent_col = _find_column(user_table, parent_column, (), "parent")
    ur_col = _find_column(user_table, urban_rural_column, (), "urban_rural")

    units = load_units(year=year, level=level, county=place.code)
    towns = load_units(year=year, level="township", county=place.code)
    by_code = {c: i for i, c in enumerate(units["code"])}
    n = len(user_table)
    names = (
        list(user_table[name_col]) if name_col is not None else [""] * n
    )
    codes = (
        [_normal_code(v, level=level) for v in user_table[code_col]]
        if code_col is not None else [""] * n
    )
    found: list[int | None] = [None] * n
    how: list[str | None] = [None] * n
    unmatched: list[dict[str, object]] = []
    conflicts: list[dict[str, object]] = []

    # parent township of each row, when given (village level)
    parents: list[str | None] = [None] * n
    if parent_col is not None:
        pvalues = list(user_table[parent_col])
        pcodes = [_normal_code(v, level="township") for v in pvalues]
        pmatch = match_names(pvalues, list(towns["name"]), level="township")
        tcodes = set(towns["code"])
        for i in range(n):
            if pcodes[i] in tcodes:
                parents[i] = pcodes[i]
            elif pmatch[i].index is not None:
                parents[i] = towns["code"].iloc[pmatch[i].index]

    for i in range(n):
        code = codes[i]
        if code and code in by_code:
            j = by_code[code]
            found[i], how[i] = j, "code"
            if names[i] and clean_name(names[i]):
                check = match_names([names[i]], [units["name"].iloc[j]], level=level)[0]
                if check.index is None:
                    conflicts.append(
                        {"row": i, "name": clean_name(names[i]), "code": code,
                         "nbs_name": units["name"].iloc[j]}
                    )
            continue
        if not clean_name(names[i]):
            unmatched.append(
                {"row": i, "name": "", "code": code,
                 "reason": f"code {code} not in NBS {year}" if code else "no code and no name",
                 "suggestions": ()}
            )
            continue
        if level == "village" and parents[i] is not None:
            pool = units.index[units["township_code"] == parents[i]]
        elif level == "village" and parent_col is not None:
            unmatched.append(
                {"row": i, "name": clean_name(names[i]), "code": code,
                 "reason": f"township {clean_name(user_table[parent_col].iloc[i])!r} "
                           f"not found in {place.name}",
                 "suggestions": ()}
            )
            continue
        else:
            pool = units.index
        result = match_names([names[i]], list(units.loc[pool, "name"]), level=level)[0]
        if result.index is not None:
            found[i], how[i] = int(pool[result.index]), result.how
            continue
        if result.how == "ambiguous":
            cands = [int(pool[k]) for k in result.candidates]
            where = [
                f"{units['name'].iloc[k]} ({units['code'].iloc[k]})" for k in cands
            ]
            reason = "ambiguous: " + "; ".join(where)
            if level == "village" and parent_col is None:
                reason += " (give the township in parent_column)"
            suggestions: tuple[str, ...] = ()
        else:
            within = place.name
            if level == "village" and parents[i] is not None:
                within = towns.loc[towns["code"] == parents[i], "name"].iloc[0]
            reason = (f"code {code} not in NBS {year} and " if code else "") + (
                f"no {level} of that name in {within}"
            )
            suggestions = result.suggestions
        unmatched.append(
            {"row": i, "name": clean_name(names[i]), "code": code, "reason": reason,
             "suggestions": suggestions}
        )

    joined = user_table.copy()
    nbs_codes = [units["code"].iloc[j] if j is not None else None for j in found]
    joined["nbs_code"] = nbs_codes
    joined["nbs_name"] = [units["name"].iloc[j] if j is not None else None for j in found]
    joined["nbs_parent_code"] = [
        units["parent_code"].iloc[j] if j is not None else None for j in found
    ]
    joined["match"] = how
    if level == "township":
        cls = township_urban_rural(year=year, county=place.code)
        joined["ur_code"] = None
        joined["n_villages"] = [
            int(cls.at[c, "n_villages"]) if c is not None else None for c in nbs_codes
        ]
        joined["urban_share"] = [
            float(cls.at[c, "urban_share"]) if c is not None else float("nan")
            for c in nbs_codes
        ]
        nbs_class = [cls.at[c, "urban_rural"] if c is not None else None
                     for c in nbs_codes]
    else:
        joined["ur_code"] = [units["ur_code"].iloc[j] if j is not None else None for j in found]
        nbs_class = [units["urban_rural"].iloc[j] if j is not None else None for j in found]
    own = [_user_class(v) for v in user_table[ur_col]] if ur_col is not None else [None] * n
    joined["urban_rural"] = [o if o is not None else c for o, c in zip(own, nbs_class,
                                                                        strict=True)]
    joined["ur_source"] = [
        "column" if o is not None else ("nbs" if c is not None else None)
        for o, c in zip(own, nbs_class, strict=True)
    ]

    counts: dict[int, list[int]] = {}
    for i, j in enumerate(found):
        if j is not None:
            counts.setdefault(j, []).append(i)
    duplicates = pd.DataFrame(
        [{"nbs_code": units["code"].iloc[j], "nbs_name": units["name"].iloc[j], "rows": rows}
         for j, rows in counts.items() if len(rows) > 1],
        columns=["nbs_code", "nbs_name", "rows"],
    )
    missing = units.loc[[j for j in range(len(units)) if j not in counts], ["code", "name"]]
    matched_by: dict[str, int] = {}
    for h in how:
        if h is not None:
            matched_by[h] = matched_by.get(h, 0) + 1
    report = JoinReport(
        level=level,
        county=place,
        year=year,
        n_rows=n,
        n_matched=sum(j is not None for j in found),
        matched_by=matched_by,
        unmatched=pd.DataFrame(
            unmatched, columns=["row", "name", "code", "reason", "suggestions"]
        ),
        conflicts=pd.DataFrame(conflicts, columns=["row", "name", "code", "nbs_name"]),
        duplicates=duplicates,
        missing=missing.reset_index(drop=True),
    )
    return joined, report


def _user_class(value: object) -> str | None:
    text = clean_name(value).lower()
    if not text:
        return None
    return urban_rural_class(text, strict=False)

