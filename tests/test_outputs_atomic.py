"""Atomic write helpers (covplan.outputs.atomic) and the run manifest builder."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely
from covplan.errors import CoverageError
from covplan.outputs.atomic import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    staged_directory,
)
from covplan.outputs.manifest import (
    build_manifest,
    file_sha256,
    manifest_digest,
    read_osm_extract_date,
    script_safe_json,
)
from shipped import ANDORRA_PBF, ANDORRA_POPULATION

ROOT = Path(__file__).resolve().parents[1]


def test_atomic_path_replaces_on_success(tmp_path: Path) -> None:
    target = tmp_path / "units.csv"
    target.write_text("old\n")
    with atomic_path(target) as tmp:
        assert tmp.parent.parent == tmp_path and tmp.name == "units.csv" and not tmp.exists()
        tmp.write_text("new\n")
        assert target.read_text() == "old\n"  # not visible before the block ends
    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["units.csv"]


def test_atomic_path_keeps_old_file_when_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "units.csv"
    target.write_text("old\n")
    with pytest.raises(ValueError, match="half"), atomic_path(target) as tmp:
        tmp.write_text("half a fi")
        raise ValueError("half written")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["units.csv"]


def test_atomic_path_requires_a_file_and_a_folder(tmp_path: Path) -> None:
    with pytest.raises(CoverageError, match="produced no file"), atomic_path(tmp_path / "a.csv"):
        pass
    with pytest.raises(CoverageError, match="does not exist"), atomic_path(
        tmp_path / "missing" / "a.csv"
    ):
        pass


def test_atomic_path_with_gdal_writer(tmp_path: Path) -> None:
    """GDAL picks the driver from the suffix and leaves no journal files behind."""
    layer = gpd.GeoDataFrame({"name": ["Vaduz"]}, geometry=[shapely.Point(9.5209, 47.1410)],
                             crs="EPSG:4326")
    target = tmp_path / "isochrones.gpkg"
    for _ in range(2):  # the second write replaces the first
        with atomic_path(target) as tmp:
            layer.to_file(tmp, driver="GPKG")
    assert pyogrio.read_info(target)["features"] == 1
    assert [name for name, _ in pyogrio.list_layers(target)] == ["isochrones"]
    assert [p.name for p in tmp_path.iterdir()] == ["isochrones.gpkg"]


def test_atomic_write_text_and_bytes(tmp_path: Path) -> None:
    stale = tmp_path / f".a.txt.tmp-{2**22 + 1}-0f0f"  # a killed writer's leftover
    stale.mkdir()
    (stale / "a.txt").write_text("half")
    atomic_write_text(tmp_path / "a.txt", "覆盖率\n")
    assert not stale.exists()
    assert (tmp_path / "a.txt").read_bytes() == "覆盖率\n".encode()
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


def test_staged_directory_all_or_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with staged_directory(out) as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".out.staging-")
        (staging / "a.csv").write_text("1")
        (staging / "b.csv").write_text("2")
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.csv": "1", "b.csv": "2"}
    (out / "keep.txt").write_text("other file")
    with pytest.raises(RuntimeError), staged_directory(out) as staging:
        (staging / "a.csv").write_text("changed")
        raise RuntimeError("stop")
    assert {p.name: p.read_text() for p in out.iterdir()} == {
        "a.csv": "1", "b.csv": "2", "keep.txt": "other file"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_staged_directory_rejects_a_file_as_folder(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(CoverageError, match="out"), staged_directory(tmp_path / "out"):
        pass


def test_stale_staging_of_a_dead_process_is_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # pid 2**22 + 1 is above Linux' pid_max limit, so no live process has it.
    dead = tmp_path / f".out.staging-{2**22 + 1}-abc"
    dead.mkdir()
    (dead / "units.csv").write_text("half")
    alive = tmp_path / f".out.staging-{os.getpid()}-xyz"
    alive.mkdir()
    with staged_directory(out):
        pass
    assert not dead.exists()
    assert alive.exists()  # a concurrent run of a live process is left alone


def test_build_manifest_hashes_and_extract_date() -> None:
    manifest = build_manifest(
        inputs={"network": ANDORRA_PBF, "population": ANDORRA_POPULATION},
        parameters={"modes": ["walk"], "out": ROOT / "out"},
        timings={"network": 1.23456},
    )
    for role, path in (("network", ANDORRA_PBF), ("population", ANDORRA_POPULATION)):
        assert manifest["inputs"][role]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert manifest["inputs"][role]["bytes"] == path.stat().st_size
    # The PBF header says 2013-05-28 (replication timestamp) although the name says 05-23.
    assert manifest["osm_extract_date"] == "2013-05-28"
    assert manifest["parameters"] == {"modes": ["walk"], "out": str(ROOT / "out")}
    assert manifest["timings"] == {"network": 1.235}
    assert manifest["packages"]["pandas"] == pd.__version__
    json.dumps(manifest, allow_nan=False)  # plain JSON
    given = build_manifest(inputs={}, parameters={}, timings={}, osm_extract_date="2024-01-01")
    assert given["osm_extract_date"] == "2024-01-01"


def test_osm_extract_date_falls_back_to_file_name(tmp_path: Path) -> None:
    fake = tmp_path / "chongqing-2024-03-01.osm.pbf"
    fake.write_bytes(b"not a pbf")
    assert read_osm_extract_date(fake) == "2024-03-01"
    assert read_osm_extract_date(ANDORRA_POPULATION) is None


def test_manifest_errors_and_digest(tmp_path: Path) -> None:
    with pytest.raises(CoverageError, match="not a file"):
        build_manifest(inputs={"x": tmp_path / "missing.csv"}, parameters={}, timings={})
    expected = hashlib.sha256(ANDORRA_POPULATION.read_bytes()).hexdigest()
    assert file_sha256(ANDORRA_POPULATION) == expected
    a = {"b": 1, "a": [1, 2]}
    assert manifest_digest(a) == manifest_digest({"a": [1, 2], "b": 1})
    assert manifest_digest(a) == hashlib.sha256(b'{"a":[1,2],"b":1}').hexdigest()
    text = script_safe_json({"name": "</script><script>alert(1)</script> & 'x'"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text)["name"] == "</script><script>alert(1)</script> & 'x'"
