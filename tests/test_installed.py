"""The product as a user installs it: ``pip install .`` (not editable) into a fresh venv.

From a folder outside the checkout, the installed ``covplan`` runs the default job, fetches a
district from a loopback server, and starts the app; coverage.py imports beside it.
The venv sees the test environment's third-party packages (``--system-site-packages``) so that
nothing is downloaded; ``covplan`` itself comes from the built wheel only.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from shipped import ANDORRA_SCENARIO, LIECHTENSTEIN_PBF, ROOT, SCENARIOS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("installed")
    source = base / "source"  # a copy, so that the build leaves nothing in the checkout
    shutil.copytree(ROOT / "coverage", source / "coverage",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    wheels = base / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(source)],
        check=True, capture_output=True, cwd=base,
    )
    (wheel,) = wheels.glob("coverage_planner-*.whl")
    env_dir = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(env_dir)],
                   check=True, capture_output=True)
    subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                    str(wheel)], check=True, capture_output=True)
    return env_dir


def _run(venv: Path, *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_installed_package_is_the_wheel_not_the_checkout(venv: Path, tmp_path: Path) -> None:
    code = ("import covplan, coverage, pathlib; coverage.Coverage; "
            "print(pathlib.Path(covplan.__file__).resolve())")
    done = _run(venv, str(venv / "bin" / "python"), "-c", code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    installed = Path(done.stdout.strip())
    assert installed.is_relative_to(venv.resolve()), installed
    # the package data came along
    for part in ("standards/preset_files/bazhong.toml", "engine/modes/drive.toml",
                 "china/tables/admin_units_nbs2016.csv", "outputs/vendor/leaflet.js"):
        assert (installed.parent / part).is_file(), part


def test_installed_default_job(venv: Path, tmp_path: Path) -> None:
    done = _run(venv, "covplan", "audit", str(ANDORRA_SCENARIO), "--out", "out", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr  # Andorra fails some standards
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text("utf-8"))
    for name in ("results.gpkg", "units.csv", "map.html", "report.html"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    assert Path(manifest["inputs"]["scenario"]["path"]) == ANDORRA_SCENARIO
    rule_ids = set(pd.read_csv(tmp_path / "out" / "units.csv")["rule_id"])
    assert rule_ids and all(rule_id in done.stdout for rule_id in rule_ids), done.stdout


@pytest.fixture()
def extract_server() -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(LIECHTENSTEIN_PBF.parent))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{LIECHTENSTEIN_PBF.name}"
    finally:
        server.shutdown()
        thread.join(5)


def test_installed_data_fetch_from_a_loopback_server(
    venv: Path, tmp_path: Path, extract_server: str
) -> None:
    done = _run(venv, "covplan", "data", "fetch", "--url", extract_server, "--relation-id", "49",
                "--buffer-m", "1000", "--lang", "en", "--out", "unterland", "--timeout", "10",
                cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    written = {p.name for p in (tmp_path / "unterland").iterdir()}
    assert any(name.endswith(".toml") for name in written), written
    downloads = json.loads(next((tmp_path / "unterland").glob("manifest*.json")).read_text())
    assert downloads["downloads"][0]["status"] == "downloaded"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_installed_app_starts(venv: Path, tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    app = subprocess.Popen(
        ["covplan", "app", "--port", str(port), "--scenarios", str(SCENARIOS)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 90
        health = ""
        while time.monotonic() < deadline and app.poll() is None:
            try:
                url = f"http://127.0.0.1:{port}/_stcore/health"
                with urllib.request.urlopen(url, timeout=2) as reply:
                    health = reply.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert health == "ok", app.stdout.read() if app.poll() is not None else "no answer"
    finally:
        app.terminate()
        app.wait(20)
