import hashlib
import http.server
import json
import socket
import threading

import geopandas as gpd
import osmium
import pandas as pd
import pytest
import shapely
import shapely.wkb
from covplan.china import fetch
from covplan.errors import CoverageError
from covplan.scenario import load_scenario
from shipped import ANDORRA_PBF, LIECHTENSTEIN_PBF

PAYLOAD = ANDORRA_PBF.read_bytes()
SHA = hashlib.sha256(PAYLOAD).hexdigest()
ROUTE = "/asia/china/chongqing-latest.osm.pbf"


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        if self.path != ROUTE:
            self.send_error(404, "Not Found")
            return
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            body = PAYLOAD[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            body = PAYLOAD
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.truncate_next:
            server.truncate_next = False
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture()
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.requests = []
    srv.truncate_next = False
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def _base(srv):
    return f"http://127.0.0.1:{srv.server_address[1]}"


def test_region_url():
    assert fetch.region_url("chongqing", base_url="http://h/x/") == (
        "http://h/x/asia/china/chongqing-latest.osm.pbf")
    assert fetch.region_url("四川", base_url="http://h") == (
        "http://h/asia/china/sichuan-latest.osm.pbf")
    assert fetch.region_url("sichuan").startswith(fetch.DEFAULT_BASE_URL)
    with pytest.raises(CoverageError, match="unknown region"):
        fetch.region_url("chong qing!")


def test_full_download_then_reuse(server, tmp_path):
    url = fetch.region_url("chongqing", base_url=_base(server))
    dest = tmp_path / "chongqing-latest.osm.pbf"
    seen = []
    rec = fetch.download(url, dest, timeout=5, chunk_size=65536,
                         progress=lambda done, total: seen.append((done, total)))
    assert rec.status == "downloaded"
    assert dest.read_bytes() == PAYLOAD
    assert rec.sha256 == SHA and rec.bytes == len(PAYLOAD)
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert not (tmp_path / "chongqing-latest.osm.pbf.part").exists()
    assert server.requests == [(ROUTE, None)]
    again = fetch.download(url, dest, timeout=5)
    assert again.status == "reused" and again.sha256 == SHA
    assert len(server.requests) == 1  # nothing asked of the server


def test_resume_after_truncated_partial_file(server, tmp_path):
    url = fetch.region_url("chongqing", base_url=_base(server))
    dest = tmp_path / "x.osm.pbf"
    (tmp_path / "x.osm.pbf.part").write_bytes(PAYLOAD[:200_000])
    rec = fetch.download(url, dest, timeout=5)
    assert rec.status == "resumed"
    assert server.requests == [(ROUTE, "bytes=200000-")]
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == SHA == rec.sha256


def test_connection_cut_midway_then_resumed(server, tmp_path):
    url = fetch.region_url("chongqing", base_url=_base(server))
    dest = tmp_path / "y.osm.pbf"
    server.truncate_next = True
    with pytest.raises(CoverageError, match="run again to resume"):
        fetch.download(url, dest, timeout=5)
    part = tmp_path / "y.osm.pbf.part"
    assert part.stat().st_size == len(PAYLOAD) // 3 and not dest.exists()
    rec = fetch.download(url, dest, timeout=5)
    assert rec.status == "resumed" and rec.sha256 == SHA
    assert server.requests[-1] == (ROUTE, f"bytes={len(PAYLOAD) // 3}-")


def test_http_error_and_refused_port(server, tmp_path):
    with pytest.raises(CoverageError, match="HTTP 404"):
        fetch.download(_base(server) + "/asia/china/nowhere-latest.osm.pbf",
                       tmp_path / "n.pbf", timeout=5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(CoverageError, match="offline"):
        fetch.download(f"http://127.0.0.1:{port}/a.osm.pbf", tmp_path / "a.pbf", timeout=5)
    assert not (tmp_path / "a.pbf").exists()


def _osmium_polygon(path, relation_id):
    """The relation's area assembled by libosmium (independent of covplan.inputs.osm_features)."""
    factory = osmium.geom.WKBFactory()
    for obj in osmium.FileProcessor(str(path)).with_areas():
        if obj.is_area() and obj.from_way() is False and obj.orig_id() == relation_id:
            return shapely.wkb.loads(factory.create_multipolygon(obj), hex=True)
    raise AssertionError("relation not assembled")


def _health_points(path):
    kinds = {"hospital", "clinic", "doctors", "pharmacy"}
    out = {}
    for obj in osmium.FileProcessor(str(path)).with_locations():
        tags = dict(obj.tags)
        if tags.get("amenity") not in kinds and not any(k == "healthcare" for k in tags):
            continue
        if obj.is_node():
            out[f"osm-n{obj.id}"] = shapely.Point(obj.location.lon, obj.location.lat)
        elif obj.is_way():
            ring = [(n.location.lon, n.location.lat) for n in obj.nodes]
            out[f"osm-w{obj.id}"] = shapely.Polygon(ring).centroid
    return out


def test_fetch_andorra_la_vella_end_to_end(server, tmp_path):
    """Download the served extract, cut it to Andorra la Vella (relation 2804753) + 2 km."""
    out = tmp_path / "out"
    result = fetch.fetch_district(
        None, out_dir=out, url=fetch.region_url("chongqing", base_url=_base(server)),
        download_dir=tmp_path / "cache", relation_id=2804753, buffer_m=2000, language="en",
        timeout=5,
    )
    parish = _osmium_polygon(ANDORRA_PBF, 2804753)
    crs = "EPSG:32631"
    parish_m = gpd.GeoSeries([parish], crs="EPSG:4326").to_crs(crs).iloc[0]
    assert result.district.to_crs(crs).area.iloc[0] == pytest.approx(parish_m.area, rel=1e-6)

    # manifest: the download, pinned
    manifest = json.loads(result.manifest.read_text(encoding="utf-8"))
    (dl,) = manifest["downloads"]
    assert dl["sha256"] == SHA and dl["status"] == "downloaded"
    assert dl["url"].endswith(ROUTE) and dl["date"][:2] == "20"
    assert manifest["district"]["osm_relation"] == 2804753
    assert manifest["townships_approximate"] is True

    # facilities within 2 km of the parish, found independently
    pts = _health_points(ANDORRA_PBF)
    near = {
        fid for fid, p in pts.items()
        if gpd.GeoSeries([p], crs="EPSG:4326").to_crs(crs).iloc[0].distance(parish_m) <= 2000
    }
    assert set(result.facilities["facility_id"]) == near
    assert len(near) == 3 and not result.facilities["in_district"].any()

    # village/town places inside the parish
    assert set(result.places["name"]) == {
        "Andorra la Vella", "Santa Coloma", "La Margineda", "Centre històric"}
    assert set(result.places["unit_id"]) <= set(result.townships["unit_id"])

    # townships: no admin_level 8 inside Andorra -> Voronoi cells of the town/village seats
    assert result.townships_approximate and result.townships["approximate"].all()
    assert set(result.townships["name"]) == {"Andorra la Vella", "Santa Coloma", "La Margineda"}
    cells = result.townships.to_crs(crs)
    assert cells.area.sum() == pytest.approx(parish_m.area, rel=1e-4)
    assert shapely.union_all(cells.geometry.values).symmetric_difference(parish_m).area < (
        1e-4 * parish_m.area)

    # the cut extract: smaller, and every way in it has all its nodes (reference-complete)
    node_ids = set()
    way_nodes = []
    for obj in osmium.FileProcessor(str(result.extract)):
        if obj.is_node():
            node_ids.add(obj.id)
        elif obj.is_way():
            way_nodes.extend(n.ref for n in obj.nodes)
    assert way_nodes and set(way_nodes) <= node_ids
    assert result.extract.stat().st_size < ANDORRA_PBF.stat().st_size / 2
    # Andorra la Vella's place node is in the cut; Canillo's (far east) is not
    assert 58957648 in node_ids and 64954433 not in node_ids

    # the scenario is valid and points at the written files
    scenario = load_scenario(result.scenario)
    assert scenario.name == "Andorra la Vella"
    assert scenario.network["source"] == result.extract
    assert scenario.boundaries["path"].is_file() and scenario.facilities["path"].is_file()

    # the written scenario runs an audit once township populations are filled in: here the
    # official 2010 total of Andorra la Vella (23,505) spread over the cells by area
    towns = gpd.read_file(scenario.boundaries["path"])
    area = towns.to_crs(crs).area
    towns["population"] = 23505 * area / area.sum()
    towns.to_file(scenario.boundaries["path"], driver="GeoJSON")
    from click.testing import CliRunner
    from covplan.cli import main

    audit_dir = tmp_path / "audit"
    run = CliRunner().invoke(main, ["-q", "audit", str(result.scenario), "--out", str(audit_dir)])
    assert run.exit_code in (0, 1), run.output
    units = pd.read_csv(audit_dir / "units.csv")
    assert set(units["rule_id"]) == {"BZ-12", "BZ-13", "SPB-01", "SPB-02"}
    spb01 = units[units["rule_id"] == "SPB-01"]
    assert len(spb01) == 3
    assert spb01["population"].sum() == pytest.approx(23505, abs=0.01)
    # no urban/rural class from NBS for a non-Chinese district: every place defaults to rural,
    # so the urban 15-minute circle applies to nobody and the rural 30-minute one to everyone
    assert units.loc[units["rule_id"] == "BZ-12", "population"].fillna(0).sum() == 0
    assert units.loc[units["rule_id"] == "BZ-13", "population"].sum() == pytest.approx(23505)
    assert (audit_dir / "map.html").read_text(encoding="utf-8").count("OpenStreetMap") > 0

    # running again reuses the download and asks the server nothing more
    n_requests = len(server.requests)
    again = fetch.fetch_district(
        None, out_dir=out, url=fetch.region_url("chongqing", base_url=_base(server)),
        download_dir=tmp_path / "cache", relation_id=2804753, buffer_m=2000, timeout=5,
    )
    assert again.downloads[0].status == "reused" and len(server.requests) == n_requests


def test_fetch_liechtenstein_unterland_uses_mapped_townships(tmp_path):
    """Wahlkreis Unterland (relation 49, admin_level 6) holds five admin_level 8 municipalities."""
    result = fetch.fetch_district(None, out_dir=tmp_path, pbf=LIECHTENSTEIN_PBF, relation_id=49,
                                  buffer_m=1000)
    assert not result.townships_approximate
    assert set(result.townships["name"]) == {
        "Eschen", "Gamprin", "Mauren", "Ruggell", "Schellenberg"}
    assert not result.townships["approximate"].any()
    assert json.loads(result.manifest.read_text())["downloads"][0]["status"] == "local"


def test_fetch_without_outline_or_source_is_clear(tmp_path):
    with pytest.raises(CoverageError, match="no district outline"):
        fetch.fetch_district(None, out_dir=tmp_path, pbf=ANDORRA_PBF)
    with pytest.raises(CoverageError, match="no extract to download"):
        fetch.fetch_district(None, out_dir=tmp_path, relation_id=1)


def test_fetch_shipped_county_downloads_its_region(server, tmp_path):
    """大渡口区 -> the chongqing region URL; the served file (Andorra) has no such relation."""
    with pytest.raises(CoverageError, match="admin_level=6 relations named"):
        fetch.fetch_district("Dadukou", out_dir=tmp_path / "o", base_url=_base(server),
                             download_dir=tmp_path / "cache", timeout=5)
    assert server.requests == [(ROUTE, None)]
    assert (tmp_path / "cache" / "chongqing-latest.osm.pbf").read_bytes() == PAYLOAD
