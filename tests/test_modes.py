"""Travel modes: shipped tables, scenario overrides and their errors, maxspeed, Tobler."""

from __future__ import annotations

import math

import numpy as np
import pytest
from covplan.engine.modes import (
    KNOWN_HIGHWAY_CLASSES,
    default_modes,
    get_mode,
    parse_maxspeed,
    parse_modes,
    tobler_factor,
    tobler_speed_kmh,
)
from covplan.errors import InputError


def test_shipped_modes_follow_the_road_class_rules() -> None:
    modes = default_modes()
    assert set(modes) == {"walk", "drive", "ambulance"}
    drive, walk, amb = modes["drive"], modes["walk"], modes["ambulance"]
    for banned in ("footway", "path", "steps", "cycleway", "bridleway", "construction"):
        assert banned not in drive.speeds_kmh
    for allowed in ("footway", "path", "steps", "track"):
        assert allowed in walk.speeds_kmh
    assert "motorway" not in walk.speeds_kmh
    assert not walk.oneway and drive.oneway
    assert amb.turnout_minutes > 0 and amb.speed_factor > 1
    assert amb.default_direction == "from_facility"
    assert set(drive.speeds_kmh) <= set(KNOWN_HIGHWAY_CLASSES)


def test_override_merges_into_the_shipped_table() -> None:
    modes = parse_modes({"drive": {"speeds_kmh": {"primary": 70, "track": 12}}})
    drive = modes["drive"]
    assert drive.speeds_kmh["primary"] == 70.0
    assert drive.speeds_kmh["track"] == 12.0
    assert drive.speeds_kmh["secondary"] == default_modes()["drive"].speeds_kmh["secondary"]
    assert modes["walk"] == default_modes()["walk"]
    assert drive.settings_key() != default_modes()["drive"].settings_key()


def test_every_problem_is_listed_with_its_key_path() -> None:
    with pytest.raises(InputError) as err:
        parse_modes(
            {
                "drive": {"speeds_kmh": {"primary": -5, "highway_x": 30}, "oneway": "yes"},
                "ambulance": {"turnout_minutes": -1, "colour": "red"},
                "bike": {},
            }
        )
    wheres = {p.where: p for p in err.value.problems}
    assert set(wheres) == {
        "modes.drive.speeds_kmh.primary",
        "modes.drive.speeds_kmh.highway_x",
        "modes.drive.oneway",
        "modes.ambulance.turnout_minutes",
        "modes.ambulance.colour",
        "modes.bike",
    }
    text = str(err.value)
    assert "modes.drive.speeds_kmh.primary: must be a positive number, got -5" in text
    assert "unknown road class 'highway_x'" in text and "residential" in text  # known listed
    assert "unknown mode 'bike'" in text and "walk, drive, ambulance" in text


def test_get_mode_with_an_unknown_road_class_fails_clearly() -> None:
    with pytest.raises(InputError, match=r"modes\.walk\.speeds_kmh\.sidewalk: unknown road class"):
        get_mode("walk", {"speeds_kmh": {"sidewalk": 4}})


@pytest.mark.parametrize(
    ("raw", "kmh"),
    [
        ("50", 50.0),
        ("30 mph", 30 * 1.609344),
        ("FR:urban", 50.0),
        ("DE:zone30", 30.0),
        ("50;70", 50.0),
        (["60", "80"], 60.0),
        ("none", None),
        ("signals", None),
        ("fast", None),
        (None, None),
    ],
)
def test_parse_maxspeed(raw: object, kmh: float | None) -> None:
    got = parse_maxspeed(raw)
    assert (got is None) if kmh is None else got == pytest.approx(kmh)


def test_maxspeed_used_only_when_plausible() -> None:
    drive, amb, walk = (default_modes()[k] for k in ("drive", "ambulance", "walk"))
    assert drive.edge_speed_kmh("primary") == 60.0
    assert drive.edge_speed_kmh("primary", "80") == 80.0
    assert drive.edge_speed_kmh("primary", "500") == 60.0  # implausible: table speed
    assert drive.edge_speed_kmh("primary", "2") == 60.0
    assert drive.edge_speed_kmh("footway") is None
    assert amb.edge_speed_kmh("primary", "80") == pytest.approx(80 * amb.speed_factor)
    assert walk.edge_speed_kmh("primary", "80") == walk.speeds_kmh["primary"]


def test_tobler_by_hand() -> None:
    # Tobler (1993): W = 6 exp(-3.5 |S + 0.05|); fastest (6 km/h) at 5 % downhill
    assert tobler_speed_kmh(-0.05) == pytest.approx(6.0)
    assert tobler_speed_kmh(0.0) == pytest.approx(6 * math.exp(-0.175))
    assert tobler_speed_kmh(0.2) == pytest.approx(6 * math.exp(-3.5 * 0.25))
    assert tobler_factor(0.0) == pytest.approx(1.0)
    f = tobler_factor(np.array([0.1, -0.1]))
    assert f[0] < 1 and f[1] > f[0]
