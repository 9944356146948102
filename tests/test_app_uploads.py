"""Uploads in the app are cached by content, and ``covplan app`` serves the packaged page.

Expected numbers come from the uploaded files themselves (feature counts and population
properties read here with :mod:`json`), not from the app's caches.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from covplan import planning
from covplan.app import cache
from covplan.app.i18n import t
from covplan.cli import main
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
APP = str(ROOT / "app.py")
PACKAGED_APP = ROOT / "coverage" / "app" / "main.py"
SCENARIOS = DATA / "scenarios"
UPLOADS = {
    "andorra": {
        "facilities": DATA / "facilities" / "andorra.geojson",
        "boundaries": DATA / "boundaries" / "andorra_parishes.geojson",
        "network": DATA / "osm" / "andorra-2013-05-23.osm.pbf",
        "level": "parish",
    },
    "liechtenstein": {
        "facilities": DATA / "facilities" / "liechtenstein.geojson",
        "boundaries": DATA / "boundaries" / "liechtenstein_municipalities.geojson",
        "network": DATA / "osm" / "liechtenstein-2013-08-03.osm.pbf",
        "level": "municipality",
    },
}


def _features(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["features"]


def _upload(at: AppTest, files: dict[str, Path | str], *, boundaries: bytes | None = None
            ) -> AppTest:
    """Fill the sidebar's upload form with ``files`` and submit it."""
    for role in ("facilities", "boundaries", "network"):
        path = Path(files[role])
        content = boundaries if role == "boundaries" and boundaries is not None \
            else path.read_bytes()
        at.file_uploader(key=f"up_{role}").set_value(
            (path.name, content, "application/octet-stream"))
    at.text_input(key="up_level").set_value(str(files["level"]))
    submit = next(b for b in at.button if b.label == t("load_upload", "en"))
    submit.click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _upload_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="region").set_value("__upload__").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _shown(at: AppTest) -> tuple[int, float]:
    """(facilities offered for closing, population summed over the unit table) on the page."""
    closable = len(at.multiselect(key="w_closed").options)
    units = next(d.value for d in at.dataframe if "population" in d.value.columns
                 and "unit_id" in d.value.columns)
    return closable, float(units["population"].sum())


def test_two_uploads_through_one_session_show_their_own_data(
        monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[str] = []
    real_load = cache.load_region

    def counting_load(path: str, **kwargs: object) -> planning.Region:
        if Path(path).parent.name == "upload":  # the shipped region the page opens on aside
            loads.append(str(path))
        return real_load(path, **kwargs)

    monkeypatch.setattr(cache, "load_region", counting_load)
    at = _upload_app()
    expected = {
        name: (len(_features(files["facilities"])),
               sum(f["properties"]["population"] for f in _features(files["boundaries"])))
        for name, files in UPLOADS.items()
    }
    assert expected["andorra"] != expected["liechtenstein"]

    _upload(at, UPLOADS["andorra"])
    path = at.session_state["upload_path"]
    closable, population = _shown(at)
    assert closable == expected["andorra"][0]
    assert population == pytest.approx(expected["andorra"][1])
    first = cache.shared_region(path)
    first_name = at.session_state["region_name"]
    assert first_name == f"upload-{planning.region_key(path)[:12]}"
    assert len(loads) == 1

    # the same session folder and scenario path, other bytes: another region, not Andorra's
    _upload(at, UPLOADS["liechtenstein"])
    assert at.session_state["upload_path"] == path
    closable, population = _shown(at)
    assert closable == expected["liechtenstein"][0]
    assert population == pytest.approx(expected["liechtenstein"][1])
    second = cache.shared_region(path)
    assert second is not first
    assert len(second.inputs.facilities) == expected["liechtenstein"][0]
    assert at.session_state["region_name"] != first_name
    assert at.session_state["plans"].current.region == at.session_state["region_name"]
    assert len(loads) == 2

    # Andorra's bytes again: a cache hit (the very region loaded first, nothing reloaded)
    _upload(at, UPLOADS["andorra"])
    assert _shown(at)[0] == expected["andorra"][0]
    assert cache.shared_region(path) is first
    assert at.session_state["region_name"] == first_name
    assert len(loads) == 2


def test_options_are_part_of_the_key(tmp_path: Path) -> None:
    """The same files with another option (here the level) are another region."""
    files = {role: (Path(UPLOADS["andorra"][role]).name,
                    Path(UPLOADS["andorra"][role]).read_bytes())
             for role in ("facilities", "boundaries", "network")}
    path = planning.write_upload_scenario(tmp_path, files, level="parish")
    parish = planning.region_key(path)
    assert planning.region_key(path) == parish
    planning.write_upload_scenario(tmp_path, files, level="parish", crs="GCJ-02")
    assert planning.region_key(path) != parish
    planning.write_upload_scenario(tmp_path, files, level="parish")
    assert planning.region_key(path) == parish


def test_upload_error_names_the_file_not_the_server_folder() -> None:
    at = _upload_app()
    _upload(at, UPLOADS["andorra"], boundaries=b"{broken")
    folder = str(at.session_state["folder"].path)
    messages = [e.value for e in at.error]
    assert messages, "the broken boundaries file gave no message"
    text = " ".join(messages)
    assert "andorra\\_parishes\\.geojson" in text  # the uploaded file's own name, as plain text
    assert folder not in text and "covplan-session-" not in text and "/tmp" not in text
    assert "upload_path" not in at.session_state


def test_page_says_when_there_are_no_scenarios(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "SCENARIO_DIR", tmp_path)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    warning = " ".join(w.value for w in at.warning)
    assert "no scenario files" in warning and "covplan app \\-\\-scenarios DIR" in warning
    assert at.selectbox(key="region").options == [t("upload_option", "en")]
    assert at.info[0].value == t("upload_missing", "en")


# ----------------------------------------------------------------------------- covplan app
def test_covplan_app_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command runs Streamlit on the packaged page with the scenarios folder it chose."""
    calls: list[tuple[str, list[str], dict[str, str]]] = []
    monkeypatch.setattr(os, "execve", lambda exe, args, env: calls.append((exe, args, env)))
    monkeypatch.delenv("COVPLAN_SCENARIOS", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    # no ./data/scenarios and no setting: nothing set, the app's own default applies
    assert runner.invoke(main, ["app"]).exit_code == 0
    exe, args, env = calls.pop()
    assert exe == sys.executable
    assert args[:5] == [sys.executable, "-m", "streamlit", "run", str(PACKAGED_APP.resolve())]
    flags = dict(zip(args[5::2], args[6::2], strict=True))
    assert flags == {"--server.headless": "true", "--browser.gatherUsageStats": "false",
                     "--server.port": "8501", "--server.address": "127.0.0.1"}
    assert "COVPLAN_SCENARIOS" not in env

    # ./data/scenarios in the current folder is the default
    (tmp_path / "data" / "scenarios").mkdir(parents=True)
    assert runner.invoke(main, ["app", "--port", "9999", "--address", "0.0.0.0"]).exit_code == 0
    _, args, env = calls.pop()
    assert env["COVPLAN_SCENARIOS"] == str((tmp_path / "data" / "scenarios").resolve())
    assert args[args.index("--server.port") + 1] == "9999"
    assert args[args.index("--server.address") + 1] == "0.0.0.0"

    # --scenarios wins; a missing folder is refused with a message, before anything starts
    assert runner.invoke(main, ["app", "--scenarios", str(SCENARIOS)]).exit_code == 0
    assert calls.pop()[2]["COVPLAN_SCENARIOS"] == str(SCENARIOS.resolve())
    missing = runner.invoke(main, ["app", "--scenarios", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such folder" in missing.output
    assert calls == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_covplan_app_serves_the_page(tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "covplan", "app", "--port", str(port),
             "--scenarios", str(SCENARIOS)],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60.0
        health = ""
        while health != "ok":
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"no answer in 60 s:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                            timeout=2) as reply:
                    health = reply.read().decode()
            except OSError:
                time.sleep(0.5)
        assert health == "ok"
        # the server took the command's place and got the scenarios folder it was given
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        assert f"COVPLAN_SCENARIOS={SCENARIOS.resolve()}".encode() in environ
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert str(PACKAGED_APP.resolve()).encode() in cmdline
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
