"""Graph simplification: split ways into pieces between junctions (osmnx's simplified graph).

A simplified graph has one edge per way piece between junctions, with the piece's full
geometry, instead of one edge per pair of consecutive OSM nodes. A piece ends at the ends of
its way and at every node more than one way (or the same way twice: a loop) passes through.
"""

from __future__ import annotations

import numpy as np

__all__ = ["way_pieces"]


def way_pieces(
    refs: np.ndarray, starts: np.ndarray, way_of: np.ndarray, *, simplify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Return where each way piece starts and ends in the concatenated node refs.

    Parameters
    ----------
    refs
        OSM node id of every node of every way, way after way (int64).
    starts
        Where each way begins in ``refs`` (number of ways + 1 offsets, the last ``len(refs)``).
    way_of
        The way of each entry of ``refs``.
    simplify
        True: split at way ends and at nodes used more than once (junctions, loops). False:
        every pair of consecutive nodes of a way is a piece.

    Returns
    -------
    tuple of numpy.ndarray
        ``(a, b)``: positions in ``refs`` of the first and last node of each piece, in way
        order; both nodes belong to the same way.
    """
    split = np.zeros(refs.shape[0], dtype=bool)
    split[starts[:-1]] = True
    split[starts[1:] - 1] = True
    _, inv, counts = np.unique(refs, return_inverse=True, return_counts=True)
    split |= counts[inv] > 1
    if not simplify:
        split[:] = True
    spos = np.flatnonzero(split)
    same = way_of[spos[:-1]] == way_of[spos[1:]]
    return spos[:-1][same], spos[1:][same]
