"""Chinese administrative names: clean them, reduce them to a stem, and match them.

Official (NBS) names and the names in a planner's own table rarely agree letter for letter:
``新山村街道`` is written ``新山村街道办事处`` or ``新山村``; the village committee
``平安社区居民委员会`` appears as ``平安社区居委会``, ``平安社区`` or ``平安``. A name is
reduced to its *stem* by removing one level suffix (街道办事处, 街道, 镇, 乡 for townships;
居民委员会, 村民委员会, 社区居委会, 社区, 村, 居委会 ... for villages), and the suffix's
*kind* (街道 / 镇 / 乡 / 社区 / 村) is kept so that two units whose stems collide (``河口村``
and ``河口社区`` in one township) are still told apart.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from covplan.errors import CoverageError

__all__ = [
    "LEVELS",
    "NameKey",
    "NameMatch",
    "canonical_level",
    "clean_name",
    "disambiguated_names",
    "match_names",
    "split_name",
]

#: Level suffixes (longest first within each level) and the kind word each stands for.
_SUFFIXES: dict[str, tuple[tuple[str, str], ...]] = {
    "township": (
        ("街道办事处", "街道"),
        ("办事处", "街道"),
        ("街道", "街道"),
        ("镇", "镇"),
        ("乡", "乡"),
    ),
    "village": (
        ("社区居民委员会", "社区"),
        ("社区居委会", "社区"),
        ("社区委员会", "社区"),
        ("居民委员会", "社区"),
        ("村民委员会", "村"),
        ("居委会", "社区"),
        ("村委会", "村"),
        ("社区", "社区"),
        ("村", "村"),
    ),
}

#: Canonical level names and the spellings accepted for them.
LEVELS: dict[str, str] = {
    "township": "township",
    "town": "township",
    "乡镇": "township",
    "乡镇街道": "township",
    "village": "village",
    "村": "village",
    "村居": "village",
    "社区": "village",
}

_SPACE = re.compile(r"\s+")


def canonical_level(level: str) -> str:
    """Return ``"township"`` or ``"village"`` for an accepted level spelling.

    Raises
    ------
    CoverageError
        For any other level.
    """
    try:
        return LEVELS[str(level).strip().lower()]
    except KeyError:
        raise CoverageError(
            f"unknown administrative level {level!r}: use 'township' (乡镇/街道) or "
            "'village' (村/社区)"
        ) from None


def clean_name(name: object) -> str:
    """Normalise the spelling of a name: NFKC (full-width to half-width), no whitespace.

    Parameters
    ----------
    name
        Any value; ``None`` and NaN give an empty string.
    """
    if name is None or (isinstance(name, float) and name != name):
        return ""
    text = unicodedata.normalize("NFKC", str(name))
    return _SPACE.sub("", text)


@dataclass(frozen=True)
class NameKey:
    """A name reduced for matching.

    Attributes
    ----------
    name
        The cleaned full name.
    stem
        The name without its level suffix (the whole name when it has none, or when removing
        the suffix would leave nothing).
    kind
        The level word of the removed suffix (``街道``, ``镇``, ``乡``, ``社区``, ``村``) or
        None when there was none.
    """

    name: str
    stem: str
    kind: str | None


def split_name(name: object, *, level: str | None = None) -> NameKey:
    """Split a name into stem and level word.

    Parameters
    ----------
    name
        The name as written.
    level
        ``"township"`` or ``"village"`` (or an accepted spelling); only that level's suffixes
        are removed, so ``新山村`` stays ``新山村`` at township level. None tries both levels,
        township suffixes first.

    Returns
    -------
    NameKey

    Examples
    --------
    >>> split_name("新山村街道办事处", level="township")
    NameKey(name='新山村街道办事处', stem='新山村', kind='街道')
    >>> split_name("平安社区居委会", level="village").stem
    '平安'
    """
    text = clean_name(name)
    levels = (canonical_level(level),) if level is not None else ("township", "village")
    for lev in levels:
        for suffix, kind in _SUFFIXES[lev]:
            if text.endswith(suffix) and len(text) > len(suffix):
                return NameKey(text, text[: -len(suffix)], kind)
    return NameKey(text, text, None)


def disambiguated_names(names: Sequence[object], *, level: str) -> list[str]:
    """Return each name's stem, with its level word appended where stems collide.

    Parameters
    ----------
    names
        Names of units of one level within one parent (a county's townships, or a township's
        villages).
    level
        ``"township"`` or ``"village"``.

    Examples
    --------
    >>> disambiguated_names(["河口村民委员会", "河口社区居委会", "平安村"], level="village")
    ['河口村', '河口社区', '平安']
    """
    keys = [split_name(n, level=level) for n in names]
    counts: dict[str, int] = {}
    for key in keys:
        counts[key.stem] = counts.get(key.stem, 0) + 1
    return [
        k.stem + (k.kind or "") if counts[k.stem] > 1 else k.stem for k in keys
    ]


def _stem_variants(key: NameKey) -> tuple[str, ...]:
    if key.kind == "村" and key.stem.endswith("村") and len(key.stem) > 1:
        return (key.stem, key.stem[:-1])
    return (key.stem,)


@dataclass(frozen=True)
class NameMatch:
    """The outcome of matching one given name against a list of official names.

    Attributes
    ----------
    index
        Position of the matched official name, or None.
    how
        ``"exact"`` (same cleaned name), ``"stem"`` (same stem, unique), ``"stem+kind"``
        (same stem and level word, the stem alone being ambiguous), ``"ambiguous"`` or
        ``"none"``.
    candidates
        Positions of the official names sharing the stem when ``how == "ambiguous"``.
    suggestions
        Up to three close official names when nothing matched.
    """

    index: int | None
    how: str
    candidates: tuple[int, ...] = ()
    suggestions: tuple[str, ...] = ()


def match_names(
    given: Sequence[object], official: Sequence[object], *, level: str
) -> list[NameMatch]:
    """Match names as written by a user to official names of one level.

    A given name matches an official one when the cleaned names are equal; otherwise when
    their stems are equal (the given name's whole text also counts as a stem, so ``新村``
    finds ``新村社区居委会``; a village stem ending in 村 also counts without it, so
    ``梨树湾村委会`` finds ``梨树湾村村民委员会``), uniquely; otherwise when stem and level word
    are equal.

    Parameters
    ----------
    given
        The user's names.
    official
        The official names to match against (one parent's units).
    level
        ``"township"`` or ``"village"``.

    Returns
    -------
    list of NameMatch
        One per given name, in order.
    """
    level = canonical_level(level)
    keys = [split_name(n, level=level) for n in official]
    by_name: dict[str, list[int]] = {}
    by_stem: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        by_name.setdefault(key.name, []).append(i)
        for stem in _stem_variants(key):
            if i not in by_stem.setdefault(stem, []):
                by_stem[stem].append(i)
    results: list[NameMatch] = []
    for raw in given:
        key = split_name(raw, level=level)
        if not key.name:
            results.append(NameMatch(None, "none"))
            continue
        exact = by_name.get(key.name, [])
        if len(exact) == 1:
            results.append(NameMatch(exact[0], "exact"))
            continue
        found = sorted(
            {i for stem in (*_stem_variants(key), key.name) for i in by_stem.get(stem, [])}
        )
        if len(found) == 1:
            results.append(NameMatch(found[0], "stem"))
            continue
        if len(found) > 1:
            same_kind = [i for i in found if key.kind is not None and keys[i].kind == key.kind]
            if len(same_kind) == 1:
                results.append(NameMatch(same_kind[0], "stem+kind"))
            else:
                results.append(NameMatch(None, "ambiguous", candidates=tuple(found)))
            continue
        close = difflib.get_close_matches(
            key.stem, [k.stem for k in keys], n=3, cutoff=0.5
        )
        suggestions = tuple(
            dict.fromkeys(keys[i].name for s in close for i in by_stem[s])
        )[:3]
        results.append(NameMatch(None, "none", suggestions=suggestions))
    return results
