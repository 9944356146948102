"""Find English words in Chinese outputs: ASCII-letter words outside codes, ids, units, names.

:func:`english_words` returns the words of a text that a Chinese reader would see as English
where a Chinese word should be. Allowed, because a Chinese document writes them in Latin
letters too:

* codes and ids: any token with a digit or an underscore (``BZ-12``, ``SY-CHC-01``,
  ``310101002-1413_13830``, ``kind_column``), and acronyms in capitals (``OSM``, ``NBS``,
  ``SHA``, ``JSON``, ``GCJ``);
* file names (``units.csv``, ``huangpu.toml``);
* units of measure (:data:`UNITS`: ``km``, ``min``, ``m``);
* proper names (:data:`PROPER_NAMES`: ``OpenStreetMap``, ``Dijkstra``, ``ODbL`` ...) and the
  fixed phrases of :data:`PHRASES` (the licence's required attribution
  "© OpenStreetMap contributors").

Used by tests/test_chinese_outputs.py; ``python tests/zh_text.py FILE...`` lists the words of
files (CSV, XLSX, HTML) from the command line.
"""

from __future__ import annotations

import html
import re
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ["PHRASES", "PROPER_NAMES", "UNITS", "english_words", "html_text", "report"]

#: Units of measure that Chinese documents write in Latin letters.
UNITS: frozenset[str] = frozenset({"km", "min", "m", "h", "kg", "s", "ha"})

#: Proper names (products, algorithms, licences, software) written in Latin letters.
PROPER_NAMES: frozenset[str] = frozenset({
    "OpenStreetMap", "Dijkstra", "ODbL", "Python", "Leaflet", "GeoJSON", "coverage-planner",
    "Amap", "Excel", "Word",
})

#: Fixed phrases that are allowed whole (the OSM attribution the licence requires).
PHRASES: tuple[str, ...] = ("© OpenStreetMap contributors", "OpenStreetMap contributors")

_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*")
_FILE = re.compile(r"\.[A-Za-z0-9]{1,5}$")


def _allowed(token: str) -> bool:
    word = token.strip(".-")
    if not word:
        return True
    if any(c.isdigit() for c in word) or "_" in word:
        return True  # a code or an id
    if _FILE.search(token) and "." in token.strip("."):
        return True  # a file name
    if word in UNITS or word in PROPER_NAMES:
        return True
    letters = [c for c in word if c.isalpha()]
    return len(letters) >= 2 and all(c.isupper() for c in letters)  # an acronym


def english_words(text: object) -> list[str]:
    """Return the English words of ``text`` (see the module docstring for what is allowed).

    Examples
    --------
    >>> english_words("BZ-12 城区20分钟急救圈 5.1 km © OpenStreetMap contributors")
    []
    >>> english_words("全部 56 个居民点 all covered")
    ['all', 'covered']
    """
    if text is None:
        return []
    value = str(text)
    for phrase in PHRASES:
        value = value.replace(phrase, " ")
    return [t for t in _TOKEN.findall(value) if not _allowed(t)]


def html_text(page: str, *, drop_ids: Iterable[str] = ("manifest-text",)) -> str:
    """Return the visible text of an HTML page: no script, style or the elements ``drop_ids``."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S | re.I)
    for element_id in drop_ids:
        page = re.sub(rf'<(\w+)[^>]*\bid="{re.escape(element_id)}"[^>]*>.*?</\1>', " ", page,
                      flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def report(path: Path) -> dict[str, list[str]]:
    """Return where -> English words for one output file (CSV, XLSX or HTML)."""
    found: dict[str, list[str]] = {}
    if path.suffix == ".csv":
        import csv

        with path.open(encoding="utf-8-sig", newline="") as handle:
            for i, row in enumerate(csv.reader(handle)):
                for j, cell in enumerate(row):
                    if words := english_words(cell):
                        found[f"{path.name}:{i + 1}:{j + 1}"] = words
    elif path.suffix == ".xlsx":
        import openpyxl

        book = openpyxl.load_workbook(path, read_only=True)
        for sheet in book.worksheets:
            if words := english_words(sheet.title):
                found[f"{path.name}:{sheet.title}"] = words
            for row in sheet.iter_rows():
                for cell in row:
                    if isinstance(cell.value, str) and (words := english_words(cell.value)):
                        found[f"{path.name}:{sheet.title}!{cell.coordinate}"] = words
    else:
        words = english_words(html_text(path.read_text(encoding="utf-8")))
        if words:
            found[path.name] = words
    return found


if __name__ == "__main__":
    status = 0
    for name in sys.argv[1:]:
        for where, words in report(Path(name)).items():
            status = 1
            print(f"{where}: {' '.join(words)}")
    sys.exit(status)
