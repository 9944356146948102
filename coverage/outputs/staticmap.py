"""map.png: a static map of one run for printing (matplotlib, no base tiles).

Units coloured by compliance, isochrones, facilities, uncovered places (coloured by
shortfall, sized by population), proposed sites, a north arrow, a scale bar, a legend and
"© OpenStreetMap contributors". Drawn in the layer's UTM zone so the scale bar is true.
The run manifest is stored in the PNG as the text chunk ``run-manifest``. The title (the
scenario name) is shown as plain text: bidi controls dropped, at most
:data:`~covplan.outputs.html_text.LABEL_MAX` characters, never parsed as mathtext.

Chinese labels need a CJK font: :func:`find_cjk_font` looks for an installed one (for
example Debian's ``fonts-noto-cjk``); without one the PNG falls back to English labels and
a :class:`FontFallbackWarning` says how to install a font.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import warnings
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)

import numpy as np  # noqa: E402
import shapely  # noqa: E402
from covplan.geo import metric_crs  # noqa: E402
from covplan.labels import check_language, mode_label, text  # noqa: E402
from covplan.outputs.html_text import LABEL_MAX, plain_text, safe_json_text  # noqa: E402
from covplan.outputs.manifest import manifest_json  # noqa: E402
from covplan.outputs.tables import sample_note, sample_places  # noqa: E402
from covplan.outputs.webmap import (  # noqa: E402
    COMPLIANCE_COLOURS,
    FACILITY_COLOUR,
    PROPOSAL_COLOUR,
    SHORTFALL_CLASSES,
    UNREACHABLE_COLOUR,
    compliance_by_unit,
    isochrone_colour,
    place_shortfalls,
    shortfall_class,
)
from covplan.results import RunResult  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402
from matplotlib.path import Path as Path2D  # noqa: E402

__all__ = [
    "DPI",
    "FIGSIZE_IN",
    "FontFallbackWarning",
    "can_render",
    "find_cjk_font",
    "write_static_map",
]

#: Figure size in inches and resolution: 12 x 8 in at 150 dpi = 1800 x 1200 pixels.
FIGSIZE_IN: tuple[float, float] = (12.0, 8.0)
DPI = 150
#: zlib compression level of map.png (0-9).
PNG_COMPRESS_LEVEL = 3
ATTRIBUTION = "© OpenStreetMap contributors"
_MODE_LINESTYLES = {"walk": "-", "bike": ":", "drive": "--", "ambulance": (0, (6, 2, 1, 2))}
_CJK_PROBE = "达标未覆盖人口分钟"
_CJK_NAMES = (
    "noto sans cjk", "noto serif cjk", "noto sans sc", "noto serif sc", "source han",
    "wenquanyi", "wqy", "droid sans fallback", "ar pl", "simhei", "simsun", "microsoft yahei",
    "pingfang", "heiti", "songti", "hiragino sans gb", "sarasa",
)


class FontFallbackWarning(UserWarning):
    """No CJK font is installed: the static map uses English labels instead of Chinese."""


def can_render(label: str, font_path: str | os.PathLike[str]) -> bool:
    """Tell whether the font at ``font_path`` has a glyph for every character of ``label``."""
    from matplotlib.ft2font import FT2Font

    try:
        charmap = FT2Font(str(font_path)).get_charmap()
    except (OSError, RuntimeError, ValueError):
        return False
    return all(ord(ch) in charmap for ch in label if not ch.isspace())


def _fc_list_candidates() -> list[str]:
    fc_list = shutil.which("fc-list")
    if not fc_list:
        return []
    try:
        out = subprocess.run(
            [fc_list, ":lang=zh", "file"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split(":")[0].strip() for line in out.splitlines() if line.strip()]


@cache
def find_cjk_font() -> Path | None:
    """Return the file of an installed font that can draw Chinese labels, or None.

    Looks at ``fc-list :lang=zh`` and at matplotlib's font list (known CJK family names),
    and keeps the first font that has glyphs for a set of Chinese probe characters.
    """
    candidates = _fc_list_candidates()
    for entry in font_manager.fontManager.ttflist:
        if any(key in entry.name.lower() for key in _CJK_NAMES):
            candidates.append(entry.fname)
    seen: set[str] = set()
    for fname in candidates:
        if fname in seen or not Path(fname).is_file():
            continue
        seen.add(fname)
        if can_render(_CJK_PROBE, fname):
            return Path(fname)
    return None


def _font_for(language: str) -> tuple[str, font_manager.FontProperties | None]:
    """Return (effective language, font properties) for the labels."""
    if language != "zh":
        return language, None
    font = find_cjk_font()
    if font is None:
        warnings.warn(
            "no CJK font found for the Chinese labels of map.png; using English labels "
            "(install one, e.g. `apt-get install fonts-noto-cjk` on Debian/Ubuntu)",
            FontFallbackWarning,
            stacklevel=3,
        )
        return "en", None
    font_manager.fontManager.addfont(str(font))
    return "zh", font_manager.FontProperties(fname=str(font))


def _nice_length(width_m: float) -> float:
    """Return a round scale-bar length of about a fifth of the map width."""
    target = max(width_m / 5.0, 1.0)
    power = 10 ** math.floor(math.log10(target))
    for step in (5, 2, 1):
        if step * power <= target:
            return step * power
    return power


def _polygon_path(geom: Any) -> Path2D:
    """Return one compound matplotlib path of a (multi)polygon: holes as holes, no loops."""
    rings = shapely.get_rings(shapely.get_parts(shapely.orient_polygons(geom)))
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    if not len(coords):
        return Path2D(np.zeros((0, 2)))
    codes = np.full(len(coords), Path2D.LINETO, dtype=Path2D.code_type)
    first = np.ones(len(coords), dtype=bool)
    first[1:] = ring[1:] != ring[:-1]
    last = np.ones(len(coords), dtype=bool)
    last[:-1] = first[1:]
    codes[first] = Path2D.MOVETO
    codes[last] = Path2D.CLOSEPOLY
    return Path2D(coords, codes)


def _polygon_paths(geoms: Any, tolerance: float) -> list[Path2D]:
    """Return the paths of polygons simplified to ``tolerance`` (about a pixel), topology kept."""
    shown = shapely.simplify(np.asarray(geoms, dtype=object), tolerance, preserve_topology=True)
    return [_polygon_path(g) for g in shown if g is not None and not shapely.is_empty(g)]


def _draw_polygons(ax: Axes, geoms: Any, tolerance: float, *,
                   paths: list[Path2D] | None = None, **style: Any) -> None:
    """Draw polygons as one collection (``paths``: :func:`_polygon_paths` of them, if known)."""
    paths = _polygon_paths(geoms, tolerance) if paths is None else paths
    if paths:
        ax.add_collection(PathCollection(paths, **style), autolim=False)


def _draw_scale_bar(ax: Axes, font: font_manager.FontProperties | None) -> None:
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    length = _nice_length(x1 - x0)
    left = x0 + 0.04 * (x1 - x0)
    bottom = y0 + 0.05 * (y1 - y0)
    height = 0.008 * (y1 - y0)
    half = length / 2
    ax.add_patch(Rectangle((left, bottom), half, height, facecolor="black", zorder=20))
    ax.add_patch(Rectangle((left + half, bottom), half, height, facecolor="white",
                           edgecolor="black", zorder=20))
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    ax.text(left + length / 2, bottom + 2.2 * height, label, ha="center", va="bottom",
            fontsize=9, zorder=20, fontproperties=font)


def _draw_north_arrow(ax: Axes, label: str, font: font_manager.FontProperties | None
                      ) -> None:
    ax.annotate(
        label,
        xy=(0.95, 0.93), xytext=(0.95, 0.82), xycoords="axes fraction",
        ha="center", va="center", fontsize=12, fontweight="bold", fontproperties=font,
        arrowprops={"facecolor": "black", "width": 4, "headwidth": 12, "headlength": 12},
        zorder=20,
    )


def write_static_map(
    result: RunResult,
    path: str | os.PathLike[str],
    *,
    language: str | None = None,
    manifest: Mapping[str, Any] | None = None,
    shortfalls: Any = None,
) -> Path:
    """Draw the run on a 1800 x 1200 px PNG at ``path`` and return the path.

    Parameters
    ----------
    result
        The run.
    language
        ``"zh"`` or ``"en"`` (default the run's). ``zh`` without a CJK font falls back to
        English with a :class:`FontFallbackWarning`.
    manifest
        Stored as the PNG text chunk ``run-manifest`` when given.
    shortfalls
        :func:`~covplan.outputs.webmap.place_shortfalls` of the run when the caller has it
        already (computed once for both maps); default computed here.
    """
    lang, font = _font_for(check_language(language or result.language))
    units = result.units
    crs = metric_crs(units)
    units_m = units.to_crs(crs)
    compliance = compliance_by_unit(result.unit_results)
    colours = [COMPLIANCE_COLOURS[compliance.get(str(u), "not_applicable")]
               for u in units_m["unit_id"]]

    minx, miny, maxx, maxy = units_m.total_bounds
    pad = 0.05 * max(maxx - minx, maxy - miny, 1.0)
    # about one pixel of the map (1150 px across its wider side): finer detail is invisible
    tolerance = (max(maxx - minx, maxy - miny, 1.0) + 2 * pad) / 1150.0

    # A bare Figure with the Agg canvas: no pyplot (its import and figure registry).
    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI)
    FigureCanvasAgg(fig)
    # Map on the left two thirds, legend beside it on the right.
    ax = fig.add_axes((0.02, 0.04, 0.64, 0.88))
    try:
        _draw_polygons(ax, units_m.geometry.to_numpy(), tolerance, facecolors=colours,
                       alpha=0.45, edgecolors="#333333", linewidths=0.8, zorder=1)
        handles: list[Any] = [
            Patch(facecolor=COMPLIANCE_COLOURS["pass"], alpha=0.5, label=text("all_pass", lang)),
            Patch(facecolor=COMPLIANCE_COLOURS["fail"], alpha=0.5, label=text("some_fail", lang)),
            Patch(facecolor=COMPLIANCE_COLOURS["not_applicable"], alpha=0.5,
                  label=text("not_applicable", lang)),
        ]
        iso = result.isochrones
        if iso is not None and not iso.empty:
            iso_m = iso.to_crs(crs)
            keys = sorted({(str(m), float(x)) for m, x in zip(iso_m["mode"], iso_m["minutes"],
                                                             strict=False)},
                          key=lambda k: (k[0], -k[1]))
            for mode, minutes in keys:
                part = iso_m[(iso_m["mode"].astype(str) == mode)
                             & (iso_m["minutes"].astype(float) == minutes)]
                colour = isochrone_colour(minutes)
                style = _MODE_LINESTYLES.get(mode, "-.")
                shapes = part.geometry.to_numpy()
                paths = _polygon_paths(shapes, tolerance)  # once for the fill and the outline
                _draw_polygons(ax, shapes, tolerance, paths=paths, facecolors=colour,
                               edgecolors="none", alpha=0.12, zorder=2)
                _draw_polygons(ax, shapes, tolerance, paths=paths, facecolors="none",
                               edgecolors=colour, linewidths=1.6, linestyles=[style], zorder=3)
                handles.append(Patch(facecolor=(*to_rgb(colour), 0.15), edgecolor=colour,
                                     linestyle=style, linewidth=1.6, label=text(
                                         "isochrone", lang, minutes=minutes,
                                         mode=mode_label(mode, lang))))
        places = sample_places(result.places)  # above the limit: a seeded random sample
        if shortfalls is None:
            shortfalls = place_shortfalls(result, place_ids=places["place_id"])
        unc = places[places["place_id"].isin(shortfalls.index)].to_crs(crs)
        if len(unc):
            worst = shortfalls.reindex(unc["place_id"])["shortfall"].astype(float).to_numpy()
            pop = unc["population"].astype(float).fillna(0.0).clip(lower=0.0).to_numpy()
            ax.scatter(unc.geometry.x, unc.geometry.y,
                       s=[8 + math.sqrt(p) for p in pop],
                       c=[shortfall_class(s)[1] for s in worst],
                       edgecolors="#444444", linewidths=0.4, zorder=4)
        for _upper, label, colour in SHORTFALL_CLASSES:
            handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor=colour,
                                  markeredgecolor="#444444",
                                  label=f"{text('uncovered', lang)}: {label}"))
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor=UNREACHABLE_COLOUR,
                              markeredgecolor="#444444", label=text("unreachable", lang)))
        fac = result.facilities.to_crs(crs)
        if len(fac):
            ax.scatter(fac.geometry.x, fac.geometry.y, marker="P", s=70, c=FACILITY_COLOUR,
                       edgecolors="white", linewidths=0.8, zorder=5)
        handles.append(Line2D([], [], marker="P", linestyle="", markerfacecolor=FACILITY_COLOUR,
                              markeredgecolor="white", markersize=10,
                              label=text("facilities", lang)))
        if result.proposals is not None and len(result.proposals):
            prop = result.proposals.to_crs(crs)
            ax.scatter(prop.geometry.x, prop.geometry.y, marker="*", s=160, c=PROPOSAL_COLOUR,
                       edgecolors="white", linewidths=0.8, zorder=6)
            handles.append(Line2D([], [], marker="*", linestyle="",
                                  markerfacecolor=PROPOSAL_COLOUR, markersize=13,
                                  label=text("proposals", lang)))
        ax.set_xlim(minx - pad, maxx + pad)
        ax.set_ylim(miny - pad, maxy + pad)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("")
        ax.set_ylabel("")
        title_font = font.get_file() if font is not None else font_manager.findfont(
            font_manager.FontProperties())
        name = plain_text(result.name, LABEL_MAX)
        title = name if can_render(name, title_font) else text("report_title", lang)
        ax.apply_aspect()
        box = ax.get_position()  # the map's real extent once the equal aspect is applied
        fig.suptitle(title, x=(box.x0 + box.x1) / 2, y=0.97, fontproperties=font, fontsize=15,
                     parse_math=False, usetex=False)
        legend_font = (
            font_manager.FontProperties(fname=font.get_file(), size=10) if font is not None
            else None
        )
        fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(box.x1 + 0.02, box.y1),
                   fontsize=10, frameon=False, title=text("legend", lang), prop=legend_font,
                   title_fontproperties=legend_font)
        _draw_north_arrow(ax, text("north", lang), font)
        _draw_scale_bar(ax, font)
        ax.text(0.995, 0.005, ATTRIBUTION, transform=ax.transAxes, ha="right", va="bottom",
                fontsize=8, color="#333333", zorder=30,
                bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 2})
        sampled = sample_note(len(result.places), len(places), lang)
        if sampled:
            ax.text(0.005, 0.995, sampled, transform=ax.transAxes, ha="left", va="top",
                    fontsize=9, color="#333333", zorder=30, fontproperties=font,
                    parse_math=False, bbox={"facecolor": "white", "alpha": 0.8,
                                            "edgecolor": "none", "pad": 2})
        metadata = {"Software": "coverage-planner"}
        if manifest is not None:
            metadata["run-manifest"] = safe_json_text(manifest_json(manifest, indent=None))
        # zlib level 3: about half the encoding time of the default 6, a slightly larger file
        fig.savefig(path, format="png", dpi=DPI, metadata=metadata,
                    pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
    finally:
        fig.clear()
    return Path(path)
