"""coverage-planner: check health-service coverage standards on real road networks.

The small public API: read a scenario, run it, write its outputs.

>>> from coverage import load_scenario, run_scenario, write_outputs
>>> scenario = load_scenario("data/scenarios/andorra.toml")
>>> result = run_scenario(scenario)
>>> write_outputs(result, "out/andorra")

Everything a user may catch derives from :class:`CoverageError`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from coverage.errors import CoverageError, InputError, InputWarning, Problem

try:
    __version__ = version("coverage-planner")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = [
    "CoverageError",
    "InputError",
    "InputWarning",
    "Problem",
    "load_scenario",
    "run_scenario",
    "write_outputs",
    "__version__",
]


def __getattr__(name: str) -> object:  # lazy: `import coverage` stays light for --help
    if name == "load_scenario":
        from coverage.scenario import load_scenario

        return load_scenario
    if name == "run_scenario":
        from coverage.pipeline import run_scenario

        return run_scenario
    if name == "write_outputs":
        from coverage.outputs import write_outputs

        return write_outputs
    raise AttributeError(f"module 'coverage' has no attribute {name!r}")
