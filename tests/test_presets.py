"""Every shipped preset loads, and every quoted value equals the number in its source document.

The seed documents live beside the repository in ../shared/docs/seeds/; each preset quote must
occur in its seed verbatim, and each threshold of the rule must appear as a number in the quote
(万 = 10,000; 一 = 1; "0.8万-2万" and "2-10万" are ranges with 万 on the upper bound).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from covplan.standards import (
    DistanceRule,
    PopulationBandRule,
    PresenceRule,
    RatioRule,
    TravelTimeRule,
    list_presets,
    load_preset,
    preset_info,
)
from covplan.standards.presets import preset_tables

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "docs" / "seeds"
STANDARDS_DOC = SEEDS.parent / "standards-from-plans.md"
EXPECTED = {
    "dadukou": "000_4feffd95a8c6be53.txt",
    "yongchuan": "001_9353a596acdf4576.txt",
    "bazhong": "002_4e352a708a2be2a6.txt",
    "shapingba": "003_2d4d48866867521e.txt",
    "dazu": "004_dec91b6d16cc7e29.txt",
}
_CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8,
              "九": 9, "十": 10}  # fmt: skip

needs_seeds = pytest.mark.skipif(
    not SEEDS.is_dir(), reason=f"seed documents not found at {SEEDS} (../shared beside the repo)"
)


def numbers_in(quote: str) -> set[float]:
    """Return every number written in a quote, with 万 (x 10,000) applied."""
    found: set[float] = set()
    # ranges whose 万 is written only after the upper bound: "2-10万" means 20,000-100,000
    for lo, hi in re.findall(r"(\d+(?:\.\d+)?)\s*[-–—~]\s*(\d+(?:\.\d+)?)\s*万", quote):
        found |= {float(lo) * 1e4, float(hi) * 1e4}
    for num, wan in re.findall(r"(\d+(?:\.\d+)?)\s*(万?)", quote):
        found.add(float(num) * (1e4 if wan else 1.0))
    for char, value in _CN_DIGITS.items():
        if re.search(char + "[所个家]", quote):
            found.add(float(value))
    return found


def rule_values(rule: object) -> list[float]:
    """Return the numbers a rule takes from its document."""
    if isinstance(rule, TravelTimeRule):
        m = rule.minutes
        return list(m.values()) if isinstance(m, dict) else [float(m)]
    if isinstance(rule, DistanceRule):
        k = rule.km
        return list(k.values()) if isinstance(k, dict) else [float(k)]
    if isinstance(rule, PresenceRule):
        values = [float(rule.min_count)]
        if rule.max_count is not None:
            values.append(float(rule.max_count))
        if rule.exempt_below_population is not None:
            values.append(rule.exempt_below_population)
        return values
    if isinstance(rule, PopulationBandRule):
        return [rule.lower, rule.upper]
    if isinstance(rule, RatioRule):
        return [rule.target]
    if hasattr(rule, "quoted_values"):  # share, attribute_ratio, tiers: the rule says
        return rule.quoted_values()
    raise AssertionError(f"unknown rule {rule!r}")


def test_the_five_presets_are_shipped() -> None:
    assert list_presets() == sorted(EXPECTED)
    for name, seed in EXPECTED.items():
        assert preset_info(name)["seed"] == seed


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_loads_with_ids_sources_and_quotes(name: str) -> None:
    rules = load_preset(name)
    assert rules, name
    prefix = {"dadukou": "DDK-", "yongchuan": "YC-", "bazhong": "BZ-", "shapingba": "SPB-",
              "dazu": "DZ-"}[name]  # fmt: skip
    for rule in rules:
        assert rule.id.startswith(prefix)
        assert rule.source == EXPECTED[name]
        assert rule.quote and rule.title


@needs_seeds
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_quote_is_verbatim_and_holds_the_rule_values(name: str) -> None:
    raw = {t["id"]: t for t in preset_tables(name)}
    doc = STANDARDS_DOC.read_text(encoding="utf-8") if STANDARDS_DOC.is_file() else ""
    for rule in load_preset(name):
        text = (SEEDS / rule.source).read_text(encoding="utf-8")
        assert rule.quote in text, f"{rule.id}: quote not found verbatim in {rule.source}"
        if doc:  # the id is a row of the standards table, citing the same seed file
            row = next(line for line in doc.splitlines() if line.startswith(f"| {rule.id} |"))
            assert rule.source in row
        implicit = "implicit_count" in raw[rule.id].get("params", {})
        numbers = numbers_in(rule.quote)
        for value in rule_values(rule):
            if implicit and isinstance(rule, PresenceRule) and value == rule.min_count:
                continue
            assert any(abs(value - n) < 1e-9 for n in numbers), (
                f"{rule.id}: value {value:g} is not written in its quote {rule.quote!r} "
                f"(numbers there: {sorted(numbers)})"
            )
        if isinstance(rule, RatioRule):
            assert rule.per == (10000.0 if "每万" in rule.quote else 1000.0), rule.id


@needs_seeds
def test_number_reader_on_the_band_quotes() -> None:
    ddk06 = "其他社区原则上每0.8万-2万人规划设置1个社区卫生服务站"
    assert {8000.0, 20000.0, 1.0} <= numbers_in(ddk06)
    bz02 = "城镇每2-10万常住居民设置一个社区卫生服务中心（社区医院）"
    assert {20000.0, 100000.0, 1.0} <= numbers_in(bz02)
    assert 30000.0 not in numbers_in(bz02)  # a bare "2" stays 2, not 20,000 twice


def test_central_values_as_written() -> None:
    """The headline numbers, read from the presets, against the standards table by hand."""
    by_id = {r.id: r for name in EXPECTED for r in load_preset(name)}
    assert by_id["BZ-12"].minutes == {"urban": 15.0} and by_id["BZ-12"].mode == "ambulance"
    assert by_id["BZ-13"].minutes == {"rural": 30.0}
    assert (by_id["DDK-06"].lower, by_id["DDK-06"].upper) == (8000.0, 20000.0)
    assert by_id["DDK-06"].exclude_hosts_of == ("community_health_centre",)
    assert (by_id["BZ-02"].lower, by_id["BZ-02"].upper) == (20000.0, 100000.0)
    assert by_id["DDK-01"].exempt_below_population == 800.0
    assert by_id["DDK-01"].exempt_near is None  # "临近" has no number: off unless set
    assert by_id["DDK-05"].min_count == by_id["DDK-05"].max_count == 1
    assert by_id["BZ-09"].exempt_if_hosts == ("township_health_centre",)
    assert by_id["DDK-10"].target == 7.9 and by_id["YC-08"].target == 9.5
    assert by_id["YC-09"].target == 3.6  # Annex 1; the body's 4 is documented as a param
    assert by_id["DZ-15"].target == 3.0 and by_id["DZ-16"].target == 3.21
    assert by_id["SPB-01"].minutes == 15.0 and by_id["SPB-02"].km == 5.0
    assert by_id["SPB-02"].distance == "road"
