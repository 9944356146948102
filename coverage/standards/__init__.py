"""Planning standards as data: rule kinds, parsing of standards tables, shipped presets.

See ``docs/ARCHITECTURE.md`` (Standards) and ``covplan.standards.audit.run_audit``.
"""

from __future__ import annotations

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
