import hashlib
import http.server
import json
import socket
import threading
import time

import geopandas as gpd
import osmium
import pandas as pd
import pytest
import shapely
import shapely.wkb
from covplan.china import fetch
from covplan.errors import CoverageError, InputWarning
from covplan.scenario import load_scenario
from shipped import ANDORRA_PBF, LIECHTENSTEIN_PBF

PAYLOAD = ANDORRA_PBF.read_bytes()
SHA = hashlib.sha256(PAYLOAD).hexdigest()
ROUTE = "/asia/china/chongqing-latest.osm.pbf"


class _Handler(http.server.BaseHTTPRequestHandler):
    """A download server that can misbehave; its behaviour is set on the server object.

    ``server.files`` maps paths to bodies (``server.any_path`` serves ``PAYLOAD`` at every
    path); each file's ETag is a hash of its body (``server.etags`` False sends none) and its
    md5 is published at ``<path>.md5`` (``server.md5`` maps paths to the published text; a
    path missing there gets a 404). ``server.truncate_next`` / ``server.truncate_always`` send
    a third of the body under the full Content-Length and close; ``server.trickle`` sends the
    body 1 KB at a time, ``server.trickle`` seconds apart. Range requests get 206 and ignore
    If-Range, as some servers do. File requests are logged in ``server.requests``, checksum
    requests in ``server.checksum_requests``.
    """

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        if self.path.endswith(".md5"):
            server.checksum_requests.append(self.path)
            text = server.md5.get(self.path[: -len(".md5")])
            if text is None:
                self.send_error(404, "Not Found")
                return
            self._send(200, text.encode("ascii"), {})
            return
        server.requests.append((self.path, self.headers.get("Range")))
        payload = PAYLOAD if server.any_path else server.files.get(self.path)
        if payload is None:
            self.send_error(404, "Not Found")
            return
        headers = {}
        if server.etags:
            headers["ETag"] = f'"{hashlib.sha256(payload).hexdigest()[:16]}"'
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            headers["Content-Range"] = f"bytes {start}-{len(payload) - 1}/{len(payload)}"
            self._send(206, payload[start:], headers)
        else:
            self._send(200, payload, headers)

    def _send(self, status, body, headers):
        server = self.server
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if status in (200, 206) and (server.truncate_next or server.truncate_always):
                server.truncate_next = False
                self.wfile.write(body[: len(body) // 3])
                self.wfile.flush()
                self.close_connection = True
                return
            if server.trickle and status in (200, 206):
                for i in range(0, len(body), 1024):
                    self.wfile.write(body[i:i + 1024])
                    self.wfile.flush()
                    time.sleep(server.trickle)
                return
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


@pytest.fixture()
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.requests = []
    srv.checksum_requests = []
    srv.files = {ROUTE: PAYLOAD}
    srv.md5 = {ROUTE: f"{hashlib.md5(PAYLOAD).hexdigest()}  chongqing-latest.osm.pbf\n"}
    srv.etags = True
    srv.any_path = False
    srv.truncate_next = False
    srv.truncate_always = False
    srv.trickle = 0.0
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def _base(srv):
    return f"http://127.0.0.1:{srv.server_address[1]}"


def _etag(payload: bytes) -> str:
    return f'"{hashlib.sha256(payload).hexdigest()[:16]}"'


def _files(folder):
    """Every file under ``folder``, as paths relative to it."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


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
    assert server.checksum_requests == [ROUTE + ".md5"]  # the published md5 was checked
    again = fetch.download(url, dest, timeout=5)
    assert again.status == "reused" and again.sha256 == SHA
    assert len(server.requests) == 1  # nothing asked of the server


def test_resume_after_truncated_partial_file(server, tmp_path):
    url = fetch.region_url("chongqing", base_url=_base(server))
    dest = tmp_path / "x.osm.pbf"
    (tmp_path / "x.osm.pbf.part").write_bytes(PAYLOAD[:200_000])
    # what an earlier download of this file recorded beside its partial file
    (tmp_path / "x.osm.pbf.part.json").write_text(
        json.dumps({"url": url, "etag": _etag(PAYLOAD), "last_modified": None}),
        encoding="utf-8")
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


# ------------------------------------------------------------------ a hostile server
GARBAGE = bytes(range(256)) * 2000  # 512 kB that is no PBF file


def _problem_of(data: bytes, folder):
    path = folder / "check.bin"
    path.write_bytes(data)
    try:
        return fetch.pbf_problem(path)
    finally:
        path.unlink()


def test_garbage_body_is_deleted_not_kept(server, tmp_path):
    server.files[ROUTE] = GARBAGE
    server.md5[ROUTE] = hashlib.md5(GARBAGE).hexdigest()  # the checksum even matches
    url = fetch.region_url("chongqing", base_url=_base(server))
    header_len = int.from_bytes(GARBAGE[:4], "big")
    with pytest.raises(CoverageError) as info:
        fetch.download(url, tmp_path / "c.osm.pbf", timeout=5)
    assert str(info.value).startswith(
        f"download of {url} is not a usable OSM PBF extract: block 0 at byte 0 gives a header "
        f"length of {header_len:,} bytes")
    assert "it was deleted" in str(info.value)
    assert _files(tmp_path) == []
    # an HTML error page served as the file, without a checksum: the same
    server.files[ROUTE] = b"<html><body>502 Bad Gateway</body></html>"
    del server.md5[ROUTE]
    with pytest.raises(CoverageError, match="is not a usable OSM PBF extract"):
        fetch.download(url, tmp_path / "c.osm.pbf", timeout=5)
    assert _files(tmp_path) == []


def test_download_not_matching_the_published_md5_is_deleted(server, tmp_path):
    server.md5[ROUTE] = hashlib.md5(b"another file").hexdigest() + "  x.osm.pbf\n"
    url = fetch.region_url("chongqing", base_url=_base(server))
    with pytest.raises(CoverageError) as info:
        fetch.download(url, tmp_path / "c.osm.pbf", timeout=5)
    assert (f"({url}.md5: {hashlib.md5(b'another file').hexdigest()}, the download: "
            f"{hashlib.md5(PAYLOAD).hexdigest()}); it was deleted") in str(info.value)
    assert _files(tmp_path) == []


def test_truncated_body_is_never_the_extract(server, tmp_path):
    """Content-Length says more than is sent: resumable with an ETag, deleted without."""
    server.truncate_always = True
    url = fetch.region_url("chongqing", base_url=_base(server))
    n, sent = len(PAYLOAD), len(PAYLOAD) // 3
    with pytest.raises(CoverageError) as info:
        fetch.download(url, tmp_path / "c.osm.pbf", timeout=5)
    assert str(info.value) == (
        f"download of {url} ended early: {sent:,} of {n:,} bytes; run again to resume from "
        f"{tmp_path / 'c.osm.pbf.part'}")
    assert _files(tmp_path) == ["c.osm.pbf.part", "c.osm.pbf.part.json"]
    assert (tmp_path / "c.osm.pbf.part").read_bytes() == PAYLOAD[:sent]
    meta = json.loads((tmp_path / "c.osm.pbf.part.json").read_text(encoding="utf-8"))
    assert meta["url"] == url and meta["etag"] == _etag(PAYLOAD)
    # a server that names no version of its file: the partial cannot be resumed, so it goes
    server.etags = False
    with pytest.warns(InputWarning, match="does not serve the version of the file the partial"), \
            pytest.raises(CoverageError, match="cannot be resumed safely and was deleted"):
        fetch.download(url, tmp_path / "c.osm.pbf", timeout=5)
    assert _files(tmp_path) == []
    assert server.requests[-1] == (ROUTE, None)  # started over, no Range


def test_file_changed_on_the_server_between_partial_and_resume(server, tmp_path):
    url = fetch.region_url("chongqing", base_url=_base(server))
    dest = tmp_path / "c.osm.pbf"
    server.truncate_next = True
    with pytest.raises(CoverageError, match="run again to resume"):
        fetch.download(url, dest, timeout=5)
    cut = len(PAYLOAD) // 3
    # the server now serves another extract, and answers the Range request regardless
    other = LIECHTENSTEIN_PBF.read_bytes()
    server.files[ROUTE] = other
    server.md5[ROUTE] = hashlib.md5(other).hexdigest()
    assert _problem_of(PAYLOAD[:cut] + other[cut:], tmp_path) is not None
    with pytest.warns(InputWarning, match="does not serve the version of the file the partial"):
        rec = fetch.download(url, dest, timeout=5)
    assert server.requests == [(ROUTE, None), (ROUTE, f"bytes={cut}-"), (ROUTE, None)]
    assert rec.status == "downloaded" and dest.read_bytes() == other
    assert rec.sha256 == hashlib.sha256(other).hexdigest()
    assert _files(tmp_path) == ["c.osm.pbf", "c.osm.pbf.source.json"]


def test_partial_without_its_validators_starts_over(server, tmp_path):
    url = fetch.region_url("chongqing", base_url=_base(server))
    (tmp_path / "c.osm.pbf.part").write_bytes(LIECHTENSTEIN_PBF.read_bytes()[:100_000])
    with pytest.warns(InputWarning, match="starting the download over"):
        rec = fetch.download(url, tmp_path / "c.osm.pbf", timeout=5)
    assert server.requests == [(ROUTE, None)]
    assert rec.status == "downloaded" and rec.sha256 == SHA


@pytest.mark.parametrize("tail", ["/osm/..", "/../../x", "/a/%2e%2e"])
def test_url_never_names_the_file(server, tmp_path, tail):
    """A URL ending in ``..`` cannot write outside the download folder: names come from the
    district (here its OSM relation)."""
    server.any_path = True
    folder = tmp_path / "cache" / "osm"
    result = fetch.fetch_district(
        None, out_dir=tmp_path / "out", url=_base(server) + tail, download_dir=folder,
        relation_id=2804753, buffer_m=500, timeout=5,
    )
    assert server.requests == [(tail, None)]  # the URL really was asked for
    assert _files(tmp_path / "cache") == [
        "osm/osm-r2804753.osm.pbf", "osm/osm-r2804753.osm.pbf.source.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "out"]
    assert result.downloads[0].path == str(folder / "osm-r2804753.osm.pbf")
    assert (folder / "osm-r2804753.osm.pbf").read_bytes() == PAYLOAD


def test_slow_server_stops_at_the_deadline(server, tmp_path):
    server.trickle = 0.05  # 1 kB every 50 ms: the whole file would take half a minute
    url = fetch.region_url("chongqing", base_url=_base(server))
    start = time.monotonic()
    with pytest.raises(CoverageError) as info:
        fetch.download(url, tmp_path / "c.osm.pbf", timeout=5, deadline=1.0)
    elapsed = time.monotonic() - start
    assert 1.0 <= elapsed < 3.0
    text = str(info.value)
    assert text.startswith(f"download of {url} stopped at its deadline of 1 s after ")
    assert text.endswith(f"run again to resume from {tmp_path / 'c.osm.pbf.part'}, or allow "
                         "more time with --deadline SECONDS")
    kept = (tmp_path / "c.osm.pbf.part").read_bytes()
    assert 0 < len(kept) < len(PAYLOAD) and PAYLOAD.startswith(kept)
    assert f"after {len(kept):,} bytes" in text
    assert not (tmp_path / "c.osm.pbf").exists()


def test_cli_deadline_option(server, tmp_path):
    from click.testing import CliRunner
    from covplan.cli import main

    server.trickle = 0.05
    server.any_path = True
    url = _base(server) + "/district.osm.pbf"
    run = CliRunner().invoke(main, [
        "data", "fetch", "--out", str(tmp_path / "out"), "--extract-url", url,
        "--relation-id", "2804753", "--deadline", "0.5", "--timeout", "5"],
        env={"COVPLAN_CACHE_DIR": str(tmp_path / "cache"), "COVPLAN_CACHE": None})
    assert run.exit_code == 2, run.output
    assert f"Error: download of {url} stopped at its deadline of 0.5 s after " in run.stderr
    assert "Traceback" not in run.output
    assert not (tmp_path / "out" / "scenario.toml").exists()
    assert [p.name for p in (tmp_path / "cache").rglob("*.osm.pbf")] == []  # no extract


def test_pbf_check_on_the_shipped_extracts_and_their_cuts(tmp_path):
    assert fetch.pbf_problem(ANDORRA_PBF) is None and fetch.pbf_problem(LIECHTENSTEIN_PBF) is None
    assert "truncated" in _problem_of(PAYLOAD[:-10], tmp_path)
    assert _problem_of(b"", tmp_path) == "the file is empty"


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
    from covplan.standards.presets import preset_tables

    # the written scenario asks BZ-12/13 and the whole Shapingba preset (its county and
    # township counts included: a fetched district is a Chinese district)
    shapingba = {str(t["id"]) for t in preset_tables("shapingba")}
    assert {"SPB-01", "SPB-02", "SPB-08"} <= shapingba
    assert set(units["rule_id"]) == {"BZ-12", "BZ-13"} | shapingba
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
