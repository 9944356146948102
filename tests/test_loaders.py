"""Loaders on real data: OSM health POIs written in every supported format and read back."""

from __future__ import annotations

import math
import warnings
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import osmium
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine
from covplan.errors import InputWarning
from covplan.facility_types import facility_type_from_osm
from covplan.geo import haversine_m
from covplan.inputs.loaders import (
    check_facilities_within,
    load_boundaries,
    load_facilities,
    load_population,
)
from pyproj import Transformer
from shipped import (
    ANDORRA_PARISHES,
    ANDORRA_PBF,
    ANDORRA_POPULATION,
    LIECHTENSTEIN_MUNICIPALITIES,
    LIECHTENSTEIN_PBF,
    LIECHTENSTEIN_POPULATION,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"


class _HealthNodes(osmium.SimpleHandler):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, object]] = []

    def node(self, n: osmium.osm.Node) -> None:
        tags = dict(n.tags)
        kind = facility_type_from_osm(tags)
        if kind is not None:
            # coordinates exactly as stored in the extract: integer 1e-7 degrees
            self.rows.append({"id": f"n{n.id}", "name": tags.get("name", f"unnamed {n.id}"),
                              "type": kind, "lon": n.location.x / 1e7,
                              "lat": n.location.y / 1e7})


def osm_health_points(pbf: Path) -> pd.DataFrame:
    handler = _HealthNodes()
    handler.apply_file(str(pbf))
    return pd.DataFrame(handler.rows)


@pytest.fixture(scope="module")
def li_points() -> pd.DataFrame:
    return osm_health_points(LIECHTENSTEIN_PBF)


@pytest.fixture(scope="module")
def li_units() -> gpd.GeoDataFrame:
    return load_boundaries(LIECHTENSTEIN_MUNICIPALITIES, id_column="unit_id", name_column="name",
                           level="municipality", population_column="population")


@pytest.fixture(scope="module")
def ad_units() -> gpd.GeoDataFrame:
    return load_boundaries(ANDORRA_PARISHES, id_column="unit_id", name_column="name",
                           level="parish", population_column="population")


def _gdf(df: pd.DataFrame) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(df.drop(columns=["lon", "lat"]),
                            geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs="EPSG:4326")


def write_as(df: pd.DataFrame, folder: Path, fmt: str) -> Path:
    """Write the facility table in one of the supported formats."""
    if fmt == "csv":
        path = folder / "fac.csv"
        df.to_csv(path, index=False)
    elif fmt == "xlsx":
        path = folder / "fac.xlsx"
        df.to_excel(path, index=False)
    elif fmt == "geojson":
        path = folder / "fac.geojson"
        _gdf(df).to_file(path, driver="GeoJSON")
    elif fmt == "gpkg":
        path = folder / "fac.gpkg"
        _gdf(df).to_file(path, driver="GPKG", layer="health")
    elif fmt == "shp":
        path = folder / "fac.shp"
        _gdf(df).to_file(path, driver="ESRI Shapefile")
    elif fmt == "zip":
        shp_dir = folder / "shp"
        shp_dir.mkdir()
        _gdf(df).to_file(shp_dir / "fac.shp", driver="ESRI Shapefile")
        path = folder / "fac.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for part in sorted(shp_dir.iterdir()):
                zf.write(part, part.name)
    else:  # pragma: no cover - test table below is closed
        raise ValueError(fmt)
    return path


def test_osm_fixture_holds_the_landesspital(li_points):
    row = li_points.set_index("id").loc["n6245"]
    assert row["name"] == "Liechtensteinisches Landesspital"
    assert row["type"] == "hospital"
    assert (row["lon"], row["lat"]) == (9.5224777, 47.1343767)
    assert len(li_points) >= 5


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "geojson", "gpkg", "shp", "zip"])
def test_every_format_reads_back_exactly(li_points, tmp_path, fmt):
    path = write_as(li_points, tmp_path, fmt)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)  # clean input: no warnings at all
        fac = load_facilities(path)
    assert fac.crs.to_epsg() == 4326
    assert list(fac.columns[:4]) == ["facility_id", "name", "type", "source"]
    assert fac["facility_id"].tolist() == li_points["id"].tolist()
    assert fac["name"].tolist() == li_points["name"].tolist()
    assert fac["type"].tolist() == li_points["type"].tolist()
    assert (fac["source"] == path.name).all()
    assert fac.geometry.x.tolist() == li_points["lon"].tolist()
    assert fac.geometry.y.tolist() == li_points["lat"].tolist()
    spital = fac.set_index("facility_id").loc["n6245"]
    assert spital["name"] == "Liechtensteinisches Landesspital"
    assert (spital.geometry.x, spital.geometry.y) == (9.5224777, 47.1343767)


def test_gbk_csv_with_chinese_headers_and_type_names(li_points, tmp_path):
    zh = {"hospital": "医院", "pharmacy": "药店", "clinic": "诊所", "doctors": "个体诊所"}
    table = pd.DataFrame({
        "编号": li_points["id"], "名称": li_points["name"],
        "机构类型": li_points["type"].map(zh), "经度": li_points["lon"], "纬度": li_points["lat"],
    })
    table.loc[0, "名称"] = "大渡口区人民医院"
    path = tmp_path / "gbk.csv"
    path.write_bytes(table.to_csv(index=False).encode("gbk"))
    with pytest.warns(InputWarning, match="GB18030"):
        fac = load_facilities(path)
    assert fac.attrs["encoding"] == "gb18030"
    assert fac["name"].iloc[0] == "大渡口区人民医院"
    assert fac["type"].tolist() == li_points["type"].tolist()
    assert fac.geometry.x.tolist() == li_points["lon"].tolist()


def test_utf8_with_bom_and_type_map(li_points, tmp_path):
    table = li_points.assign(type=li_points["type"].map({"hospital": "卫生院",
                                                         "pharmacy": "Apotheke"}))
    path = tmp_path / "bom.csv"
    path.write_bytes(table.to_csv(index=False).encode("utf-8-sig"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        fac = load_facilities(path, type_map={"卫生院": "township_health_centre",
                                              "apotheke": "药店"})
    assert fac.attrs["encoding"] == "utf-8-sig"
    assert fac.columns[0] == "facility_id"  # the BOM did not stick to the first header
    expected = li_points["type"].map({"hospital": "township_health_centre",
                                      "pharmacy": "pharmacy"})
    assert fac["type"].tolist() == expected.tolist()


def test_named_columns_and_osm_tags_decide_the_type(tmp_path):
    table = pd.DataFrame({"code": ["a", "b"], "label": ["Landesspital", "Apotheke"],
                          "amenity": ["hospital", "pharmacy"], "E": [9.5224777, 9.5214799],
                          "N": [47.1343767, 47.1386033]})
    path = tmp_path / "named.csv"
    table.to_csv(path, index=False)
    fac = load_facilities(path, id_column="code", name_column="label", lon_column="E",
                          lat_column="N")
    assert fac["facility_id"].tolist() == ["a", "b"]
    assert fac["name"].tolist() == ["Landesspital", "Apotheke"]
    assert fac["type"].tolist() == ["hospital", "pharmacy"]
    assert fac.geometry.y.tolist() == [47.1343767, 47.1386033]


# Published WGS-84 / GCJ-02 pairs of real places (eviltransform test fixtures), (lon, lat).
REAL_GCJ = [
    ("Shanghai", (121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),
    ("Shenzhen", (113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),
    ("Beijing", (116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),
]


def test_gcj02_csv_lands_on_the_wgs84_truth(tmp_path):
    table = pd.DataFrame({"id": [n for n, _, _ in REAL_GCJ], "type": "hospital",
                          "lng": [g[0] for _, _, g in REAL_GCJ],
                          "lat": [g[1] for _, _, g in REAL_GCJ]})
    path = tmp_path / "amap.csv"
    table.to_csv(path, index=False)
    fac = load_facilities(path, crs="GCJ-02")
    truth_lon = np.array([w[0] for _, w, _ in REAL_GCJ])
    truth_lat = np.array([w[1] for _, w, _ in REAL_GCJ])
    err = haversine_m(fac.geometry.x.to_numpy(), fac.geometry.y.to_numpy(), truth_lon, truth_lat)
    assert err.max() < 0.05  # published to ~1e-9 degrees
    # read as if WGS-84, the same file would be 470-600 m off
    raw = load_facilities(path)
    off = haversine_m(raw.geometry.x.to_numpy(), raw.geometry.y.to_numpy(), truth_lon, truth_lat)
    assert off.min() > 400.0 and off.max() < 700.0


def test_bd09_and_cgcs2000_and_projected_csv(li_points, tmp_path):
    # published: wgs84 (116.404, 39.915) -> bd09 (116.41662724378733, 39.922699552216216)
    path = tmp_path / "baidu.csv"
    pd.DataFrame({"id": ["tam"], "type": ["clinic"], "lon": [116.41662724378733],
                  "lat": [39.922699552216216]}).to_csv(path, index=False)
    fac = load_facilities(path, crs="BD-09")
    assert haversine_m(fac.geometry.x.iloc[0], fac.geometry.y.iloc[0], 116.404, 39.915) < 0.3

    # CGCS2000 is taken as WGS-84 (centimetres apart): coordinates unchanged
    path = write_as(li_points, tmp_path, "csv")
    fac = load_facilities(path, crs="CGCS2000")
    assert fac.geometry.x.tolist() == li_points["lon"].tolist()
    # outside China, GCJ-02 has no offset: coordinates unchanged
    fac = load_facilities(path, crs="GCJ-02")
    assert fac.geometry.y.tolist() == li_points["lat"].tolist()

    # projected x/y in UTM 32N (EPSG:32632) come back to the same lon/lat
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32632", always_xy=True).transform(
        li_points["lon"].to_numpy(), li_points["lat"].to_numpy())
    utm = li_points.drop(columns=["lon", "lat"]).assign(x=np.round(x, 3), y=np.round(y, 3))
    path = tmp_path / "utm.csv"
    utm.to_csv(path, index=False)
    fac = load_facilities(path, crs="EPSG:32632")
    err = haversine_m(fac.geometry.x.to_numpy(), fac.geometry.y.to_numpy(),
                      li_points["lon"].to_numpy(), li_points["lat"].to_numpy())
    assert err.max() < 0.002  # the 1 mm rounding above


def test_vector_file_in_a_projected_crs_is_reprojected(li_points, tmp_path):
    path = tmp_path / "fac_utm.gpkg"
    _gdf(li_points).to_crs("EPSG:32632").to_file(path, driver="GPKG")
    fac = load_facilities(path)
    assert np.allclose(fac.geometry.x, li_points["lon"], atol=1e-9, rtol=0)
    assert np.allclose(fac.geometry.y, li_points["lat"], atol=1e-9, rtol=0)


def test_building_outline_becomes_a_point_inside_it(li_points, tmp_path):
    gdf = _gdf(li_points)
    metric = gdf.to_crs("EPSG:32632")
    outline = metric.geometry.iloc[0].buffer(30.0)  # a 30 m "building" around the hospital
    gdf.loc[0, "geometry"] = gpd.GeoSeries([outline], crs="EPSG:32632").to_crs(4326).iloc[0]
    path = tmp_path / "outline.geojson"
    gdf.to_file(path, driver="GeoJSON")
    with pytest.warns(InputWarning, match="1 facilities are not points"):
        fac = load_facilities(path)
    assert fac.geom_type.eq("Point").all()
    assert haversine_m(fac.geometry.x.iloc[0], fac.geometry.y.iloc[0],
                       li_points["lon"].iloc[0], li_points["lat"].iloc[0]) < 31.0


@pytest.mark.parametrize(
    ("path", "pop_csv", "pop_col", "n", "total"),
    [(LIECHTENSTEIN_MUNICIPALITIES, LIECHTENSTEIN_POPULATION, "population_2014_12_31", 11, 37370),
     (ANDORRA_PARISHES, ANDORRA_POPULATION, "population_2010", 7, 85015)],
)
def test_shipped_boundaries(path, pop_csv, pop_col, n, total):
    units = load_boundaries(path, id_column="unit_id", name_column="name", level="x",
                            population_column="population")
    official = pd.read_csv(pop_csv)[pop_col]
    assert len(units) == n == len(official)
    assert units["population"].sum() == total == official.sum()
    assert units["unit_id"].is_unique
    assert (units["level"] == "x").all()
    assert units.geom_type.isin(["Polygon", "MultiPolygon"]).all()
    assert units.is_valid.all()
    assert list(units.columns[:6]) == ["unit_id", "name", "level", "parent_id", "population",
                                       "urban_rural"]


@pytest.mark.parametrize("fmt", ["gpkg", "zip", "shp"])
def test_boundaries_round_trip_through_gis_formats(ad_units, tmp_path, fmt):
    src = ad_units[["unit_id", "name", "population", "geometry"]].rename(
        columns={"unit_id": "code", "population": "pop"}).assign(parent="AD")
    if fmt == "gpkg":
        path = tmp_path / "parishes.gpkg"
        src.to_file(path, driver="GPKG", layer="parishes")
    else:
        folder = tmp_path / "shp"
        folder.mkdir()
        src.to_file(folder / "parishes.shp", driver="ESRI Shapefile")
        path = folder / "parishes.shp"
        if fmt == "zip":
            path = tmp_path / "parishes.zip"
            with zipfile.ZipFile(path, "w") as zf:
                for part in folder.iterdir():
                    zf.write(part, part.name)
    units = load_boundaries(path, id_column="code", name_column="name", level="parish",
                            population_column="pop", parent_column="parent")
    assert units["unit_id"].tolist() == ad_units["unit_id"].tolist()
    assert units["population"].sum() == 85015
    assert (units["parent_id"] == "AD").all()
    same = [a.equals(b) for a, b in zip(units.geometry, ad_units.geometry, strict=True)]
    assert all(same)


def test_facilities_inside_and_outside_the_boundaries(li_points, li_units, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        fac = load_facilities(write_as(li_points, tmp_path, "csv"))
        assert check_facilities_within(fac, li_units) == []
    # independent check: every point is covered by one municipality polygon
    country = shapely.union_all(li_units.geometry.to_numpy())
    assert all(country.covers(p) for p in fac.geometry)
    # an Andorran pharmacy in the Liechtenstein file lies outside every municipality
    extra = pd.concat([li_points, pd.DataFrame([{"id": "ad1", "name": "Farmacia D Encamp",
                                                 "type": "pharmacy", "lon": 1.579052,
                                                 "lat": 42.533233}])], ignore_index=True)
    path = tmp_path / "extra.csv"
    extra.to_csv(path, index=False)
    fac = load_facilities(path)
    with pytest.warns(InputWarning, match=r"1 facility lies outside every boundary: ad1 "
                                          r"\(Farmacia D Encamp, 1\.579052, 42\.533233\)"):
        outside = check_facilities_within(fac, li_units)
    assert outside == ["ad1"]
    assert len(fac) == len(li_points) + 1  # kept


def test_population_from_the_units_column(li_units):
    places = load_population(kind="units", units=li_units)
    assert list(places.columns[:5]) == ["place_id", "unit_id", "population", "urban_rural",
                                        "ur_source"]
    assert len(places) == 11
    assert places["population"].sum() == 37370
    for place, unit in zip(places.itertuples(), li_units.itertuples(), strict=True):
        assert place.unit_id == unit.unit_id
        assert unit.geometry.contains(place.geometry)


def test_population_points_get_their_unit(ad_units, tmp_path):
    # real places: the Andorran health POIs standing in as village points
    pts = osm_health_points(ANDORRA_PBF)
    pts = pts.assign(人口=np.arange(1, len(pts) + 1) * 10,
                     城乡=np.where(np.arange(len(pts)) % 2 == 0, "城镇", "220"))
    path = tmp_path / "villages.csv"
    pts[["id", "人口", "城乡", "lon", "lat"]].to_csv(path, index=False)
    places = load_population(path, kind="points", units=ad_units, urban_rural_column="城乡")
    assert places["place_id"].tolist() == pts["id"].tolist()
    assert places["population"].sum() == pts["人口"].sum()
    expected_ur = ["urban" if i % 2 == 0 else "rural" for i in range(len(pts))]
    assert places["urban_rural"].tolist() == expected_ur
    assert (places["ur_source"] == "column").all()
    for place in places.itertuples():
        owners = ad_units.loc[ad_units.covers(place.geometry), "unit_id"].tolist()
        assert place.unit_id == (owners[0] if owners else None)
    assert places["unit_id"].notna().all()


def test_geotiff_population_in_utm_sums_and_lands_right(ad_units, tmp_path):
    # 200 m grid in UTM 31N over Andorra la Vella, with nodata, zero and negative cells
    rng = np.random.default_rng(3)
    grid = rng.integers(0, 50, size=(12, 15)).astype("float32")
    grid[0, :] = -9999.0  # nodata row
    grid[5, 5] = 0.0
    grid[6, 6] = -3.0
    grid[7, 7] = np.nan
    x0, y0, res = 375_000.0, 4_711_000.0, 200.0
    path = tmp_path / "pop.tif"
    with rasterio.open(path, "w", driver="GTiff", width=15, height=12, count=1,
                       dtype="float32", crs="EPSG:32631", nodata=-9999.0,
                       transform=Affine(res, 0.0, x0, 0.0, -res, y0)) as ds:
        ds.write(grid, 1)
    before = sorted(p.name for p in tmp_path.iterdir())
    places = load_population(path, kind="raster", units=ad_units)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no .aux.xml written
    keep = np.isfinite(grid) & (grid > 0)
    assert len(places) == int(keep.sum())
    assert places["population"].sum() == pytest.approx(float(grid[keep].sum()), abs=1e-6)
    assert (places["population"] > 0).all()
    # the cell in row 3, column 4 sits at its centre, computed by hand and projected
    r, c = 3, 4
    cx, cy = x0 + (c + 0.5) * res, y0 - (r + 0.5) * res
    lon, lat = Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True).transform(cx, cy)
    cell = places.set_index("place_id").loc[f"cell-{r}-{c}"]
    assert cell["population"] == grid[r, c]
    assert math.isclose(cell.geometry.x, lon, abs_tol=1e-9)
    assert math.isclose(cell.geometry.y, lat, abs_tol=1e-9)
    # that cell centre is in Andorra la Vella or a neighbour parish, found independently
    owners = ad_units.loc[ad_units.covers(cell.geometry), "unit_id"].tolist()
    assert cell["unit_id"] == owners[0]


def test_geotiff_in_lon_lat(tmp_path):
    grid = np.array([[1.0, 2.0], [0.0, 4.5]], dtype="float64")
    path = tmp_path / "ll.tif"
    with rasterio.open(path, "w", driver="GTiff", width=2, height=2, count=1, dtype="float64",
                       crs="EPSG:4326", transform=Affine(0.01, 0.0, 9.5, 0.0, -0.01, 47.2)) as ds:
        ds.write(grid, 1)
    places = load_population(path, kind="raster")
    assert places["population"].tolist() == [1.0, 2.0, 4.5]
    assert places.geometry.x.round(9).tolist() == [9.505, 9.515, 9.515]
    assert places.geometry.y.round(9).tolist() == [47.195, 47.195, 47.185]


@pytest.mark.parametrize(("country", "total"), [("andorra", 85015), ("liechtenstein", 37370)])
def test_shipped_population_places(country, total, ad_units, li_units):
    path = DATA / "population" / f"{country}_places.geojson"
    raw = gpd.read_file(path)
    places = load_population(path, kind="points", id_column="place_id",
                             urban_rural_column="urban_rural")
    assert places["population"].sum() == pytest.approx(total, abs=0.01)
    assert places["place_id"].tolist() == raw["place_id"].tolist()
    assert places["unit_id"].tolist() == raw["unit_id"].tolist()  # the file's own column
    assert places["ur_source"].tolist() == raw["ur_source"].tolist()
    # with the units layer, unit_id is re-decided from the geometry and agrees everywhere
    units = ad_units if country == "andorra" else li_units
    placed = load_population(path, kind="points", units=units, id_column="place_id")
    assert placed["unit_id"].tolist() == raw["unit_id"].tolist()
    assert placed["urban_rural"].isna().all()  # not asked for: left to the classifier


def test_gcj02_geojson_export_from_a_web_map(tmp_path):
    # GeoJSON cannot declare GCJ-02: the crs option says the lon/lat are web-map coordinates
    gdf = gpd.GeoDataFrame({"id": [n for n, _, _ in REAL_GCJ], "type": "clinic"},
                           geometry=gpd.points_from_xy([g[0] for _, _, g in REAL_GCJ],
                                                       [g[1] for _, _, g in REAL_GCJ]),
                           crs="EPSG:4326")
    path = tmp_path / "amap.geojson"
    gdf.to_file(path, driver="GeoJSON")
    fac = load_facilities(path, crs="GCJ-02")
    err = haversine_m(fac.geometry.x.to_numpy(), fac.geometry.y.to_numpy(),
                      np.array([w[0] for _, w, _ in REAL_GCJ]),
                      np.array([w[1] for _, w, _ in REAL_GCJ]))
    assert err.max() < 0.05
