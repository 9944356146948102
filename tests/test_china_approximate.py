
import geopandas as gpd
import numpy as np
import pytest
import shapely
from covplan.china.approximate import voronoi_units
from covplan.errors import CoverageError
from covplan.inputs.osm_features import read_admin_boundaries, read_places
from shipped import LIECHTENSTEIN_PBF

UTM = "EPSG:32632"


@pytest.fixture(scope="module")
def unterland():
    rel = read_admin_boundaries(LIECHTENSTEIN_PBF, relation_ids=[49])  # Wahlkreis Unterland
    muni = read_admin_boundaries(LIECHTENSTEIN_PBF, relation_ids=[38, 39, 41, 42, 43])
    places = read_places(LIECHTENSTEIN_PBF)
    return rel.geometry.iloc[0], muni, places


def test_voronoi_cells_tile_district_and_are_marked(unterland):
    district, muni, places = unterland
    # the seats: the place node named like each municipality (Mauren has none in this extract)
    seats = places[places["name"].isin(muni["name"]) & places["place"].isin(["village", "town"])]
    seats = seats.drop_duplicates("name").assign(unit_id=lambda d: d["name"])
    assert sorted(seats["name"]) == ["Eschen", "Gamprin", "Ruggell", "Schellenberg"]
    cells = voronoi_units(seats, district, parent_id="unterland")
    assert cells["approximate"].all() and (cells["method"] == "voronoi").all()
    assert (cells["level"] == "township").all() and (cells["parent_id"] == "unterland").all()
    m = cells.to_crs(UTM)
    d = gpd.GeoSeries([district], crs="EPSG:4326").to_crs(UTM).iloc[0]
    assert m.area.sum() == pytest.approx(d.area, rel=1e-6)
    assert shapely.union_all(m.geometry.values).symmetric_difference(d).area < 1e-6 * d.area
    # each seat lies in its own cell, and every point of a cell is nearest to its seat:
    seat_xy = seats.to_crs(UTM).set_index("unit_id").geometry
    rng = np.random.default_rng(0)
    for row in m.itertuples():
        assert row.geometry.contains(seat_xy[row.unit_id])
        minx, miny, maxx, maxy = row.geometry.bounds
        xs = rng.uniform(minx, maxx, 200)
        ys = rng.uniform(miny, maxy, 200)
        inside = shapely.contains_xy(row.geometry, xs, ys)
        for x, y in zip(xs[inside], ys[inside], strict=True):
            dist = {k: p.distance(shapely.Point(x, y)) for k, p in seat_xy.items()}
            assert min(dist, key=dist.get) == row.unit_id
    # the approximation against the real mapped municipality: most of Eschen's cell is Eschen
    eschen = muni.loc[muni["name"] == "Eschen"].to_crs(UTM).geometry.iloc[0]
    cell = m.loc[m["unit_id"] == "Eschen"].geometry.iloc[0]
    assert cell.intersection(eschen).area / cell.area > 0.5


def test_single_seat_is_whole_district(unterland):
    district, _, places = unterland
    seat = places[places["name"] == "Eschen"].assign(unit_id="e")
    cells = voronoi_units(seat, district)
    assert len(cells) == 1 and cells["unit_id"].iloc[0] == "e"
    d = gpd.GeoSeries([district], crs="EPSG:4326").to_crs(UTM).iloc[0]
    assert cells.to_crs(UTM).geometry.iloc[0].symmetric_difference(d).area < 1e-6 * d.area


def test_errors(unterland):
    district, _, places = unterland
    with pytest.raises(CoverageError, match="no township seat"):
        voronoi_units(places.head(0).assign(unit_id=[]), district)
    two = places.head(2).assign(unit_id=["a", "a"])
    with pytest.raises(CoverageError, match="ids repeat"):
        voronoi_units(two, district)
    same = gpd.GeoDataFrame({"unit_id": ["a", "b"], "name": ["a", "b"]},
                            geometry=[shapely.Point(9.5, 47.2)] * 2, crs="EPSG:4326")
    with pytest.raises(CoverageError, match="share a position"):
        voronoi_units(same, district)
