"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from shipped import ANDORRA_PBF, LIECHTENSTEIN_PBF

# --- travel-time engine (issue 3) --------------------------------------------------------------


#: SYNTHETIC hand-made road network (not real data) for hand-computed checks:
#: A(1)-B(2)-C(3) residential two-way (way 10); B->D primary oneway=yes (way 11);
#: C(3)-D(4) residential two-way (way 12); island E(5)-F(6) residential (way 13) touches nothing;
#: A-D footway (way 14, walkable only).
SYNTHETIC_NODES = {
    1: (1.500, 42.500),
    2: (1.501, 42.500),
    3: (1.502, 42.500),
    4: (1.501, 42.501),
    5: (1.510, 42.510),
    6: (1.511, 42.510),
}
SYNTHETIC_WAYS = {
    10: ([1, 2, 3], {"highway": "residential"}),
    11: ([2, 4], {"highway": "primary", "oneway": "yes"}),
    12: ([3, 4], {"highway": "residential"}),
    13: ([5, 6], {"highway": "residential"}),
    14: ([1, 4], {"highway": "footway"}),
}


def write_synthetic_osm(path: Path) -> Path:
    """Write the SYNTHETIC network above as .osm XML."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="test">']
    for nid, (lon, lat) in SYNTHETIC_NODES.items():
        lines.append(f'  <node id="{nid}" version="1" lat="{lat}" lon="{lon}"/>')
    for wid, (refs, tags) in SYNTHETIC_WAYS.items():
        lines.append(f'  <way id="{wid}" version="1">')
        lines += [f'    <nd ref="{r}"/>' for r in refs]
        lines += [f'    <tag k="{k}" v="{v}"/>' for k, v in tags.items()]
        lines.append("  </way>")
    lines.append("</osm>")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="session", autouse=True)
def session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point COVPLAN_CACHE_DIR at a per-session folder: tests never touch the user's cache.

    Set in ``os.environ``, so subprocesses the tests start (the CLI, the app) inherit it. The
    workers of one run share it (cache files are written atomically and checksummed, and no
    test relies on the cache being warm or cold), so each network is built once per run.
    """
    folder = _run_folder(tmp_path_factory, "covplan-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COVPLAN_CACHE_DIR", str(folder))
        mp.delenv("COVPLAN_CACHE", raising=False)  # the older name, below COVPLAN_CACHE_DIR
        yield folder


@pytest.fixture(scope="session")
def network_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run_folder(tmp_path_factory, "network-cache")


def _run_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder of this test run, shared by its xdist workers (each has its own basetemp)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return tmp_path_factory.mktemp(name)
    folder = tmp_path_factory.getbasetemp().parent / name
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def andorra_drive(network_cache: Path):
    from covplan.engine.network import build_network

    return build_network(ANDORRA_PBF, mode="drive", cache_dir=network_cache)


@pytest.fixture(scope="session")
def synthetic_osm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_osm(tmp_path_factory.mktemp("synthetic") / "synthetic.osm")


@pytest.fixture(scope="session")
def pois():
    """The real health POIs of the Liechtenstein extract (node id, name, type, lon, lat)."""
    import osmium
    import pandas as pd
    from covplan.facility_types import facility_type_from_osm

    pbf = LIECHTENSTEIN_PBF
    rows = []
    for obj in osmium.FileProcessor(str(pbf), osmium.osm.NODE):
        kind = facility_type_from_osm(dict(obj.tags))
        if kind is not None:
            rows.append({"id": f"n{obj.id}", "name": obj.tags.get("name", "unnamed"),
                         "type": kind, "lon": obj.location.x / 1e7, "lat": obj.location.y / 1e7})
    assert rows[0]["id"] == "n6245"  # Liechtensteinisches Landesspital
    return pd.DataFrame(rows)


# --- what runs where (issue 12) ------------------------------------------------------------------
#: Markers of long tests: deselected on a developer's machine, all run in CI (CI=true).
CI_ONLY_MARKERS = ("slow", "browser", "load")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect browser, load and slow tests locally unless ``-m`` or CI asks for them.

    Files holding such tests run first (each file stays whole and in order, so that its
    fixtures are built once): the two workers then finish at about the same time.
    """
    heavy = {item.path for item in items
             if any(item.get_closest_marker(m) for m in CI_ONLY_MARKERS)}
    items.sort(key=lambda item: item.path not in heavy)  # stable: the order within a file stays
    if _in_ci() or config.getoption("markexpr") or config.getoption("keyword"):
        return
    keep, drop = [], []
    for item in items:
        (drop if any(item.get_closest_marker(m) for m in CI_ONLY_MARKERS) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """In CI a skipped test is a failed one: missing data, ../shared or a browser must not hide."""
    outcome = yield
    report = outcome.get_result()
    if _in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {report.longrepr}"
