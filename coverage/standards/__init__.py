"""Planning standards as data: rule kinds, parsing of standards tables, shipped presets.

See ``docs/ARCHITECTURE.md`` (Standards) and ``covplan.standards.audit.run_audit``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from covplan.standards.access import Access, StraightLineAccess
    from covplan.standards.parse import load_preset, parse_standards
    from covplan.standards.presets import list_presets, preset_info
    from covplan.standards.rules import (
        RESULT_COLUMNS,
        RULE_KINDS,
        DistanceRule,
        PopulationBandRule,
        PresenceRule,
        RatioRule,
        Rule,
        TravelTimeRule,
    )

#: Where each public name lives; imported on first use, so that reading the presets
#: (``covplan presets``) does not import geopandas through the access protocol.
_HOME = {
    "Access": "access", "StraightLineAccess": "access",
    "load_preset": "parse", "parse_standards": "parse",
    "list_presets": "presets", "preset_info": "presets",
    "RESULT_COLUMNS": "rules", "RULE_KINDS": "rules", "DistanceRule": "rules",
    "PopulationBandRule": "rules", "PresenceRule": "rules", "RatioRule": "rules",
    "Rule": "rules", "TravelTimeRule": "rules",
}

__all__ = [
    "RESULT_COLUMNS",
    "RULE_KINDS",
    "Access",
    "DistanceRule",
    "PopulationBandRule",
    "PresenceRule",
    "RatioRule",
    "Rule",
    "StraightLineAccess",
    "TravelTimeRule",
    "list_presets",
    "load_preset",
    "parse_standards",
    "preset_info",
]


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'covplan.standards' has no attribute {name!r}")
    value = getattr(import_module(f"covplan.standards.{home}"), name)
    globals()[name] = value
    return value
