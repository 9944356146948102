"""Saved plan files loaded into the app are checked like scenario files.

Each hostile file goes through the page's "Load a scenario file" uploader (``AppTest``); the
page must show a message naming what is wrong, where and how to fix it, with the uploaded
file's own name, names as plain text and no server path, and never an exception.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from covplan.errors import InputError
from covplan.planning import (
    FILE_FORMAT,
    PLAN_MAX_BYTES,
    PLAN_MAX_DEPTH,
    Plan,
    SessionPlans,
    load_plans,
    plain_markdown,
    save_plans,
)
from shipped import SCENARIOS
from streamlit.testing.v1 import AppTest
from test_app import APP, LAT, LON

NAME = "hostile plan.json"


def _document(current: dict[str, Any] | None = None, **named: Any) -> dict[str, Any]:
    return {"format": FILE_FORMAT, "version": 1,
            "current": current if current is not None else {"region": "andorra"},
            "named": named}


def _load(content: bytes) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.file_uploader(key="w_load_file").set_value((NAME, content, "application/json")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _shown(at: AppTest) -> str:
    return "\n".join([e.value for e in at.error] + [w.value for w in at.warning])


# text, then what the page must say (each as plain text, as Markdown escapes it)
HEAD = f'{{"format": "{FILE_FORMAT}", "version": 1, '
DUPLICATE_NAMES = (
    HEAD + '"current": {"region": "andorra"}, '
    '"named": {"**twice**": {"region": "andorra"}, "**twice**": {"region": "andorra"}}}'
).encode()
HOSTILE: dict[str, tuple[bytes, list[str]]] = {
    "duplicate scenario names": (
        DUPLICATE_NAMES, ["named['**twice**']", "is given more than once",
                          "give every entry its own name"]),
    "duplicate station names": (
        json.dumps(_document({"region": "andorra", "candidates": [
            {"name": "S1", "lon": LON, "lat": LAT},
            {"name": "S1", "lon": LON, "lat": LAT}]})).encode(),
        ["current.candidates[1].name", "'S1' is used twice"]),
    "non-numeric threshold": (
        json.dumps(_document({"region": "andorra",
                              "thresholds": {"BZ-12": {"minutes": {"urban": "soon"}}}})).encode(),
        ["current.thresholds['BZ-12'].minutes.urban", "must be a number, got 'soon'",
         "between 0.1 and 1000"]),
    "threshold out of range": (
        json.dumps(_document({"region": "andorra",
                              "thresholds": {"DRIVE-15": {"minutes": 1e6}}})).encode(),
        ["current.thresholds['DRIVE-15'].minutes", "out of range"]),
    "deep nesting": (
        (HEAD + '"current": {"region": "andorra", "extra": ' + "[" * 5000 + "]" * 5000
         + "}}").encode(),
        ["structure", "nest 5002 deep", f"limit of {PLAN_MAX_DEPTH}"]),
    "too large": (
        json.dumps(_document({"region": "andorra", "pad": "x" * PLAN_MAX_BYTES})).encode(),
        ["file size", "over the 1 MiB limit"]),
    "not JSON": (b"{not json", ["line 1 column 2", "not JSON"]),
    "not UTF-8": (b"\xff\xfe{}", ["not UTF-8 text"]),
    "a server path as region": (
        json.dumps(_document({"region": "/tmp/covplan-session-x/upload/scenario.toml"})).encode(),
        ["current.region", "is a file path"]),
    "bad station coordinates and unknown key": (
        json.dumps(_document({"region": "andorra", "candidats": [],
                              "candidates": [{"name": "S1", "lon": "east", "lat": 99}]})).encode(),
        ["current.candidats", "did you mean 'candidates'", "candidates[0].lon",
         "candidates[0].lat"]),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_plan_file_gets_a_message(case: str) -> None:
    content, expected = HOSTILE[case]
    at = _load(content)
    shown = _shown(at)
    assert at.error, f"{case}: no message"
    assert plain_markdown(NAME) in shown  # the uploaded file's own name
    for part in expected:
        assert plain_markdown(part) in shown, (case, part, shown)
    assert "covplan-session-" not in shown and "/tmp" not in shown
    # nothing was loaded: the session's plan is still the page's fresh one
    assert at.session_state["plans"].current.candidates == []
    # the same problems come from the package directly, with the same file name
    with pytest.raises(InputError) as info:
        load_plans(content, source=NAME)
    assert plain_markdown(str(info.value)) in shown


def test_names_show_as_plain_text() -> None:
    at = _load(DUPLICATE_NAMES)
    shown = _shown(at)
    assert "\\*\\*twice\\*\\*" in shown  # escaped: Markdown shows the stars, not bold


def test_valid_plan_loads_and_unknown_region_is_told() -> None:
    plans = SessionPlans(current=Plan(region="andorra"))
    plans.current.add(LON, LAT)
    plans.keep("one station")
    at = _load(save_plans(plans).encode())
    assert not at.error
    assert [c.name for c in at.session_state["plans"].current.candidates] == ["S1"]
    assert "one station" in at.session_state["plans"].named
    assert at.success[0].value == "Scenario file loaded."

    other = SessionPlans(current=Plan(region="atlantis"))
    at = _load(save_plans(other).encode())
    warning = " ".join(w.value for w in at.warning)
    assert plain_markdown("the plan is for the region 'atlantis'") in warning
    shipped = ", ".join(sorted(p.stem for p in SCENARIOS.glob("*.toml")))
    assert "huangpu" in shipped  # every shipped scenario is named, the Chinese demos too
    assert plain_markdown(f"demo regions: {shipped}") in warning
