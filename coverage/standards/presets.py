"""Shipped standards presets: one TOML file per plan document in ``preset_files/``.

Each preset file has a ``[preset]`` header (plan title, place, issuer, date, seed file) and
``[[standards]]`` tables in the format :func:`covplan.standards.parse_standards` reads. Every
rule cites its id in ``docs/standards-from-plans.md`` (e.g. ``DDK-06``), the seed file and the
exact Chinese quote; open values the text does not fix are documented under ``params``.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Any

from covplan.errors import CoverageError

__all__ = ["list_presets", "preset_info", "preset_tables"]


def _files() -> dict[str, Any]:
    folder = resources.files("covplan.standards") / "preset_files"
    return {
        p.name[: -len(".toml")]: p for p in folder.iterdir() if p.name.endswith(".toml")
    }


def list_presets() -> list[str]:
    """Return the names of the shipped presets, sorted (e.g. ``["bazhong", "dadukou", ...]``)."""
    return sorted(_files())


@cache
def _read(name: str) -> dict[str, Any]:
    files = _files()
    if name not in files:
        raise CoverageError(
            f"unknown standards preset {name!r}; known presets: {', '.join(sorted(files))}"
        )
    return tomllib.loads(files[name].read_text(encoding="utf-8"))


def preset_info(name: str) -> dict[str, Any]:
    """Return the ``[preset]`` header of a preset (title, place, seed file, ...)."""
    return dict(_read(name).get("preset", {}))


def preset_tables(name: str) -> list[dict[str, Any]]:
    """Return the raw ``[[standards]]`` tables of a preset (copies; safe to modify)."""
    return [dict(t) for t in _read(name).get("standards", [])]
