"""Interface strings of the app in Chinese and English, and the browser's preferred language."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from covplan.errors import CoverageError
from covplan.labels import LANGUAGES, STATUS_LABELS, label

__all__ = ["LANGUAGES", "STRINGS", "detect_language", "t"]

#: key -> (Chinese, English). ``{name}`` fields are filled by :func:`t`.
STRINGS: dict[str, tuple[str, str]] = {
    "title": ("卫生服务可及性规划", "Health coverage planner"),
    "language": ("界面语言", "Language"),
    "region": ("区域", "Region"),
    "upload_option": ("上传我的数据…", "Upload my own data…"),
    "upload_header": ("上传数据", "Upload data"),
    "facilities_file": ("医疗机构（CSV/Excel/GeoJSON/GPKG/SHP zip）",
                        "Facilities (CSV/Excel/GeoJSON/GPKG/zipped SHP)"),
    "boundaries_file": ("行政区划边界（GeoJSON/GPKG/SHP zip）",
                        "Boundaries (GeoJSON/GPKG/zipped SHP)"),
    "population_file": ("人口（居民点或 GeoTIFF 人口栅格）",
                        "Population (places or GeoTIFF grid)"),
    "network_file": ("路网（OSM PBF 或 GraphML）", "Road network (OSM PBF or GraphML)"),
    "crs": ("坐标系", "Coordinate system"),
    "id_column": ("单元代码列", "Unit id column"),
    "name_column": ("单元名称列", "Unit name column"),
    "population_column": ("人口列", "Population column"),
    "level": ("单元层级", "Unit level"),
    "load_upload": ("载入上传的数据", "Load the uploaded data"),
    "upload_missing": ("请上传医疗机构、边界和路网文件。",
                       "Upload the facilities, boundaries and road network files."),
    "too_large": ("文件 {name} 为 {size} MB，超过 {limit} MB 的上限。",
                  "File {name} is {size} MB, over the {limit} MB limit."),
    "bad_suffix": ("文件 {name} 的格式不支持；可用：{allowed}",
                   "File {name} has an unsupported format; use one of: {allowed}"),
    "loading": ("正在载入区域、路网和基线结果…", "Loading the region, road networks and baseline…"),
    "standards": ("标准", "Standards"),
    "standards_source": ("标准来源", "Standards from"),
    "scenario_standards": ("情景文件中的标准", "the scenario file"),
    "preset_label": ("规划：{name}", "plan: {name}"),
    "edit_thresholds": ("修改阈值", "Edit thresholds"),
    "minutes": ("分钟", "minutes"),
    "km": ("公里", "km"),
    "siting_rule": ("选址所依据的标准", "Standard used for siting"),
    "no_travel_rule": ("所选标准中没有通行时间标准，无法选址。",
                       "The chosen standards have no travel-time standard; siting is off."),
    "summary": ("汇总", "Summary"),
    "covered": ("覆盖人口（{rule}）", "Population covered ({rule})"),
    "units_passing": ("全部达标的单元", "Units passing every standard"),
    "rules_passing": ("全区达标的标准", "Standards met region-wide"),
    "candidates": ("候选站点", "Candidate stations"),
    "new_station_type": ("新站点类型", "New station type"),
    "click_hint": ("在地图上单击即可添加候选站点。",
                   "Click on the map to add a candidate station."),
    "lon": ("经度", "Longitude"),
    "lat": ("纬度", "Latitude"),
    "add_station": ("添加站点", "Add station"),
    "remove": ("删除 {name}", "Remove {name}"),
    "clear": ("清除全部候选站点", "Clear all candidates"),
    "close_existing": ("关闭现有机构", "Close existing facilities"),
    "point_error": ("无法添加该站点：{message}", "Cannot add this station: {message}"),
    "whatif_time": ("计算用时 {ms:.0f} 毫秒", "computed in {ms:.0f} ms"),
    "map": ("地图", "Map"),
    "results": ("分单元结果", "Results by unit"),
    "select_hint": ("选中一行即可在地图上突出显示该单元。",
                    "Select a row to highlight the unit on the map."),
    "unit": ("单元", "unit"),
    "population": ("人口", "population"),
    "before": ("基线", "baseline"),
    "after": ("方案", "plan"),
    "delta": ("变化", "change"),
    "propose": ("推荐新站点", "Propose new sites"),
    "n_sites": ("站点数", "Number of sites"),
    "method": ("方法", "Method"),
    "method_mclp": ("最大覆盖（MCLP）", "maximal covering (MCLP)"),
    "method_pmedian": ("最短平均出行（p-中位）", "shortest average trip (p-median)"),
    "method_lscp": ("全覆盖最少站点（LSCP）", "fewest sites covering all (LSCP)"),
    "choose": ("请选择", "Choose"),
    "standards_levels": ("各项标准及其核查层级", "Standards and the level each is judged at"),
    "run_propose": ("计算推荐站点", "Propose sites"),
    "proposing": ("正在优化选址…", "Optimising sites…"),
    "proposal_result": ("推荐 {n} 个站点，覆盖人口 {covered:,.0f}（{share:.1%}）",
                        "{n} site(s) proposed, covering {covered:,.0f} ({share:.1%})"),
    "add_proposals": ("把推荐站点加入方案", "Add the proposed sites to the plan"),
    "scenarios": ("命名方案", "Named scenarios"),
    "scenario_name": ("方案名称", "Scenario name"),
    "save_named": ("保存为命名方案", "Keep as a named scenario"),
    "compare": ("方案对比", "Compare scenarios"),
    "restore": ("恢复方案", "Restore a scenario"),
    "restore_button": ("恢复", "Restore"),
    "baseline": ("基线（现状）", "Baseline (existing)"),
    "current": ("当前方案", "Current plan"),
    "save_file": ("保存方案文件", "Save the scenario file"),
    "load_file": ("载入方案文件", "Load a scenario file"),
    "loaded": ("已载入方案文件。", "Scenario file loaded."),
    "plan_other_region": (
        "{file}：该方案属于区域 {region!r}，此处未打开（示例区域：{known}）；"
        "请选择该区域或上传其数据，然后再次载入该文件",
        "{file}: the plan is for the region {region!r}, which is not open here (demo regions: "
        "{known}); choose that region or upload its data, then load the file again"),
    "none": ("无", "none"),
    "downloads": ("下载", "Downloads"),
    "prepare": ("生成下载文件", "Prepare the downloads"),
    "preparing": ("正在生成地图、表格、GeoPackage 和报告…",
                  "Writing the map, tables, GeoPackage and report…"),
    "download_map": ("地图（HTML）", "Map (HTML)"),
    "download_units_csv": ("单元结果（CSV）", "Units table (CSV)"),
    "download_xlsx": ("表格（Excel）", "Tables (Excel)"),
    "download_places": ("居民点（CSV）", "Places table (CSV)"),
    "download_gpkg": ("GeoPackage", "GeoPackage"),
    "download_report": ("报告（HTML）", "Report (HTML)"),
    "download_png": ("静态地图（PNG）", "Static map (PNG)"),
    "attribution": ("地图数据 © OpenStreetMap contributors",
                    "Map data © OpenStreetMap contributors"),
    "error": ("出错了：{message}", "Something is wrong: {message}"),
    "station": ("站点", "station"),
}


def t(key: str, lang: str, **fields: Any) -> str:
    """Return the interface string ``key`` in ``lang`` (``"zh"`` or ``"en"``), filled in.

    Raises
    ------
    CoverageError
        For an unknown key or language.
    """
    if lang not in LANGUAGES:
        raise CoverageError(f"unknown interface language {lang!r}; use one of {LANGUAGES}")
    if key in STATUS_LABELS:  # statuses are the package's words (covplan.labels)
        text = label(key, language=lang)
    elif key in STRINGS:
        text = STRINGS[key][0 if lang == "zh" else 1]
    else:
        raise CoverageError(f"no interface string {key!r} (add it to coverage/app/i18n.py)")
    return text.format(**fields) if fields else text


def detect_language(headers: Mapping[str, str] | None, *, default: str = "en") -> str:
    """Return ``"zh"`` or ``"en"`` from an ``Accept-Language`` header.

    The language with the highest quality value among Chinese and English wins (ties go to
    the one listed first); other languages are ignored. Without either, ``default``.

    Parameters
    ----------
    headers
        The request headers (``st.context.headers``); keys are matched case-insensitively.
    default
        Returned when the header is missing or names neither language.

    Examples
    --------
    >>> detect_language({"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    'zh'
    >>> detect_language({"accept-language": "en-GB,en;q=0.9,zh;q=0.5"})
    'en'
    """
    if not headers:
        return default
    value = next((v for k, v in headers.items() if k.lower() == "accept-language"), "")
    best: tuple[float, int, str] | None = None
    for position, part in enumerate(str(value).split(",")):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGUAGES:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, number = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(number)
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        candidate = (-quality, position, primary)
        if best is None or candidate < best:
            best = candidate
    return best[2] if best else default
