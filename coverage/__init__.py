"""coverage-planner: check health-service coverage standards on real road networks.

The small public API: read a scenario, run it, write its outputs.

>>> from covplan import load_scenario, run_scenario, write_outputs
>>> scenario = load_scenario("data/scenarios/andorra.toml")
>>> result = run_scenario(scenario)
>>> write_outputs(result, "out/andorra")

Or piece by piece, with layers in memory: :func:`build_network` (a file or an osmnx graph),
:func:`travel_times`, :func:`audit`, :func:`what_if`, :func:`propose`; results are
GeoDataFrames in EPSG:4326. Everything a user may catch derives from :class:`CoverageError`;
:class:`InputError` is also a ``ValueError``.
"""

from __future__ import annotations

import sys
from importlib.machinery import PathFinder
from importlib.metadata import PackageNotFoundError, version
from importlib.util import module_from_spec
from pathlib import Path

if __name__ == "coverage":
    # The source folder is named ``coverage`` (the design card's) and was found as that name
    # because the checkout's root is on sys.path (``python -m ...`` run from it). The name is
    # coverage.py's: hand the import over to it, so coverage.py, pytest-cov and numba work.
    _checkout = Path(__file__).resolve().parents[1]
    _path = [p for p in sys.path if Path(p or ".").resolve() != _checkout]
    _spec = PathFinder.find_spec("coverage", _path)
    if _spec is None or _spec.loader is None:
        del sys.modules["coverage"]
        raise ModuleNotFoundError("No module named 'coverage' (coverage.py)", name="coverage")
    _module = module_from_spec(_spec)
    sys.modules["coverage"] = _module
    _spec.loader.exec_module(_module)  # the import statement now returns coverage.py

from covplan.errors import CoverageError, InputError, InputWarning, Problem

try:
    __version__ = version("coverage-planner")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

#: The public functions, imported on first use so that ``import covplan`` stays light.
_API = (
    "load_scenario", "run_scenario", "write_outputs", "build_network", "travel_times", "audit",
    "what_if", "propose",
)
__all__ = [
    "CoverageError",
    "InputError",
    "InputWarning",
    "Problem",
    "RoadNetwork",
    *_API,
    "__version__",
]


def __getattr__(name: str) -> object:
    if name in _API:
        from covplan import api

        return getattr(api, name)
    if name == "RoadNetwork":
        from covplan.engine.network import RoadNetwork

        return RoadNetwork
    raise AttributeError(f"module 'covplan' has no attribute {name!r}")
