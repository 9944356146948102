"""Siting new facilities: candidates, location-allocation, coverage curve and what-if.

Everything works on the engine's facility-by-place travel-time matrix (scipy sparse CSR of
minutes within the routing cutoff), wrapped once per scenario in a :class:`SitingProblem`.
"""

from __future__ import annotations

from covplan.siting.exact import (
    DEFAULT_BAND,
    exact_lscp,
    exact_mclp,
    exact_mclp_backup,
    exact_pmedian,
    model_size,
    solve,
)
from covplan.siting.greedy import greedy_lscp, greedy_mclp, greedy_pmedian
from covplan.siting.problem import SitingProblem, SitingResult

__all__ = [
    "DEFAULT_BAND",
    "SitingProblem",
    "SitingResult",
    "exact_lscp",
    "exact_mclp",
    "exact_mclp_backup",
    "exact_pmedian",
    "greedy_lscp",
    "greedy_mclp",
    "greedy_pmedian",
    "model_size",
    "solve",
]
