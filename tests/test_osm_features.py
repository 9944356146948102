"""Tests of the pyosmium readers, on the shipped extracts and on a small hand-made .osm file."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import osmium
import pytest
import shapely
import shapely.wkb
from covplan.errors import CoverageError, InputWarning
from covplan.inputs.osm_features import (
    RESIDENTIAL_HIGHWAYS,
    read_admin_boundaries,
    read_health_facilities,
    read_places,
    read_residential_roads,
)
from shapely.geometry import Point, Polygon, box
from shipped import ANDORRA_PBF, LIECHTENSTEIN_PBF

PARISHES = tuple(range(2804753, 2804760))
CANILLO = 2804754


def _osmium_areas(path: Path, ids: set[int]) -> dict[int, shapely.Geometry]:
    """Polygons of complete relations built by libosmium's own area assembler."""
    factory = osmium.geom.WKBFactory()
    out = {}
    for obj in osmium.FileProcessor(str(path)).with_areas():
        if obj.is_area() and not obj.from_way() and obj.orig_id() in ids:
            out[obj.orig_id()] = shapely.wkb.loads(factory.create_multipolygon(obj), hex=True)
    return out


@pytest.fixture(scope="module")
def andorra_relations():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gdf = read_admin_boundaries(ANDORRA_PBF, relation_ids=(9407, *PARISHES))
    return gdf, [str(w.message) for w in caught if issubclass(w.category, InputWarning)]


def test_complete_parishes_match_libosmium_area_assembler(andorra_relations):
    gdf, _ = andorra_relations
    complete = set(PARISHES) - {CANILLO}
    reference = _osmium_areas(ANDORRA_PBF, complete)
    assert set(reference) == complete  # libosmium cannot build Canillo: it is cut
    for rid, ref in reference.items():
        ours = gdf.loc[gdf.osm_id == rid, "geometry"].iloc[0]
        assert ours.symmetric_difference(ref).area < 1e-9 * ref.area + 1e-12, rid
    assert (gdf.admin_level[gdf.osm_id.isin(PARISHES)] == 7).all()
    assert gdf.loc[gdf.osm_id == 9407, "admin_level"].iloc[0] == 2
    assert list(gdf.columns) == ["osm_id", "name", "admin_level", "geometry"]
    assert str(gdf.crs) == "EPSG:4326"


def test_cut_relations_are_closed_and_reported(andorra_relations):
    gdf, messages = andorra_relations
    # Canillo (2804754) and Andorra (9407) both miss ways 23305159 and 50344406.
    assert any("2804754" in m and "2 member way(s) missing" in m for m in messages)
    assert any("9407" in m and "2 member way(s) missing" in m for m in messages)
    # the straight line closing the gap runs between nodes 45173378 and 45173478: 4.41 km
    assert any("4,414 m" in m for m in messages)
    canillo = gdf.loc[gdf.osm_id == CANILLO, "geometry"].iloc[0]
    country = gdf.loc[gdf.osm_id == 9407, "geometry"].iloc[0]
    others = gdf.loc[gdf.osm_id.isin(set(PARISHES) - {CANILLO}), "geometry"].union_all()
    # both cut relations share the same closing segment: country minus six == Canillo
    assert country.difference(others).symmetric_difference(canillo).area < 1e-6 * canillo.area


def test_liechtenstein_municipalities_match_libosmium():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)  # Austrian/Swiss units are cut
        gdf = read_admin_boundaries(LIECHTENSTEIN_PBF, admin_level=8)
    names = set(gdf.name)
    li = {
        "Ruggell", "Schellenberg", "Gamprin", "Eschen", "Mauren", "Schaan",
        "Planken", "Vaduz", "Triesenberg", "Triesen", "Balzers",
    }  # fmt: skip
    assert li <= names
    assert {"Feldkirch", "Buchs (SG)", "Maienfeld"} <= names  # neighbours in the extract
    assert len(gdf) == 22
    ids = set(gdf.osm_id[gdf.name.isin(li)])
    reference = _osmium_areas(LIECHTENSTEIN_PBF, ids)
    assert set(reference) == ids
    for rid, ref in reference.items():
        ours = gdf.loc[gdf.osm_id == rid, "geometry"].iloc[0]
        assert ours.symmetric_difference(ref).area < 1e-9 * ref.area + 1e-12, rid


def test_unknown_relation_and_missing_file_raise(tmp_path):
    with pytest.raises(CoverageError, match=r"\[123\].*not found"):
        read_admin_boundaries(ANDORRA_PBF, relation_ids=[123, 9407])
    with pytest.raises(CoverageError, match="not found.*existing .osm.pbf"):
        read_health_facilities(tmp_path / "nope.osm.pbf")
    bad = tmp_path / "bad.osm.pbf"
    bad.write_bytes(b"this is not a pbf")
    with pytest.raises(CoverageError, match="cannot read OpenStreetMap file"):
        read_places(bad)


def test_andorra_health_facilities():
    fac = read_health_facilities(ANDORRA_PBF)
    assert list(fac.columns) == [
        "facility_id", "name", "type", "source", "osm_type", "osm_id", "tags", "geometry",
    ]  # fmt: skip
    assert fac.facility_id.is_unique
    assert (fac.source == "OpenStreetMap").all()
    assert fac["type"].value_counts().to_dict() == {"hospital": 7, "pharmacy": 3}
    row = fac.set_index("facility_id").loc["osm-n1934464746"]
    assert (row["name"], row["type"], row["osm_type"]) == ("Farmacia D Encamp", "pharmacy", "node")
    assert json.loads(row["tags"]) == {"amenity": "pharmacy", "name": "Farmacia D Encamp"}
    assert fac.set_index("facility_id").loc["osm-n522787974", "name"] == "unnamed hospital"
    # the one hospital mapped as a closed way sits at its area's centroid (libosmium's polygon)
    way = fac.set_index("facility_id").loc["osm-w194554955"]
    assert way["osm_type"] == "way" and way["osm_id"] == 194554955
    factory = osmium.geom.WKBFactory()
    ref = None
    for obj in osmium.FileProcessor(str(ANDORRA_PBF)).with_areas():
        if obj.is_area() and obj.from_way() and obj.orig_id() == 194554955:
            ref = shapely.wkb.loads(factory.create_multipolygon(obj), hex=True).centroid
    assert ref is not None and way.geometry.distance(ref) < 1e-9
    # area filter keeps points inside the polygon only
    west = box(1.40, 42.40, 1.55, 42.70)
    kept = read_health_facilities(ANDORRA_PBF, area=west)
    assert set(kept.facility_id) == set(fac.facility_id[fac.geometry.x < 1.55])
    assert 0 < len(kept) < len(fac)


def test_liechtenstein_hospital_and_places():
    fac = read_health_facilities(LIECHTENSTEIN_PBF).set_index("facility_id")
    hosp = fac.loc["osm-n6245"]
    assert hosp["name"] == "Liechtensteinisches Landesspital" and hosp["type"] == "hospital"
    assert json.loads(hosp["tags"])["addr:city"] == "Vaduz"
    assert (fac["type"] == "pharmacy").sum() == 4
    places = read_places(ANDORRA_PBF)
    assert len(places) == 68  # 32 villages, 20 hamlets, 7 towns, 7 localities, country, nbhd
    alv = places[places.name == "Andorra la Vella"].iloc[0]
    assert alv.place == "town" and alv.population == 24678.0
    assert places.population.isna().sum() == len(places) - places.population.notna().sum()


def test_residential_roads():
    roads = read_residential_roads(ANDORRA_PBF)
    assert set(roads.highway) == set(RESIDENTIAL_HIGHWAYS)
    # way counts per class in the extract: residential 468, living_street 1, pedestrian 12,
    # unclassified 98
    assert roads.highway.value_counts().to_dict() == {
        "residential": 468, "unclassified": 98, "pedestrian": 12, "living_street": 1,
    }  # fmt: skip
    only = read_residential_roads(LIECHTENSTEIN_PBF, highway=("living_street",))
    assert len(only) == 18 and (only.geometry.geom_type == "LineString").all()


HAND_MADE = """<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6" generator="test">
  <node id="1" version="1" lat="47.10" lon="9.50"/>
  <node id="2" version="1" lat="47.10" lon="9.51"/>
  <node id="3" version="1" lat="47.11" lon="9.51"/>
  <node id="4" version="1" lat="47.11" lon="9.50"/>
  <node id="5" version="1" lat="47.00" lon="9.00">
    <tag k="amenity" v="hospital"/><tag k="name" v="Spital"/>
  </node>
  <node id="6" version="1" lat="47.05" lon="9.05"><tag k="place" v="village"/>
    <tag k="name" v="Dorf"/><tag k="population" v="1 234"/></node>
  <node id="11" version="1" lat="0.0" lon="0.0"/>
  <node id="12" version="1" lat="0.0" lon="0.1"/>
  <node id="13" version="1" lat="0.1" lon="0.1"/>
  <node id="14" version="1" lat="0.1" lon="0.0"/>
  <node id="21" version="1" lat="0.02" lon="0.02"/>
  <node id="22" version="1" lat="0.02" lon="0.04"/>
  <node id="23" version="1" lat="0.04" lon="0.04"/>
  <node id="24" version="1" lat="0.04" lon="0.02"/>
  <node id="31" version="1" lat="1.0" lon="1.0"/>
  <node id="32" version="1" lat="1.0" lon="1.3"/>
  <node id="33" version="1" lat="1.3" lon="1.0"/>
  <way id="100" version="1"><nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="4"/><nd ref="1"/>
    <tag k="amenity" v="clinic"/></way>
  <way id="101" version="1"><nd ref="11"/><nd ref="12"/><nd ref="13"/></way>
  <way id="102" version="1"><nd ref="13"/><nd ref="14"/><nd ref="99"/></way>
  <way id="103" version="1"><nd ref="21"/><nd ref="22"/><nd ref="23"/><nd ref="24"/>
    <nd ref="21"/></way>
  <way id="104" version="1"><nd ref="31"/><nd ref="32"/><nd ref="33"/><nd ref="31"/></way>
  <way id="105" version="1"><nd ref="1"/><nd ref="2"/><tag k="highway" v="residential"/></way>
  <way id="106" version="1"><nd ref="2"/><nd ref="3"/><tag k="highway" v="service"/></way>
  <relation id="200" version="1">
    <member type="way" ref="101" role="outer"/><member type="way" ref="102" role="outer"/>
    <member type="way" ref="999" role="outer"/><member type="way" ref="103" role="inner"/>
    <tag k="type" v="boundary"/><tag k="boundary" v="administrative"/>
    <tag k="admin_level" v="8"/><tag k="name" v="Cut"/>
  </relation>
  <relation id="201" version="1">
    <member type="way" ref="104" role="outer"/>
    <tag k="type" v="multipolygon"/><tag k="healthcare" v="pharmacy"/>
  </relation>
</osm>
"""


@pytest.fixture()
def hand_made(tmp_path):
    path = tmp_path / "small.osm"
    path.write_text(HAND_MADE, encoding="utf-8")
    return path


def test_hand_made_cut_relation_is_closed_with_hole(hand_made):
    # way 102 refers to a node (99) not in the file and way 999 is missing: the chain
    # 11-12-13-14 is closed back to 11 by a straight line, giving the 0.1 degree square
    with pytest.warns(InputWarning, match=r"relation 200 \('Cut'\).*1 member way\(s\) missing"):
        gdf = read_admin_boundaries(hand_made, admin_level=8)
    assert list(gdf.osm_id) == [200] and gdf.admin_level.iloc[0] == 8
    expected = box(0.0, 0.0, 0.1, 0.1).difference(box(0.02, 0.02, 0.04, 0.04))
    assert gdf.geometry.iloc[0].symmetric_difference(expected).area < 1e-15
    assert gdf.geometry.iloc[0].area == pytest.approx(0.01 - 0.0004)


def test_hand_made_facilities_places_roads(hand_made):
    fac = read_health_facilities(hand_made).set_index("facility_id")
    assert list(fac.index) == ["osm-n5", "osm-r201", "osm-w100"]
    assert fac.loc["osm-n5", "geometry"].equals(Point(9.0, 47.0))
    # the closed clinic way is a square: centroid at its centre
    assert fac.loc["osm-w100", "geometry"].distance(Point(9.505, 47.105)) < 1e-12
    assert fac.loc["osm-w100", "name"] == "unnamed clinic"
    # the multipolygon pharmacy is a triangle: centroid is the mean of its corners
    centroid = Polygon([(1.0, 1.0), (1.3, 1.0), (1.0, 1.3)]).centroid
    assert fac.loc["osm-r201", "geometry"].distance(Point(1.1, 1.1)) < 1e-12
    assert centroid.distance(Point(1.1, 1.1)) < 1e-12
    assert (fac.loc["osm-r201", "type"], fac.loc["osm-r201", "osm_type"]) == (
        "pharmacy",
        "relation",
    )
    places = read_places(hand_made)
    assert places.iloc[0][["osm_id", "name", "place", "population"]].tolist() == [
        6, "Dorf", "village", 1234.0,
    ]  # fmt: skip
    roads = read_residential_roads(hand_made)
    assert list(roads.osm_id) == [105]
    assert roads.geometry.iloc[0].equals(shapely.LineString([(9.50, 47.10), (9.51, 47.10)]))
