"""The kind of each administrative unit: 街道 / 镇 / 乡, 社区（居委会） / 行政村（村委会）.

Plans ask different things of different kinds of unit at the same level: 「每个街道有1个标准化社区
卫生服务中心」 concerns 街道 (sub-districts), not 镇 (towns); 「每个行政村设置1个村卫生室」 concerns
行政村 (村委会), not 社区 (居委会). The kind is read, in this order, from:

1. the NBS code (12 digits, 统计用区划代码): township digits 7-9 ``001-099`` 街道, ``100-199`` 镇,
   ``200-399`` 乡, ``400+`` other township-level units; village digits 10-12 ``001-199``
   居委会（社区）, ``200-399`` 村委会（行政村）, ``400+`` other village-level units;
2. the end of the name (``…街道``, ``…镇``, ``…乡``, ``…社区``/``…居委会``, ``…村``/``…村委会``;
   :func:`covplan.labels.unit_kind_from_name`);
3. a column the user names (``kind_column``), in Chinese or as a key.

:func:`classify_unit_kinds` returns the kind and, in ``kind_source``, which of the three
decided (``code``, ``name``, ``column``; None when none did). The kinds are the stable keys of
:data:`covplan.labels.UNIT_KIND_LABELS`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import pandas as pd
from covplan.errors import CoverageError
from covplan.labels import UNIT_KIND_LABELS, unit_kind_from_name

__all__ = [
    "KIND_SOURCES",
    "TOWNSHIP_KINDS",
    "UNIT_KINDS",
    "VILLAGE_KINDS",
    "classify_unit_kinds",
    "kind_from_code",
    "normalise_kind",
    "normalise_kinds",
]

#: Kinds of township-level unit (乡级): sub-district 街道, town 镇, township 乡, other.
TOWNSHIP_KINDS: tuple[str, ...] = ("subdistrict", "town", "township", "other_township")
#: Kinds of village-level unit (村级): community 社区（居委会）, administrative village 行政村
#: （村委会）, other (e.g. 村级 units of development zones, NBS 400+).
VILLAGE_KINDS: tuple[str, ...] = ("community", "village", "other_village")
#: Every kind key.
UNIT_KINDS: tuple[str, ...] = TOWNSHIP_KINDS + VILLAGE_KINDS
#: Values of ``kind_source``, in the order they are tried.
KIND_SOURCES: tuple[str, ...] = ("code", "name", "column")

#: Words for each kind (NFKC, lower case), beside the keys and the labels of UNIT_KIND_LABELS.
_WORDS: dict[str, str] = {
    "街道": "subdistrict", "街道办": "subdistrict", "街道办事处": "subdistrict",
    "sub-district": "subdistrict", "sub_district": "subdistrict",
    "镇": "town", "建制镇": "town",
    "乡": "township", "民族乡": "township", "苏木": "township",
    "社区": "community", "居委会": "community", "居民委员会": "community",
    "社区居委会": "community", "社区(居委会)": "community", "居委会(社区)": "community",
    "行政村": "village", "村": "village", "村委会": "village", "村民委员会": "village",
    "行政村(村委会)": "village", "村委会(行政村)": "village", "嘎查": "village",
    "other township": "other_township", "其他乡级": "other_township",
    "other village": "other_village", "其他村级": "other_village",
}  # fmt: skip


def _word(value: object) -> str:
    return unicodedata.normalize("NFKC", str(value)).strip().lower()


def normalise_kind(value: object) -> str | None:
    """Return the kind key a word names (``"行政村"`` -> ``"village"``), None when it names none.

    Accepts the keys of :data:`UNIT_KINDS`, their Chinese and English labels, and the usual
    Chinese words (街道, 镇, 乡, 社区, 居委会, 行政村, 村, 村委会 ...).

    Examples
    --------
    >>> normalise_kind("行政村"), normalise_kind("社区（居委会）"), normalise_kind("subdistrict")
    ('village', 'community', 'subdistrict')
    >>> normalise_kind("parish") is None
    True
    """
    if value is None or (isinstance(value, float) and value != value):
        return None
    word = _word(value)
    if not word:
        return None
    if word in UNIT_KINDS:
        return word
    if word in _WORDS:
        return _WORDS[word]
    for key, (zh, en) in UNIT_KIND_LABELS.items():
        if word in (_word(zh), _word(en)):
            return key
    return None


def normalise_kinds(values: Iterable[object]) -> tuple[str, ...]:
    """Return the kind keys of several words (for a rule's ``unit_kinds``).

    Raises
    ------
    CoverageError
        Naming the words that are no kind, and the accepted ones.
    """
    out: list[str] = []
    bad: list[str] = []
    for value in values:
        kind = normalise_kind(value)
        if kind is None:
            bad.append(str(value))
        elif kind not in out:
            out.append(kind)
    if bad:
        raise CoverageError(
            f"unknown unit kind(s) {', '.join(map(repr, bad))}; use 街道, 镇, 乡, 社区, 行政村 "
            f"or the keys {', '.join(UNIT_KINDS)}"
        )
    return tuple(out)


def kind_from_code(code: object) -> str | None:
    """Return the kind an NBS code says (9 digits: township; 12 digits: village or township).

    A 12-digit code ending in ``000`` is the code of a township; one ending in ``000000`` (or a
    6-digit code) is a county's and has no kind here.

    Examples
    --------
    >>> kind_from_code("500104001"), kind_from_code("500104103"), kind_from_code("511923200")
    ('subdistrict', 'town', 'township')
    >>> kind_from_code("500104001001"), kind_from_code("500104103202")
    ('community', 'village')
    >>> kind_from_code("500104") is None, kind_from_code("x") is None
    (True, True)
    """
    if code is None or (isinstance(code, float) and code != code):
        return None
    text = _word(code)
    if text.endswith(".0"):  # a code read as a number from a spreadsheet
        text = text[:-2]
    if not re.fullmatch(r"\d{9}|\d{12}", text):
        return None
    if len(text) == 12 and text[9:] != "000":
        part = int(text[9:])
        return "community" if part < 200 else "village" if part < 400 else "other_village"
    part = int(text[6:9])
    if part == 0:
        return None
    if part < 100:
        return "subdistrict"
    return "town" if part < 200 else "township" if part < 400 else "other_township"


def classify_unit_kinds(
    units: pd.DataFrame,
    *,
    code_column: str | None = None,
    kind_column: str | None = None,
    name_column: str = "name",
) -> pd.DataFrame:
    """Return the kind of every unit and what decided it.

    Parameters
    ----------
    units
        The units (any table with a name column).
    code_column
        Column with the NBS code; None: ``nbs_code`` when present, else ``unit_id`` when it
        holds 9- or 12-digit codes.
    kind_column
        Column the user gives with each unit's kind (街道, 镇, 乡, 社区, 行政村 or a key), used
        when neither the code nor the name says.
    name_column
        Column with the unit names.

    Returns
    -------
    pandas.DataFrame
        Index of ``units``; columns ``unit_kind`` (a key of :data:`UNIT_KINDS`, None when
        unknown) and ``kind_source`` (``code``, ``name``, ``column`` or None).

    Raises
    ------
    CoverageError
        If a named column is missing.
    """
    for col in (code_column, kind_column):
        if col is not None and col not in units.columns:
            raise CoverageError(
                f"units have no column {col!r} (columns: {', '.join(map(str, units.columns))}); "
                "name an existing column"
            )
    codes: list[pd.Series] = []
    if code_column is not None:
        codes.append(units[code_column])
    else:
        codes += [units[c] for c in ("nbs_code", "unit_id") if c in units.columns]
    names = (units[name_column] if name_column in units.columns
             else pd.Series(None, index=units.index, dtype=object))
    given = (units[kind_column] if kind_column is not None
             else pd.Series(None, index=units.index, dtype=object))
    kinds: list[str | None] = []
    sources: list[str | None] = []
    for i in range(len(units)):
        kind: str | None = None
        source: str | None = None
        for series in codes:
            kind = kind_from_code(series.iloc[i])
            if kind is not None:
                source = "code"
                break
        if kind is None:
            kind = unit_kind_from_name(names.iloc[i])
            source = "name" if kind is not None else None
        if kind is None:
            kind = normalise_kind(given.iloc[i])
            source = "column" if kind is not None else None
        kinds.append(kind)
        sources.append(source)
    return pd.DataFrame({"unit_kind": pd.Series(kinds, index=units.index, dtype=object),
                         "kind_source": pd.Series(sources, index=units.index, dtype=object)})
