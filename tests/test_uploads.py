"""UploadStore: size limits, nothing written outside the session folder, folder removed at end.

Real files: the shipped Liechtenstein boundaries and places; the loaders read what was saved.
"""

from __future__ import annotations

import gc
import io
import os
import stat
import zipfile
from pathlib import Path

import geopandas as gpd
import pytest
from covplan.errors import CoverageError
from covplan.inputs.loaders import load_boundaries, load_population
from covplan.inputs.uploads import MAX_NAME_CHARS, UploadStore, safe_name
from shipped import LIECHTENSTEIN_MUNICIPALITIES, LIECHTENSTEIN_PLACES


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Parent of the stores; a sibling 'outside' folder must stay empty."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "sessions").mkdir()
    return tmp_path


def _everything(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(("name", "expected"), [
    ("../../etc/passwd", "passwd"),
    ("/etc/cron.d/evil", "evil"),
    ("..\\..\\Windows\\system.ini", "system.ini"),
    ("C:\\Users\\王\\卫生院名单.csv", "卫生院名单.csv"),
    ("C:evil.csv", "evil.csv"),
    ("a/b/c.geojson", "c.geojson"),
    ("..", "upload"),
    ("", "upload"),
    ("...", "upload"),
    (".bashrc", "bashrc"),
    ("bad\x00name\n.csv", "badname.csv"),
    ("facilities (v2).csv", "facilities _v2_.csv"),
    ("$(rm -rf ~);.csv", "__rm -rf ___.csv"),
])
def test_safe_name(name, expected):
    assert safe_name(name) == expected


def test_long_names_keep_their_suffix():
    name = "村" * 300 + ".geojson"
    out = safe_name(name)
    assert len(out) == MAX_NAME_CHARS and out.endswith(".geojson") and out.startswith("村")


def test_save_reads_back_and_loads(root):
    store = UploadStore(root=root / "sessions")
    assert store.path.parent == (root / "sessions").resolve()
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o700  # private to the server's user
    data = LIECHTENSTEIN_MUNICIPALITIES.read_bytes()
    path = store.save("../../municipalities.geojson", data)
    assert path == store.path / "municipalities.geojson"
    assert path.read_bytes() == data
    units = load_boundaries(path, id_column="unit_id", name_column="name", level="m")
    shipped_units = gpd.read_file(LIECHTENSTEIN_MUNICIPALITIES)
    assert units["unit_id"].tolist() == shipped_units["unit_id"].tolist()
    # a stream is copied in chunks; saving the same name again replaces the file
    again = store.save("municipalities.geojson", io.BytesIO(b"{}"))
    assert again == path and path.read_bytes() == b"{}"
    assert store.files() == [path] and store.used_bytes() == 2
    assert _everything(root / "outside") == []


@pytest.mark.parametrize("name", ["../../outside/x.csv", "/tmp/../outside/x.csv",
                                  "..\\outside\\x.csv"])
def test_traversal_names_stay_inside(root, name):
    store = UploadStore(root=root / "sessions")
    path = store.save(name, b"id\n1\n")
    assert path.parent == store.path and path.name == "x.csv"
    assert _everything(root / "outside") == []


def test_size_limit_leaves_nothing(root, monkeypatch):
    store = UploadStore(root=root / "sessions", max_file_bytes=1000)
    with pytest.raises(CoverageError) as info:
        store.save("big.csv", b"x" * 1001)
    assert "big.csv: the upload is over the limit of 1,000 bytes (at least 1,001 bytes)" in \
        str(info.value)
    assert "COVPLAN_MAX_INPUT_BYTES" in str(info.value)
    # a stream is stopped as soon as it passes the limit, and its partial file removed
    with pytest.raises(CoverageError, match="over the limit of 1,000 bytes"):
        store.save("stream.csv", io.BytesIO(b"y" * 5000))
    assert _everything(store.path) == []
    assert store.save("ok.csv", b"z" * 1000).stat().st_size == 1000  # at the limit is fine
    # default: the loaders' limits, overridable by environment variable
    store2 = UploadStore(root=root / "sessions")
    monkeypatch.setenv("COVPLAN_MAX_NETWORK_BYTES", "10")
    assert store2.limit("network") == 10
    with pytest.raises(CoverageError, match="COVPLAN_MAX_NETWORK_BYTES"):
        store2.save("roads.osm.pbf", b"0123456789A", kind="network")
    assert store2.save("facilities.csv", b"0123456789A").stat().st_size == 11


def _zip(path: Path, members: dict[str, bytes], *, mode: int | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def test_extract_a_zipped_layer(root):
    store = UploadStore(root=root / "sessions")
    data = LIECHTENSTEIN_PLACES.read_bytes()
    upload = store.save("places.zip", _zip(root / "p.zip",
                                           {"export/": b"", "export/places.geojson": data})
                        .read_bytes())
    folder = store.extract_zip(upload)
    assert folder == store.path / "places"
    inner = folder / "export" / "places.geojson"
    assert inner.read_bytes() == data
    places = load_population(inner, kind="points", id_column="place_id")
    assert len(places) == 734 and places["population"].sum() == pytest.approx(37_370)
    assert _everything(root / "outside") == []


@pytest.mark.parametrize("member", ["../../outside/evil.geojson", "/tmp/evil-abs.geojson",
                                    "ok/../../../outside/evil.geojson",
                                    "..\\..\\outside\\evil.geojson", "C:/evil.geojson"])
def test_zip_slip_is_refused_and_nothing_is_written(root, member):
    store = UploadStore(root=root / "sessions")
    evil = _zip(root / "evil.zip", {"good.geojson": b"{}", member: b"owned"})
    before = _everything(root)
    with pytest.raises(CoverageError) as info:
        store.extract_zip(evil)
    msg = str(info.value)
    assert "evil.zip: refused, 1 member(s) of the zip would be written outside its folder" in msg
    assert repr(member) in msg
    assert _everything(root) == before  # not even the good member was unpacked
    assert not Path("/tmp/evil-abs.geojson").exists()


def test_symlink_members_are_refused(root):
    store = UploadStore(root=root / "sessions")
    link = _zip(root / "link.zip", {"passwd": b"/etc/passwd"}, mode=stat.S_IFLNK | 0o777)
    with pytest.raises(CoverageError, match="would be written outside its folder or are links"):
        store.extract_zip(link)
    assert _everything(store.path) == []


def test_zip_bombs_are_refused(root):
    store = UploadStore(root=root / "sessions", max_unzipped_bytes=1_000_000, max_members=50)
    bomb = _zip(root / "bomb.zip", {f"part{i}.csv": b"0" * 400_000 for i in range(3)})
    assert bomb.stat().st_size < 10_000  # 1.2 MB inflates from a few kB
    with pytest.raises(CoverageError) as info:
        store.extract_zip(bomb)
    assert "bomb.zip: the zip unpacks to more than the limit of 1,000,000 bytes (at least " \
        "1,200,000 bytes)" in str(info.value)
    assert _everything(store.path) == []
    many = _zip(root / "many.zip", {f"f{i}.txt": b"" for i in range(51)})
    with pytest.raises(CoverageError, match="holds 51 members, more than 50"):
        store.extract_zip(many)
    # a zip whose headers understate the size: no more than the declared 100 bytes are
    # inflated, the CRC check then fails, and the zip is refused
    liar = root / "liar.zip"
    _zip(liar, {"big.csv": b"1" * 2_000_000})
    raw = bytearray(liar.read_bytes())
    info_ = zipfile.ZipFile(liar).infolist()[0]
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 24:central + 28] = (100).to_bytes(4, "little")  # uncompressed size: 100
    raw[info_.header_offset + 22:info_.header_offset + 26] = (100).to_bytes(4, "little")
    liar.write_bytes(bytes(raw))
    assert zipfile.ZipFile(liar).infolist()[0].file_size == 100
    with pytest.raises(CoverageError) as info:
        store.extract_zip(liar)
    assert "liar.zip: cannot unpack the zip (Bad CRC-32 for file 'big.csv')" in str(info.value)
    assert _everything(store.path) == []


def test_broken_zips(root):
    store = UploadStore(root=root / "sessions")
    bad = store.save("bad.zip", b"PK\x03\x04 not really")
    with pytest.raises(CoverageError, match="bad.zip: not a readable zip file"):
        store.extract_zip(bad)
    clash = _zip(root / "clash.zip", {"a": b"file", "a/b.txt": b"under a file"})
    with pytest.raises(CoverageError, match="clash.zip: cannot unpack the zip"):
        store.extract_zip(clash)
    assert _everything(store.path) == ["bad.zip"]


def test_cleanup_and_finalizer_remove_the_folder(root):
    store = UploadStore(root=root / "sessions")
    store.save("a.csv", b"1")
    store.extract_zip(_zip(root / "z.zip", {"d/e.txt": b"2"}))
    folder = store.path
    assert folder.is_dir() and store.alive
    store.cleanup()
    assert not folder.exists() and not store.alive
    store.cleanup()  # twice is fine
    with pytest.raises(CoverageError, match="was removed \\(the session ended\\)"):
        store.save("b.csv", b"2")
    # a store dropped with its session removes its folder when garbage-collected
    other = UploadStore(root=root / "sessions")
    other.save("c.csv", b"3")
    path = other.path
    del other
    gc.collect()
    assert not path.exists()
    with UploadStore(root=root / "sessions") as third:
        third.save("d.csv", b"4")
    assert not third.path.exists()
    assert os.listdir(root / "sessions") == []


def test_sessions_do_not_share_folders(root):
    a, b = UploadStore(root=root / "sessions"), UploadStore(root=root / "sessions")
    assert a.path != b.path
    a.save("facilities.csv", b"session a")
    b.save("facilities.csv", b"session b")
    assert (a.path / "facilities.csv").read_bytes() == b"session a"
    assert (b.path / "facilities.csv").read_bytes() == b"session b"
    a.cleanup()
    assert (b.path / "facilities.csv").read_bytes() == b"session b"
    b.cleanup()
