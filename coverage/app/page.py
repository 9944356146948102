"""The app's page: widgets, options and messages over :mod:`covplan.planning` (no logic here).

Every change a user makes goes into their own :class:`~covplan.planning.Plan` in
``st.session_state`` (:mod:`covplan.app.state`); the region, baseline and siting matrix come
from the shared caches of :mod:`covplan.app.cache` and are only read.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st
from covplan import planning
from covplan.app import cache
from covplan.app.i18n import t
from covplan.app.state import folder as _folder
from covplan.app.state import language as _lang
from covplan.app.state import plans as _plans
from covplan.app.state import public as _public
from covplan.app.state import reset_widgets as _reset_widgets
from covplan.app.state import session as _ss
from covplan.errors import CoverageError
from covplan.labels import LANGUAGES, facility_type_label
from covplan.planning import (
    UPLOAD_CRS,
    Plan,
    SessionPlans,
    list_presets,
    load_plans,
    markdown_label,
    plain_label,
    plain_markdown,
    preset_info,
    save_plans,
    standards_tables,
    write_upload_scenario,
)
from streamlit_folium import st_folium

__all__ = ["render"]

UPLOAD = "__upload__"
DOWNLOADS = (
    ("map.html", "download_map", "text/html"),
    ("units.csv", "download_units_csv", "text/csv"),
    ("units.xlsx", "download_xlsx",
     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("places.csv", "download_places", "text/csv"),
    ("results.gpkg", "download_gpkg", "application/geopackage+sqlite3"),
    ("report.html", "download_report", "text/html"),
    ("map.png", "download_png", "image/png"),
)


def _error(exc: Exception) -> None:
    st.error(t("error", _lang(), message=plain_markdown(_public(str(exc)))))


def _scenario_files() -> dict[str, Path]:
    """Return the demo scenarios (none, with a warning in the sidebar, when there are none)."""
    try:
        return cache.scenario_files()
    except CoverageError as exc:
        st.sidebar.warning(plain_markdown(str(exc)))
        return {}


# ---------------------------------------------------------------------------- sidebar
def _language_picker() -> str:
    lang = _lang()
    st.sidebar.radio(
        t("language", lang), sorted(LANGUAGES, key=lambda x: x != "zh"), key="lang",
        horizontal=True,
        format_func=lambda x: {"zh": "中文", "en": "English"}[x],
    )
    return _lang()


def _region_picker(lang: str) -> str | None:
    """Return the scenario path of the chosen region (None until an upload is loaded)."""
    files = _scenario_files()
    options = [*files, UPLOAD]
    choice = st.sidebar.selectbox(
        t("region", lang), options, key="region",
        format_func=lambda k: (t("upload_option", lang) if k == UPLOAD
                               else planning.scenario_title(files[k])),
    )
    if choice != UPLOAD:
        return str(files[choice])
    _upload_form(lang)
    return _ss().get("upload_path")


def _upload_form(lang: str) -> None:
    with st.sidebar.form("upload"):
        st.markdown(f"**{t('upload_header', lang)}**")
        uploads = {
            "facilities": st.file_uploader(t("facilities_file", lang), key="up_facilities"),
            "boundaries": st.file_uploader(t("boundaries_file", lang), key="up_boundaries"),
            "population": st.file_uploader(t("population_file", lang), key="up_population"),
            "network": st.file_uploader(t("network_file", lang), key="up_network"),
        }
        crs = st.selectbox(t("crs", lang), UPLOAD_CRS, key="up_crs")
        id_column = st.text_input(t("id_column", lang), "unit_id", key="up_id")
        name_column = st.text_input(t("name_column", lang), "name", key="up_name")
        population_column = st.text_input(t("population_column", lang), "population",
                                          key="up_pop")
        level = st.text_input(t("level", lang), "township", key="up_level")
        preset = st.selectbox(t("standards", lang), list_presets(), key="up_preset")
        if not st.form_submit_button(t("load_upload", lang)):
            return
    files = {role: (f.name, f.getvalue()) for role, f in uploads.items() if f is not None}
    _ss()["upload_names"] = planning.upload_names(_folder().path, files)
    try:
        path = write_upload_scenario(
            _folder().path, files, crs=crs, id_column=id_column, name_column=name_column,
            level=level, population_column=population_column, preset=preset,
        )
        with st.spinner(t("loading", lang)):
            cache.shared_region(str(path))
    except CoverageError as exc:
        _ss().pop("upload_path", None)
        st.sidebar.error(t("error", lang, message=plain_markdown(_public(str(exc)))))
        return
    _ss()["upload_path"] = str(path)


def _standards_panel(lang: str, region: planning.Region, plan: Plan) -> list[dict[str, Any]]:
    """Draw the preset choice and threshold inputs; return the plan's standards tables."""
    st.sidebar.subheader(t("standards", lang))
    presets = ["", *list_presets()]
    if _ss().get("w_preset") not in presets:
        _ss()["w_preset"] = ""

    def label(name: str) -> str:
        if not name:
            return t("scenario_standards", lang)
        return t("preset_label", lang, name=f"{name} · {preset_info(name).get('title', '')}")

    preset = st.sidebar.selectbox(t("standards_source", lang), presets, key="w_preset",
                                  format_func=label)
    plan.preset = preset or None
    plain = standards_tables(region.scenario.standards, preset=plan.preset)
    low, high = planning.THRESHOLD_RANGE
    fields: list[planning.ThresholdField] = []
    values: list[float] = []
    with st.sidebar.expander(t("edit_thresholds", lang)):
        for rule in planning.travel_rules(planning.plan_rules(region, plain)):
            st.caption(f"{rule.id} · {planning.rule_title(rule, lang)}")
            for spot in planning.threshold_fields(rule):
                name = f"{rule.id} {spot.area} ({t(spot.attr, lang)})".replace("  ", " ")
                values.append(st.number_input(
                    name, min_value=low, max_value=high, value=spot.value, step=1.0,
                    key=f"thr|{rule.id}|{spot.attr}|{spot.area}"))
                fields.append(spot)
    edits = planning.threshold_edits(fields, values)
    plan.thresholds = edits
    return standards_tables(region.scenario.standards, preset=plan.preset, thresholds=edits)


# ---------------------------------------------------------------------------- main area
def _siting_controls(lang: str, region: planning.Region, rules: list, plan: Plan) -> Any:
    travel = planning.siting_rules(rules)
    if not travel:
        st.info(t("no_travel_rule", lang))
        plan.siting_rule = None
        return None
    ids = [r.id for r in travel]
    by_id = {r.id: r for r in travel}
    if _ss().get("w_siting") not in ids:
        _ss()["w_siting"] = ids[0]
    cols = st.columns([2, 2, 3])
    rid = cols[0].selectbox(
        t("siting_rule", lang), ids, key="w_siting",
        format_func=lambda i: f"{i} · {planning.rule_title(by_id[i], lang)}",
    )
    rule = by_id[rid]
    types = list(rule.facility_types)
    if _ss().get("w_type") not in types:
        _ss()["w_type"] = types[0]
    cols[1].selectbox(
        t("new_station_type", lang), types, key="w_type",
        format_func=lambda k: facility_type_label(k, language=lang),
    )
    names = planning.facility_names(region)
    _ss()["w_closed"] = [f for f in _ss().get("w_closed", []) if f in names]
    cols[2].multiselect(
        t("close_existing", lang), list(names), key="w_closed",
        placeholder=t("choose", lang),
        format_func=lambda f: f"{plain_label(names.get(f))} ({plain_label(f)})",
    )
    plan.siting_rule = rule.id
    plan.station_type = str(_ss()["w_type"])
    plan.closed = list(_ss()["w_closed"])
    return rule


def _add_point(plan: Plan, siting: Any, lon: float, lat: float) -> bool:
    """Add a candidate after checking it reaches the roads; show why not otherwise."""
    try:
        if siting is not None:
            siting.point_row(lon, lat)
        plan.add(lon, lat)
    except CoverageError as exc:
        _ss()["point_error"] = str(exc)
        return False
    _ss().pop("point_error", None)
    _ss().pop("exports", None)
    return True


def _plan_result(region: planning.Region, tables: list, tkey: str, plan: Plan,
                 baseline: Any) -> Any:
    if not plan.candidates and not plan.closed:
        return baseline
    key = (region.key, tkey, plan.edits_key)
    memo = _ss().setdefault("plan_memo", {})
    if key not in memo:
        memo.clear()
        memo[key] = planning.evaluate_session_plan(region, tables, plan)
    return memo[key]


def _metrics(lang: str, rule: Any, whatif: Any, baseline: Any, result: Any) -> None:
    cols = st.columns(3)
    if rule is not None and whatif is not None:
        share = whatif.covered_after / max(planning.rule_population(baseline, rule.id), 1e-9)
        cols[0].metric(t("covered", lang, rule=rule.id),
                       f"{whatif.covered_after:,.0f} ({share:.1%})",
                       delta=f"{whatif.delta:+,.0f}" if whatif.delta else None)
        cols[0].caption(t("whatif_time", lang, ms=1000 * whatif.seconds))
    passing, total = planning.units_passing(result)
    base_passing, _ = planning.units_passing(baseline)
    cols[1].metric(t("units_passing", lang), f"{passing} / {total}",
                   delta=(passing - base_passing) or None)
    met, base_met = planning.rules_met(result), planning.rules_met(baseline)
    cols[2].metric(t("rules_passing", lang), f"{met} / {len(result.summary)}",
                   delta=(met - base_met) or None)
    comparison = planning.compare_before_after(
        baseline, result, labels=(t("before", lang), t("after", lang), t("delta", lang)),
        language=lang)
    st.dataframe(comparison.T, width="stretch", key="metrics_table")


def _map(lang: str, path: str, tkey: str, plan: Plan, region: planning.Region, siting: Any,
         whatif: Any) -> None:
    st.subheader(t("map", lang))
    st.caption(t("click_hint", lang))
    fmap = copy.deepcopy(cache.shared_map(path, tkey, lang))
    out = st_folium(
        fmap, key="map", height=600, use_container_width=True,
        returned_objects=["last_clicked"],
        feature_group_to_add=planning.plan_map_layer(region, plan, whatif,
                                                     _ss().get("selected_unit")),
    )
    st.caption(t("attribution", lang))
    click = (out or {}).get("last_clicked")
    if click and click != _ss().get("last_click"):
        _ss()["last_click"] = click
        if _add_point(plan, siting, float(click["lng"]), float(click["lat"])):
            st.rerun()


def _take_click(plan: Plan, siting: Any) -> None:
    """Add the station of a map click before anything is drawn, so one page run shows it.

    ``st_folium`` keeps its last value in the session state under its key; reading it here
    saves the second page run that reacting after the map is drawn would need.
    """
    click = (_ss().get("map") or {}).get("last_clicked")
    if click and click != _ss().get("last_click"):
        _ss()["last_click"] = click
        _add_point(plan, siting, float(click["lng"]), float(click["lat"]))


def _candidates(lang: str, plan: Plan, siting: Any, region: planning.Region) -> None:
    st.subheader(t("candidates", lang))
    if _ss().get("point_error"):
        st.warning(t("point_error", lang, message=_ss()["point_error"]))
    lon, lat = planning.region_centre(region)
    cols = st.columns([2, 2, 1])
    if _ss().get("w_point_region") != region.key:  # another region's point never stays
        _ss().update(w_lon=lon, w_lat=lat, w_point_region=region.key)
    cols[0].number_input(t("lon", lang), format="%.5f", step=0.001, key="w_lon")
    cols[1].number_input(t("lat", lang), format="%.5f", step=0.001, key="w_lat")
    cols[2].button(  # the callback reads the inputs' values at click time
        t("add_station", lang), key="w_add",
        on_click=lambda: _add_point(plan, siting, float(_ss()["w_lon"]), float(_ss()["w_lat"])),
    )
    for cand in list(plan.candidates):
        row = st.columns([3, 1])
        row[0].write(f"**{markdown_label(cand.name)}** · {cand.lon:.5f}, {cand.lat:.5f}")
        row[1].button(t("remove", lang, name=markdown_label(cand.name)),
                      key=f"rm|{cand.name}",
                      on_click=_remove(plan, cand.name))
    if plan.candidates:
        st.button(t("clear", lang), key="w_clear", on_click=_clear(plan))


def _remove(plan: Plan, name: str) -> Callable[[], None]:
    def callback() -> None:
        plan.remove(name)
        _ss().pop("exports", None)
    return callback


def _clear(plan: Plan) -> Callable[[], None]:
    def callback() -> None:
        plan.candidates = []
        _ss().pop("exports", None)
    return callback


def _unit_table(lang: str, baseline: Any, result: Any, whatif: Any) -> None:
    with st.expander(t("standards_levels", lang)):
        st.dataframe(planning.standards_table(result, language=lang), width="stretch",
                     hide_index=True)
    st.subheader(t("results", lang))
    st.caption(t("select_hint", lang))
    table = planning.unit_table(
        baseline, result, status_label=lambda s: t(s, lang),
        per_unit=whatif.per_unit if whatif is not None else None,
        labels=(t("before", lang), t("after", lang), t("delta", lang)))
    event = st.dataframe(table, width="stretch", hide_index=True, on_select="rerun",
                         selection_mode="single-row", key="unit_table")
    rows = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    selected = str(table["unit_id"].iloc[rows[0]]) if rows else None
    if selected != _ss().get("selected_unit"):
        _ss()["selected_unit"] = selected
        st.rerun()


def _propose(lang: str, plan: Plan, siting: Any) -> None:
    st.subheader(t("propose", lang))
    cols = st.columns([1, 1, 1])
    n = cols[0].number_input(t("n_sites", lang), 1, 20, 3, key="w_n")
    method = cols[1].selectbox(t("method", lang), ["mclp", "pmedian", "lscp"], key="w_method",
                               format_func=lambda m: t(f"method_{m}", lang))
    if cols[2].button(t("run_propose", lang), key="w_propose"):
        bar = st.progress(0.05, text=t("proposing", lang))
        with st.spinner(t("proposing", lang)):
            try:
                proposal = siting.propose(int(n), method=method)
            except CoverageError as exc:
                bar.empty()
                _error(exc)
                return
        bar.progress(1.0, text=proposal.result.summary())
        _ss()["proposal"] = proposal
    proposal = _ss().get("proposal")
    if proposal is None:
        return
    sites = proposal.sites
    if len(sites):
        last = sites.iloc[-1]
        st.success(t("proposal_result", lang, n=len(sites), covered=last["covered_population"],
                     share=last["covered_share"]))
    st.dataframe(planning.proposal_table(sites), hide_index=True, width="stretch",
                 key="proposal_table")

    def add_all() -> None:
        for geom in _ss()["proposal"].sites.geometry:
            plan.add(geom.x, geom.y)
        _ss().pop("exports", None)

    st.button(t("add_proposals", lang), key="w_add_proposals", on_click=add_all)


def _scenarios(lang: str, plans: SessionPlans, region: planning.Region, path: str,
               baseline: Any, result: Any) -> None:
    st.subheader(t("scenarios", lang))
    cols = st.columns([2, 1])
    cols[0].text_input(t("scenario_name", lang), key="w_scenario_name")

    def keep() -> None:  # callbacks read widget values at click time, from session state
        try:
            plans.keep(str(_ss().get("w_scenario_name", "")))
        except CoverageError as exc:
            _ss()["scenario_error"] = str(exc)
        else:
            _ss().pop("scenario_error", None)

    cols[1].button(t("save_named", lang), key="w_keep", on_click=keep)
    if _ss().get("scenario_error"):
        st.warning(_ss()["scenario_error"])
    results = {t("baseline", lang): baseline, t("current", lang): result}
    for kept_name, kept in plans.named.items():
        if kept.region != plans.current.region:
            continue
        try:
            tables = standards_tables(region.scenario.standards, preset=kept.preset,
                                      thresholds=kept.thresholds)
            results[kept_name] = _named_result(region, tables, kept)
        except CoverageError as exc:
            _error(exc)
    if len(results) > 2:
        st.markdown(f"**{t('compare', lang)}**")
        st.dataframe(planning.compare_results(results, language=lang), width="stretch",
                     key="compare_table")
        cols = st.columns([2, 1])
        cols[0].selectbox(t("restore", lang), list(plans.named), key="w_restore")

        def restore() -> None:
            plans.restore(str(_ss()["w_restore"]))
            _reset_widgets(plans.current)

        cols[1].button(t("restore_button", lang), key="w_restore_button", on_click=restore)


def _named_result(region: planning.Region, tables: list, plan: Plan) -> Any:
    key = (region.key, planning.standards_key(tables), plan.edits_key)
    memo = _ss().setdefault("named_memo", {})
    if key not in memo:
        memo[key] = planning.evaluate_session_plan(region, tables, plan)
    return memo[key]


def _files(lang: str, plans: SessionPlans) -> None:
    cols = st.columns(2)
    cols[0].download_button(t("save_file", lang), save_plans(plans), file_name="plan.json",
                            mime="application/json", key="w_save_file")

    def load() -> None:
        upload = _ss().get("w_load_file")
        if upload is None:
            return
        try:
            loaded = load_plans(upload.getvalue(), source=upload.name)
        except CoverageError as exc:
            _ss()["load_error"] = str(exc)
            return
        _ss().pop("load_error", None)
        try:
            files = cache.scenario_files()
        except CoverageError:
            files = {}
        region = loaded.current.region
        if region in files:
            _ss()["region"] = region
        elif region != _ss().get("region_name"):
            _ss()["load_warning"] = t("plan_other_region", _lang(), file=upload.name,
                                      region=region, known=", ".join(files) or t("none", _lang()))
        _ss()["plans"] = loaded
        _reset_widgets(loaded.current)
        _ss()["load_ok"] = True

    cols[1].file_uploader(t("load_file", lang), type=["json"], key="w_load_file",
                          on_change=load)
    if _ss().get("load_error"):
        st.error(t("error", lang, message=plain_markdown(_ss()["load_error"])))
    elif _ss().pop("load_ok", False):
        st.success(t("loaded", lang))
    if warning := _ss().pop("load_warning", None):
        st.warning(plain_markdown(warning))


def _downloads(lang: str, region: planning.Region, tables: list, plan: Plan) -> None:
    st.subheader(t("downloads", lang))
    if st.button(t("prepare", lang), key="w_prepare"):
        with st.spinner(t("preparing", lang)):
            try:
                proposal = _ss().get("proposal")
                result = planning.evaluate_session_plan(
                    region, tables, plan, with_isochrones=True,
                    proposals=proposal.sites if proposal is not None else None,
                )
                _ss()["exports"] = planning.write_outputs(result, _folder().path / "exports",
                                                          language=lang)
            except CoverageError as exc:
                _error(exc)
                return
    exports: dict[str, Path] | None = _ss().get("exports")
    if not exports:
        return
    cols = st.columns(4)
    for i, (name, label, mime) in enumerate(DOWNLOADS):
        if name in exports and exports[name].exists():
            cols[i % 4].download_button(t(label, lang), exports[name].read_bytes(),
                                        file_name=name, mime=mime, key=f"dl|{name}")


# ---------------------------------------------------------------------------- the page
def render() -> None:
    """Draw the whole page (``app.py`` calls this)."""
    st.set_page_config(page_title="Coverage planner", layout="wide")
    lang = _language_picker()
    st.title(t("title", lang))
    path = _region_picker(lang)
    if path is None:
        st.info(t("upload_missing", lang))
        return
    try:
        with st.spinner(t("loading", lang)):
            region = cache.shared_region(path)
        shipped = Path(path).parent == cache.SCENARIO_DIR.resolve()
        _ss()["region_name"] = Path(path).stem if shipped else f"upload-{region.key[:12]}"
        plans = _plans(_ss()["region_name"])
        plan = plans.current
        tables = _standards_panel(lang, region, plan)
        tkey = planning.standards_key(tables)
        with st.spinner(t("loading", lang)):
            baseline = cache.shared_baseline(path, tkey)
        rules = planning.plan_rules(region, tables)
        st.caption(plain_markdown(region.scenario.description))
        rule = _siting_controls(lang, region, rules, plan)
        siting = cache.shared_siting(path, tkey, rule.id) if rule is not None else None
        _take_click(plan, siting)
        whatif = siting.apply_points(plan.points, closed=plan.closed) if siting else None
        result = _plan_result(region, tables, tkey, plan, baseline)
    except CoverageError as exc:
        _error(exc)
        return
    st.subheader(t("summary", lang))
    _metrics(lang, rule, whatif, baseline, result)
    left, right = st.columns([3, 2])
    with left:
        _map(lang, path, tkey, plan, region, siting, whatif)
    with right:
        _candidates(lang, plan, siting, region)
        if siting is not None:
            _propose(lang, plan, siting)
    _unit_table(lang, baseline, result, whatif)
    _scenarios(lang, plans, region, path, baseline, result)
    _files(lang, plans)
    _downloads(lang, region, tables, plan)
