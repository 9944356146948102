"""Odd but readable boundaries are warned of: overlaps, units without area, huge populations."""

from __future__ import annotations

import warnings

import geopandas as gpd
import pytest
from covplan.errors import InputWarning
from covplan.geo import metric_crs
from covplan.inputs.loaders import load_boundaries
from shapely import affinity
from shapely.geometry import Polygon
from shipped import ANDORRA_PARISHES


def _load(gdf: gpd.GeoDataFrame) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InputWarning)
        load_boundaries(gdf, id_column="unit_id", name_column="name", level="parish",
                        population_column="population")
    return [str(w.message) for w in caught if issubclass(w.category, InputWarning)]


@pytest.fixture()
def parishes() -> gpd.GeoDataFrame:
    return gpd.read_file(ANDORRA_PARISHES)


def test_the_real_parishes_raise_no_warning(parishes) -> None:
    assert _load(parishes) == []


def test_an_overlap_names_both_units_and_its_share(parishes) -> None:
    moved = parishes.copy()
    first, second = moved["unit_id"].iloc[0], moved["unit_id"].iloc[1]
    moved.loc[1, "geometry"] = affinity.translate(moved.geometry.iloc[0], xoff=0.005)
    metric = moved.to_crs(metric_crs(moved)).geometry
    share = metric.iloc[0].intersection(metric.iloc[1]).area / min(metric.iloc[0].area,
                                                                    metric.iloc[1].area)
    (message,) = [m for m in _load(moved) if "overlap" in m]
    assert f"{first} and {second} ({share:.0%})" in message
    assert share > 0.5


def test_a_huge_population_is_warned_of(parishes) -> None:
    wrong = parishes.copy()
    wrong.loc[2, "population"] = 2e8
    (message,) = _load(wrong)
    assert "implausible population" in message and wrong["unit_id"].iloc[2] in message


def test_a_unit_without_area_is_warned_of(parishes) -> None:
    """A valid polygon of 0.01 m² (10 cm a side): a digitising slip, kept but named."""
    tiny = parishes.copy()
    x, y = tiny.geometry.iloc[3].representative_point().coords[0]
    d = 1e-6  # degrees: about 0.08 m east-west and 0.11 m north-south here
    tiny.loc[3, "geometry"] = Polygon([(x, y), (x + d, y), (x + d, y + d), (x, y + d)])
    (message,) = _load(tiny)
    assert "no area" in message and tiny["unit_id"].iloc[3] in message


def test_a_degenerate_polygon_is_refused_with_its_feature_named(parishes) -> None:
    flat = parishes.copy()
    x, y = flat.geometry.iloc[3].representative_point().coords[0]
    flat.loc[3, "geometry"] = Polygon([(x, y), (x + 0.01, y), (x + 0.02, y)])
    with pytest.raises(ValueError, match="feature 4: invalid polygon"):
        _load(flat)
