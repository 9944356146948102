"""Planning standards as data: rule kinds, parsing of standards tables, shipped presets.

See ``docs/ARCHITECTURE.md`` (Standards) and ``coverage.audit.run_audit``.
"""

from __future__ import annotations

from coverage.standards.access import Access, StraightLineAccess
from coverage.standards.parse import parse_standards
from coverage.standards.presets import list_presets, load_preset, preset_info
from coverage.standards.rules import (
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
