"""Standards tables: good ones build rules; bad ones report every problem with its key path."""

from __future__ import annotations

import tomllib

import pytest
from covplan.errors import InputError
from covplan.facility_types import FACILITY_GROUPS
from covplan.standards import (
    PopulationBandRule,
    PresenceRule,
    RatioRule,
    TravelTimeRule,
    load_preset,
    parse_standards,
)


def test_a_scenario_standards_block_parses() -> None:
    text = """
[[standards]]
id = "emergency"
rule = "travel_time"
facility_types = ["emergency"]
minutes = { urban = 15, rural = 30 }
mode = "ambulance"
required_share = 0.95

[[standards]]
id = "stations"
rule = "population_band"
facility_types = ["community_health_station"]
lower = 8000
upper = 20000
level = "parish"

[[standards]]
id = "one-centre"
rule = "presence"
facility_types = ["community_health_centre"]
level = "township"
exactly = 1

[[standards]]
id = "beds"
rule = "ratio"
attribute = "beds"
target = 7.9
"""
    rules = parse_standards(tomllib.loads(text)["standards"])
    travel, band, presence, ratio = rules
    assert isinstance(travel, TravelTimeRule)
    assert travel.minutes == {"urban": 15.0, "rural": 30.0} and travel.required_share == 0.95
    assert travel.facility_types == FACILITY_GROUPS["emergency"]  # the group is expanded
    assert isinstance(band, PopulationBandRule) and band.level == "parish"
    assert isinstance(presence, PresenceRule)
    assert (presence.min_count, presence.max_count) == (1, 1)
    assert isinstance(ratio, RatioRule) and ratio.per == 1000 and ratio.level == "county"


def test_every_problem_is_listed_with_its_key_path() -> None:
    tables = [
        {"id": "a", "rule": "travel_time", "facility_types": ["hospital"], "minutes": 15},
        {"id": "b", "rule": "travel_time", "facility_types": ["hospital"], "minutes": 0},
        {"id": "c", "rule": "travel_time", "facility_types": ["hospital"], "minutes": -5},
        {"id": "d", "rule": "isochrone"},
        {"id": "e", "rule": "presence", "facility_types": ["clinik"], "min_count": 2,
         "max_count": 1},
        {"id": "f", "rule": "population_band", "facility_types": ["community_health_station"],
         "lower": 20000, "upper": 8000, "colour": "red"},
        {"id": "g", "rule": "travel_time", "facility_types": ["hospital"],
         "minutes": {"urban": 15, "suburban": 20, "rural": "30"}, "required_share": 1.5},
        {"id": "h", "rule": "ratio", "target": 7.9},
        {"id": "a", "rule": "distance", "facility_types": ["hospital"], "km": 5,
         "distance": "as the crow flies"},
    ]  # fmt: skip
    with pytest.raises(InputError) as info:
        parse_standards(tables)
    where = {p.where: p for p in info.value.problems}
    text = str(info.value)
    assert "standards[1].minutes: must be a positive number or a table" in text
    assert "standards[2].minutes: must be a positive number or a table {urban = .., rural = ..}," \
           " got -5" in text
    assert "unknown rule 'isochrone'" in where["standards[3].rule"].what
    assert "travel_time, distance, presence, population_band, ratio" in where[
        "standards[3].rule"].fix
    assert "unknown facility type 'clinik'" in where["standards[4].facility_types"].what
    assert "village_clinic" in where["standards[4].facility_types"].fix  # known types listed
    assert "must be >= min_count (2), got 1" in where["standards[4].max_count"].what
    assert "must be greater than lower (20000)" in where["standards[5].upper"].what
    assert "unknown key" in where["standards[5].colour"].what
    assert "unknown urban/rural class" in where["standards[6].minutes.suburban"].what
    assert "got '30'" in where["standards[6].minutes.rural"].what
    assert "(0, 1]" in where["standards[6].required_share"].what
    assert "missing" in where["standards[7].attribute"].what
    assert "road, straight_line" in where["standards[8].distance"].what
    assert "rule id 'a' is used 2 times" in where["standards"].what
    assert len(info.value.problems) == 13


def test_presets_can_be_pulled_in_whole_or_in_part_and_overridden() -> None:
    whole = parse_standards([{"preset": "bazhong"}])
    assert [r.id for r in whole] == [r.id for r in load_preset("bazhong")]
    part = parse_standards([
        {"preset": "bazhong", "only": ["BZ-12"], "override": {"BZ-12": {"mode": "drive"}}},
        {"preset": "dadukou", "only": ["DDK-01"],
         "override": {"DDK-01": {"exempt_near": 10, "unit_name_pattern": "村"}}},
    ])  # fmt: skip
    assert [r.id for r in part] == ["BZ-12", "DDK-01"]
    assert part[0].mode == "drive" and part[0].minutes == {"urban": 15.0}
    assert part[1].exempt_near == 10.0 and part[1].exempt_below_population == 800.0
    assert part[1].unit_name_pattern == "村"


def test_bad_preset_references_are_reported() -> None:
    with pytest.raises(InputError) as info:
        parse_standards([
            {"preset": "chengdu"},
            {"preset": "bazhong", "only": ["BZ-99"], "extra": 1},
            {"preset": "dadukou", "override": {"DDK-06": {"lower": -1}}},
            {"preset": "shapingba"}, {"preset": "shapingba", "only": ["SPB-01"]},
        ])  # fmt: skip
    where = {p.where: p for p in info.value.problems}
    assert "known presets: bazhong, dadukou, dazu, shapingba, yongchuan" in where[
        "standards[0].preset"].fix
    assert "has no rule 'BZ-99'" in where["standards[1].only[0]"].what
    assert "unknown key" in where["standards[1].extra"].what
    assert "got -1" in where["standards[2].override.DDK-06.lower"].what
    assert any("'SPB-01' is used 2 times" in p.what for p in info.value.problems)


def test_scenario_loader_delegates_to_parse_standards() -> None:
    """covplan.scenario calls parse_standards(tables, where="standards")."""
    with pytest.raises(InputError) as info:
        parse_standards([{"rule": "ratio", "attribute": "beds", "target": "high"}],
                        where="standards")
    assert [p.where for p in info.value.problems] == ["standards[0].target"]
    assert parse_standards([], where="standards") == []
    with pytest.raises(InputError, match="must be a table"):
        parse_standards([5])  # type: ignore[list-item]


def test_rule_given_as_a_list_is_a_problem_not_a_crash():
    from covplan.errors import InputError
    from covplan.standards import parse_standards

    with pytest.raises(InputError) as info:
        parse_standards([{"rule": ["travel_time"], "id": "X"}])
    assert [p.where for p in info.value.problems] == ["standards[0].rule"]
