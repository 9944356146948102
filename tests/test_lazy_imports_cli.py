"""Commands import only what they use: no geopandas, matplotlib or folium for presets/--help."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("geopandas", "matplotlib", "folium")


@pytest.mark.parametrize("args", [["presets"], ["--help"], ["presets", "--json"]])
def test_light_commands_do_not_import_heavy_libraries(args) -> None:
    code = (
        "import sys\n"
        "from covplan.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.splitlines()[-1] == "HEAVY=", done.stdout[-500:]
    # the same check sees them when they are imported (the check itself works)
    probe = subprocess.run([sys.executable, "-c", "import sys, geopandas; "
                            "print('geopandas' in sys.modules)"],
                           capture_output=True, text=True, check=True, timeout=120)
    assert probe.stdout.strip() == "True"
