"""Concurrent users: several app sessions at once share the caches but nothing else.

Four Streamlit sessions of ``app.py`` (``streamlit.testing.v1.AppTest``, one per thread, all in
this process and so against the same ``st.cache_resource`` objects as a server's sessions) each
do a different what-if on the Andorra scenario at the same time:

- session A adds a station at (1.55, 42.55) by coordinates,
- session B adds a station at (1.70, 42.53),
- session C raises the urban limit of BZ-12 from 15 to 25 minutes,
- session D switches to Chinese and changes nothing.

Checks: each session shows the covered population the siting engine gives for its own what-if
(computed independently, outside the app) and nothing of the others'; the shared cached objects
(region layers, road networks, baseline result, siting matrix) hash the same before and after;
the process's resident memory grows by less than a bound; every step finishes within a bound.
The figures (sessions held, latency p50/p95, memory) are printed (run with ``-s``).

Marked ``load``: run with ``pytest -m load tests/test_load.py -s``.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pytest
import scipy.sparse as sp
import shapely
from covplan.progress import Steps
from live_app import CHROMIUM, CHROMIUM_LAUNCH, streamlit_server
from shipped import ANDORRA_SCENARIO

pytestmark = [pytest.mark.load]

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
SESSIONS = 4
#: Bounds: one script run of a session, the whole concurrent phase, memory growth.
STEP_SECONDS = 120.0
PHASE_SECONDS = 300.0
MAX_RSS_GROWTH_MB = 400.0
POINT_A = (1.55, 42.55)
POINT_B = (1.70, 42.53)


# ----------------------------------------------------------------------------------- fingerprints
def _digest(value: Any, h: Any, depth: int, seen: set[int]) -> None:
    """Feed the data of ``value`` (arrays, frames, sparse matrices, nested objects) into h."""
    if id(value) in seen or depth > 6 or isinstance(value, Steps):
        return  # Steps: a progress record, checked apart (see the test)
    if isinstance(value, (str, int, float, bool, type(None))):
        h.update(repr(value).encode())
        return
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            for item in value.ravel():
                _digest(item, h, depth + 1, seen)
        else:
            h.update(str(value.dtype).encode() + str(value.shape).encode())
            h.update(np.ascontiguousarray(value).tobytes())
    elif sp.issparse(value):
        csr = value.tocsr()
        for arr in (csr.data, csr.indices, csr.indptr):
            h.update(np.ascontiguousarray(arr).tobytes())
    elif isinstance(value, shapely.Geometry):
        h.update(shapely.to_wkb(value))
    elif isinstance(value, pd.DataFrame):
        columns = {}
        for col in value.columns:
            series = value[col]
            if series.dtype == object or str(series.dtype) == "geometry":
                series = pd.Series([shapely.to_wkb(v) if isinstance(v, shapely.Geometry)
                                    else repr(v) for v in series], index=value.index)
            columns[str(col)] = series
        frame = pd.DataFrame(columns, index=value.index)
        h.update(repr(list(frame.columns)).encode())
        h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    elif isinstance(value, pd.Series):
        _digest(value.to_frame(), h, depth + 1, seen)
    elif isinstance(value, dict):
        for key in sorted(value, key=repr):
            h.update(repr(key).encode())
            _digest(value[key], h, depth + 1, seen)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _digest(item, h, depth + 1, seen)
    elif hasattr(value, "__dict__"):
        for key in sorted(vars(value)):
            h.update(key.encode())
            _digest(vars(value)[key], h, depth + 1, seen)


def fingerprint(obj: Any) -> dict[str, str]:
    """Hash each attribute of a shared object separately (lazily filled caches show as new keys)."""
    out = {}
    for key, value in sorted(vars(obj).items()):
        h = hashlib.sha256()
        _digest(value, h, 0, set())
        out[key] = h.hexdigest()
    return out


# ----------------------------------------------------------------------------------- sessions
def _covered(at: Any) -> float:
    """The covered-population metric of BZ-12 as shown (e.g. '71,944 (93.0%)')."""
    value = at.metric[0].value
    return float(value.split(" ")[0].replace(",", ""))


def _timed(at: Any, action: Callable[[Any], Any], latencies: list[float]) -> None:
    started = time.perf_counter()
    action(at).run(timeout=STEP_SECONDS)
    latencies.append(time.perf_counter() - started)
    assert not at.exception, [e.message for e in at.exception]


def _add_point(lon: float, lat: float) -> list[Callable[[Any], Any]]:
    """Type the coordinates (each change reruns the page, as in a browser), then click Add."""
    return [lambda at: at.number_input(key="w_lon").set_value(lon),
            lambda at: at.number_input(key="w_lat").set_value(lat),
            lambda at: at.button(key="w_add").click()]


def _threshold(minutes: float) -> Callable[[Any], Any]:
    return lambda at: at.number_input(key="thr|BZ-12|minutes|urban").set_value(minutes)


def _chinese(at: Any) -> Any:
    return at.radio(key="lang").set_value("zh")


@pytest.fixture(scope="module")
def expected() -> dict[str, float]:
    """The covered population of each what-if, from the siting engine outside the app."""
    from covplan.planning import load_region, siting_for, standards_tables

    region = load_region(ANDORRA_SCENARIO)
    tables = standards_tables(region.scenario.standards)
    session = siting_for(region, tables, "BZ-12")
    raised = standards_tables(region.scenario.standards,
                              thresholds={"BZ-12": {"minutes": {"urban": 25.0}}})
    return {
        "baseline": session.add_point(*POINT_A).covered_before,
        "A": session.add_point(*POINT_A).covered_after,
        "B": session.add_point(*POINT_B).covered_after,
        "C": siting_for(region, raised, "BZ-12").add_point(*POINT_A).covered_before,
    }


@pytest.fixture()
def threaded_apptest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let AppTest sessions run in several threads of one process.

    ``AppTest.run`` swaps two process-wide globals for the length of one run and puts them back
    afterwards: ``Runtime._instance`` (a mock runtime) and ``config.get_option`` (a patch that
    says "app test"). With runs overlapping in threads, the first run to finish puts them back
    while the others are still running, and their pages then render as if no runtime existed
    (no elements). A server has one runtime for all its sessions; so here: one mock runtime
    that stays while any session runs, and the "app test" option held for the whole test.
    """
    from unittest.mock import MagicMock

    from streamlit import config
    from streamlit.components.v2.component_manager import BidiComponentManager
    from streamlit.runtime import Runtime
    from streamlit.runtime.caching.storage.dummy_cache_storage import MemoryCacheStorageManager
    from streamlit.runtime.dataframe_source_manager import DataframeSourceManager
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.testing.v1.util import build_mock_config_get_option

    shared = MagicMock(spec=Runtime)
    shared.media_file_mgr = MediaFileManager(MemoryMediaFileStorage("/mock/media"))
    shared.dataframe_source_mgr = DataframeSourceManager()
    shared.cache_storage_manager = MemoryCacheStorageManager()
    shared.bidi_component_registry = BidiComponentManager()

    def instance(cls: type[Runtime]) -> Any:
        return cls._instance if cls._instance is not None else shared

    monkeypatch.setattr(Runtime, "instance", classmethod(instance))
    monkeypatch.setattr(Runtime, "exists", classmethod(lambda cls: True))
    monkeypatch.setattr(config, "get_option",
                        build_mock_config_get_option({"global.appTest": True}))


def test_four_sessions_at_once_share_caches_but_not_results(expected, capsys, threaded_apptest):
    from covplan import planning
    from covplan.app import cache
    from covplan.planning import standards_tables
    from streamlit.testing.v1 import AppTest

    assert expected["A"] != expected["B"] and expected["C"] > expected["baseline"]
    process = psutil.Process()
    latencies: list[float] = []
    first = time.perf_counter()
    warm = AppTest.from_file(str(APP), default_timeout=STEP_SECONDS)
    warm.run()
    assert not warm.exception
    cold_seconds = time.perf_counter() - first
    assert _covered(warm) == pytest.approx(round(expected["baseline"]), abs=0.5)

    # the shared objects every session reads
    region = cache.shared_region(str(ANDORRA_SCENARIO.resolve()))
    tkey = planning.standards_key(standards_tables(region.scenario.standards))
    shared = {
        "region.inputs": region.inputs,
        "region.access": region.access,
        "baseline": cache.shared_baseline(str(ANDORRA_SCENARIO.resolve()), tkey),
        "siting": cache.shared_siting(str(ANDORRA_SCENARIO.resolve()), tkey, "BZ-12"),
    }
    before = {name: fingerprint(obj) for name, obj in shared.items()}
    timings_before = dict(region.access.steps.timings)
    probe = copy.deepcopy(region.inputs)  # the fingerprint sees a one-cell change
    probe.facilities.loc[0, "name"] = "changed"
    assert fingerprint(probe)["facilities"] != before["region.inputs"]["facilities"]
    assert fingerprint(copy.deepcopy(region.inputs)) == before["region.inputs"]
    gc.collect()
    rss_before = process.memory_info().rss

    plans = {
        "A": _add_point(*POINT_A),
        "B": _add_point(*POINT_B),
        "C": [_threshold(25.0)],
        "D": [_chinese],
    }
    apps = {name: AppTest.from_file(str(APP), default_timeout=STEP_SECONDS) for name in plans}
    errors: dict[str, BaseException] = {}
    start = threading.Barrier(len(apps))
    peak_rss = [rss_before]

    def run(name: str) -> None:
        try:
            at = apps[name]
            start.wait(timeout=60)
            _timed(at, lambda a: a, latencies)  # page load
            for action in plans[name]:
                _timed(at, action, latencies)
                peak_rss[0] = max(peak_rss[0], process.memory_info().rss)
        except BaseException as exc:  # reported in the main thread
            errors[name] = exc

    threads = [threading.Thread(target=run, args=(name,), name=f"session-{name}")
               for name in apps]
    phase = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=PHASE_SECONDS)
    phase_seconds = time.perf_counter() - phase
    assert not any(thread.is_alive() for thread in threads), "a session did not finish in time"
    assert not errors, errors

    # each session shows its own what-if and nothing of the others'
    assert _covered(apps["A"]) == pytest.approx(round(expected["A"]), abs=0.5)
    assert _covered(apps["B"]) == pytest.approx(round(expected["B"]), abs=0.5)
    assert _covered(apps["C"]) == pytest.approx(round(expected["C"]), abs=0.5)
    assert _covered(apps["D"]) == pytest.approx(round(expected["baseline"]), abs=0.5)
    plans_held = {name: at.session_state["plans"].current for name, at in apps.items()}
    assert [(c.lon, c.lat) for c in plans_held["A"].candidates] == [POINT_A]
    assert [(c.lon, c.lat) for c in plans_held["B"].candidates] == [POINT_B]
    assert plans_held["C"].candidates == [] and plans_held["D"].candidates == []
    assert plans_held["C"].thresholds == {"BZ-12": {"minutes": {"urban": 25.0}}}
    assert plans_held["A"].thresholds == {} and plans_held["D"].thresholds == {}
    assert apps["D"].session_state["lang"] == "zh" and apps["A"].session_state["lang"] == "en"
    assert apps["D"].title[0].value != apps["A"].title[0].value
    # D looked again after the others: still the baseline
    _timed(apps["D"], lambda a: a, latencies)
    assert _covered(apps["D"]) == pytest.approx(round(expected["baseline"]), abs=0.5)
    assert cache.shared_region(str(ANDORRA_SCENARIO.resolve())) is region  # one shared region

    # the shared objects were read, never changed (attributes filled lazily are new keys)
    after = {name: fingerprint(obj) for name, obj in shared.items()}
    # the one write sessions make to a shared object: the step timings of the region's
    # RoadAccess (a progress record, not data a result depends on) gain time per step run
    timings = region.access.steps.timings
    assert set(timings_before) <= set(timings)
    assert all(timings[k] >= v for k, v in timings_before.items())
    for name in shared:
        common = set(before[name]) & set(after[name])
        changed = sorted(k for k in common if before[name][k] != after[name][k])
        assert not changed, f"shared {name} changed: {changed}"
        assert set(before[name]) <= set(after[name])

    gc.collect()
    rss_after = process.memory_info().rss
    growth_mb = (rss_after - rss_before) / 2**20
    p50, p95 = np.percentile(latencies, [50, 95])
    with capsys.disabled():
        print(f"\n[load] sessions held at once: {len(apps)} (+1 warm-up); script runs: "
              f"{len(latencies)}; first (cold) run {cold_seconds:.1f} s; concurrent phase "
              f"{phase_seconds:.1f} s; latency p50 {p50:.2f} s, p95 {p95:.2f} s, max "
              f"{max(latencies):.2f} s; RSS before {rss_before / 2**20:.0f} MiB, peak "
              f"{peak_rss[0] / 2**20:.0f} MiB, after {rss_after / 2**20:.0f} MiB "
              f"(growth {growth_mb:+.0f} MiB)")
    assert max(latencies) < STEP_SECONDS
    assert growth_mb < MAX_RSS_GROWTH_MB


# ----------------------------------------------------------------------------------- server
PAGE_SECONDS = 90.0


def _rss(pid: int) -> int:
    """Resident memory of a process and its children, in bytes."""
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])


@pytest.fixture()
def server(tmp_path: Path):
    """``streamlit run app.py`` on a free loopback port: ``(url, pid, log)``."""
    log = tmp_path / "streamlit.log"
    with streamlit_server(log) as (url, pid):
        yield url, pid, log


async def _idle(page: Any) -> None:
    """Wait until the session's script run has finished (the app's own test attribute)."""
    await page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']",
                                 state="attached", timeout=PAGE_SECONDS * 1000)


async def _browser_session(browser: Any, url: str, name: str, action: str,
                           out: dict[str, Any]) -> None:
    """One user: open the page, wait for the results, do one what-if, read the metric."""
    context = await browser.new_context(viewport={"width": 1500, "height": 1250},
                                        locale="en-GB",
                                        extra_http_headers={"Accept-Language": "en-GB,en"})
    page = await context.new_page()
    loads, whatifs = out.setdefault("load", []), out.setdefault("whatif", [])
    try:
        started = time.perf_counter()
        await page.goto(url, timeout=60_000)
        metric = page.locator("[data-testid='stMetricValue']").first
        await metric.wait_for(timeout=PAGE_SECONDS * 1000)
        frame = page.frame_locator("iframe[title='streamlit_folium.st_folium']")
        await frame.locator(".leaflet-interactive").first.wait_for(timeout=PAGE_SECONDS * 1000)
        await _idle(page)
        loads.append(time.perf_counter() - started)
        out.setdefault("rss_loaded", []).append(_rss(out["pid"]))
        before = await metric.inner_text()
        if action in ("A", "B"):
            lon, lat = POINT_A if action == "A" else POINT_B
            container = frame.locator(".leaflet-container")
            await container.scroll_into_view_if_needed()
            await page.wait_for_timeout(1000)  # Leaflet's fit-to-bounds animation
            started = time.perf_counter()
            map_frame = next(f for f in page.frames if "st_folium" in f.url)
            x, y = await map_frame.evaluate(
                "([lat, lon]) => { const p = window.map.latLngToContainerPoint([lat, lon]);"
                " return [p.x, p.y]; }", [lat, lon])
            box = await frame.locator(".leaflet-container").bounding_box()
            assert box is not None and 0 < x < box["width"] and 0 < y < box["height"], (x, y)
            await page.mouse.click(box["x"] + x, box["y"] + y)
            await page.wait_for_function(
                "before => { const m = document.querySelector("
                "\"[data-testid='stMetricValue']\"); return m && m.innerText !== before; }",
                arg=before, timeout=PAGE_SECONDS * 1000)
        elif action == "zh":
            started = time.perf_counter()
            await page.get_by_text("中文", exact=True).click()
            await page.get_by_text("卫生服务可及性规划").first.wait_for(timeout=PAGE_SECONDS * 1000)
        if action != "none":
            await _idle(page)
            whatifs.append(time.perf_counter() - started)
        out[name] = {"before": before, "after": await metric.inner_text(), "page": page}
    except Exception as exc:
        await page.screenshot(path=str(out["folder"] / f"session-{name}.png"))
        await context.close()
        raise AssertionError(f"session {name} ({action}): {exc}") from exc


async def _drive(url: str, pid: int, plans: dict[str, str], folder: Path) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    out: dict[str, Any] = {"folder": folder, "pid": pid}
    async with async_playwright() as p:
        browser = await p.chromium.launch(**CHROMIUM_LAUNCH)
        try:
            await asyncio.wait_for(asyncio.gather(*(
                _browser_session(browser, url, name, action, out)
                for name, action in plans.items())), timeout=PHASE_SECONDS)
            # the session that did nothing, looked at again after the others' what-ifs
            idle = out["D"]["page"]
            await idle.reload()
            metric = idle.locator("[data-testid='stMetricValue']").first
            await metric.wait_for(timeout=PAGE_SECONDS * 1000)
            out["D"]["again"] = await metric.inner_text()
            out["sessions"] = len(browser.contexts)
        finally:
            await browser.close()
    return out


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_four_browser_sessions_against_the_server(server, expected, capsys):
    url, pid, log = server
    rss_start = _rss(pid)
    plans = {"A": "A", "B": "B", "C": "zh", "D": "none"}
    started = time.perf_counter()
    out = asyncio.run(_drive(url, pid, plans, log.parent))
    seconds = time.perf_counter() - started
    rss_end = _rss(pid)

    def shown(text: str) -> float:
        return float(text.split(" ")[0].replace(",", ""))

    baseline = round(expected["baseline"])
    for name in plans:
        assert shown(out[name]["before"]) == pytest.approx(baseline, abs=0.5), name
    assert shown(out["A"]["after"]) == pytest.approx(round(expected["A"]), abs=0.5)
    assert shown(out["B"]["after"]) == pytest.approx(round(expected["B"]), abs=0.5)
    assert shown(out["C"]["after"]) == pytest.approx(baseline, abs=0.5)
    assert shown(out["D"]["after"]) == pytest.approx(baseline, abs=0.5)
    assert shown(out["D"]["again"]) == pytest.approx(baseline, abs=0.5)
    assert out["sessions"] == len(plans)
    assert "Traceback" not in log.read_text()
    loads, whatifs = out["load"], out["whatif"]
    assert len(loads) == len(plans) and len(whatifs) == 3
    # memory: from all sessions loaded (shared caches built) to the end of every what-if
    rss_loaded = max(out["rss_loaded"])
    growth = (rss_end - rss_loaded) / 2**20

    def pct(values: list[float]) -> str:
        p50, p95 = np.percentile(values, [50, 95])
        return f"p50 {p50:.2f} s, p95 {p95:.2f} s, max {max(values):.2f} s"

    with capsys.disabled():
        print(f"\n[load/server] {out['sessions']} browser sessions held at once on {url}; "
              f"{seconds:.1f} s in all; first page load (4 at once, cold caches) {pct(loads)}; "
              f"what-if (map click / language) {pct(whatifs)}; server RSS cold "
              f"{rss_start / 2**20:.0f} MiB, all loaded {rss_loaded / 2**20:.0f} MiB, end "
              f"{rss_end / 2**20:.0f} MiB (growth after load {growth:+.0f} MiB)")
    assert max(whatifs) < STEP_SECONDS
    assert growth < MAX_RSS_GROWTH_MB
