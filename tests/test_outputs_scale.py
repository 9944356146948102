"""Outputs that scale: above the limits the maps draw a seeded sample and the xlsx is cut.

A synthetic run of 300,000 places (benchmarks/outputs_scale.py builds it) is written with
small limits set through the settings (``COVPLAN_MAP_MAX_POINTS``, ``COVPLAN_XLSX_MAX_ROWS``).
The map's points are counted in its GeoJSON, the sheet's rows read back with openpyxl and
compared with places.csv, which always holds every place.
"""

from __future__ import annotations

import importlib.util
import json
import re
import warnings
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from covplan.errors import CoverageError
from covplan.outputs import write_outputs
from covplan.outputs.tables import SAMPLE_SEED, cut_note, sample_note, sample_places
from covplan.results import RunResult

ROOT = Path(__file__).resolve().parents[1]
N = 300_000
MAP_LIMIT = 2_000
XLSX_LIMIT = 5_000


def _benchmark() -> object:
    spec = importlib.util.spec_from_file_location("outputs_scale",
                                                  ROOT / "benchmarks" / "outputs_scale.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def big() -> RunResult:
    return _benchmark().synthetic_result(N)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def written(big: RunResult, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("scale") / "out"
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mp.setenv("COVPLAN_MAP_MAX_POINTS", str(MAP_LIMIT))
        mp.setenv("COVPLAN_XLSX_MAX_ROWS", str(XLSX_LIMIT))
        return write_outputs(big, out, language="en",
                             formats=["units.xlsx", "places.csv", "map.html", "map.png"])


def _layers(page: str) -> list[dict]:
    """The GeoJSON FeatureCollections embedded in map.html."""
    found = []
    decoder = json.JSONDecoder()
    for match in re.finditer(r'\{"bbox"|\{"features"|\{"type": ?"FeatureCollection"', page):
        try:
            value, _ = decoder.raw_decode(page, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and value.get("type") == "FeatureCollection":
            found.append(value)
    return found


def test_the_sample_is_seeded_ordered_and_only_above_the_limit(big: RunResult) -> None:
    places = big.places
    assert sample_places(places, N) is places
    sample = sample_places(places, MAP_LIMIT)
    expected = np.sort(np.random.default_rng(SAMPLE_SEED).choice(N, MAP_LIMIT, replace=False))
    assert list(sample.index) == list(places.index[expected])
    assert sample_places(places, MAP_LIMIT).equals(sample)  # the same run, the same sample
    assert sample_note(N, MAP_LIMIT, "zh") == "显示 300,000 个居民点中的 2,000 个（随机抽样）"
    assert sample_note(N, MAP_LIMIT, "en") == "showing 2,000 of 300,000 places (random sample)"
    assert sample_note(N, N, "en") is None


def test_map_html_draws_the_sample_with_a_note(big: RunResult, written: dict[str, Path]) -> None:
    page = written["map.html"].read_text(encoding="utf-8")
    ids = [f["properties"]["place_id"] for layer in _layers(page) for f in layer["features"]
           if "place_id" in f["properties"]]
    assert len(ids) == MAP_LIMIT and len(set(ids)) == MAP_LIMIT
    sampled = sample_places(big.places, MAP_LIMIT)
    assert set(ids) == set(sampled["place_id"])
    assert "showing 2,000 of 300,000 places (random sample)" in page
    assert 'id=\'map-sample-note\'' in page
    assert written["map.html"].stat().st_size < 20 * 2**20


def test_xlsx_places_sheet_is_cut_with_a_note(big: RunResult, written: dict[str, Path]) -> None:
    book = openpyxl.load_workbook(written["units.xlsx"], read_only=True)
    assert book.sheetnames == ["units", "summary", "places", "manifest", "说明 notes"]
    rows = list(book["places"].iter_rows(values_only=True))
    heads, data, last = rows[0], rows[1:-1], rows[-1]
    assert len(data) == XLSX_LIMIT
    note = cut_note("places", XLSX_LIMIT, N)
    assert last[0] == note and "places.csv" in note and "results.gpkg" in note
    assert "显示" in note and f"{N:,}" in note
    full = pd.read_csv(written["places.csv"], dtype={"place_id": str})
    assert len(full) == N  # the full table
    first = pd.DataFrame(data, columns=heads)
    assert list(first["place_id"]) == list(full["place_id"][:XLSX_LIMIT])
    assert np.allclose(first["population"].astype(float), full["population"][:XLSX_LIMIT])
    notes = [r[0] for r in book["说明 notes"].iter_rows(min_row=2, values_only=True)]
    assert notes == [f"places: {note}"]
    assert len(list(book["units"].iter_rows())) == 1 + len(big.unit_results)  # not cut


def test_static_map_draws_at_most_the_limit(big: RunResult, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.axes

    drawn: list[int] = []
    texts: list[str] = []
    scatter, text = matplotlib.axes.Axes.scatter, matplotlib.axes.Axes.text

    def spy_scatter(self, x, y, *args, **kwargs):  # type: ignore[no-untyped-def]
        drawn.append(len(x))
        return scatter(self, x, y, *args, **kwargs)

    def spy_text(self, x, y, s, *args, **kwargs):  # type: ignore[no-untyped-def]
        texts.append(str(s))
        return text(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "scatter", spy_scatter)
    monkeypatch.setattr(matplotlib.axes.Axes, "text", spy_text)
    monkeypatch.setenv("COVPLAN_MAP_MAX_POINTS", str(MAP_LIMIT))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_outputs(big, tmp_path / "out", language="zh", formats=["map.png"])
    uncovered = sample_places(big.places, MAP_LIMIT)["place_id"].isin(big.evidence["place_id"])
    assert drawn[0] == int(uncovered.sum()) and max(drawn) <= MAP_LIMIT
    assert "显示 300,000 个居民点中的 2,000 个（随机抽样）" in texts


def test_below_the_limits_everything_is_drawn_and_written(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    small = _benchmark().synthetic_result(3_000)  # type: ignore[attr-defined]
    monkeypatch.setenv("COVPLAN_MAP_MAX_POINTS", "3000")
    monkeypatch.setenv("COVPLAN_XLSX_MAX_ROWS", "3000")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = write_outputs(small, tmp_path / "out", formats=["units.xlsx", "map.html"])
    page = out["map.html"].read_text(encoding="utf-8")
    ids = [f for layer in _layers(page) for f in layer["features"]
           if "place_id" in f["properties"]]
    assert len(ids) == 3_000 and "random sample" not in page
    book = openpyxl.load_workbook(out["units.xlsx"], read_only=True)
    assert "说明 notes" not in book.sheetnames
    assert len(list(book["places"].iter_rows())) == 3_001


@pytest.mark.parametrize(("name", "value"), [("COVPLAN_MAP_MAX_POINTS", "many"),
                                             ("COVPLAN_XLSX_MAX_ROWS", "0"),
                                             ("COVPLAN_XLSX_MAX_ROWS", "2000000")])
def test_a_bad_limit_fails_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              name: str, value: str) -> None:
    small = _benchmark().synthetic_result(500)  # type: ignore[attr-defined]
    monkeypatch.setenv(name, value)
    with pytest.raises(CoverageError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_outputs(small, tmp_path / "out", formats=["units.xlsx", "map.html"])
    assert f"{name}={value!r}" in str(info.value) and "whole number above 0" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
