"""Each unit's top-k images by peak activation, as a state that chunks compute alone and that merges exactly.

A unit's peak on an image is the largest value of its (h, w) activation map (NetDissect's convention for the top
images). The order is by peak, highest first, ties by the lower dataset row, so the top-k of a union of chunks is
the top-k of their top-k states, whatever the chunking and the merge order (like the quantile states).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TopK:
    """Per unit, the best images seen so far.

    Attributes:
        peaks: (U, m) float32 peaks, each row in the order (peak descending, row ascending); m <= k.
        rows: (U, m) int64 dataset rows of those images.
    """

    peaks: np.ndarray
    rows: np.ndarray

    @property
    def units(self) -> int:
        return self.peaks.shape[0]


def peaks(maps: np.ndarray) -> np.ndarray:
    """(n, U, h, w) activation maps -> (n, U) float32 peaks."""
    return maps.reshape(*maps.shape[:2], -1).max(-1).astype(np.float32)


def _select(peaks: np.ndarray, rows: np.ndarray, k: int) -> TopK:
    """The first k of every unit's (U, m) candidates in the order (peak descending, row ascending)."""
    order = np.lexsort((rows, -peaks), axis=-1)[:, :k]
    return TopK(np.take_along_axis(peaks, order, 1), np.take_along_axis(rows, order, 1))


def top_k(peak_values: np.ndarray, rows: np.ndarray, k: int) -> TopK:
    """The top-k state of one chunk.

    Args:
        peak_values: (n, U) peaks of the chunk's images.
        rows: (n,) their dataset rows (distinct).
        k: images kept per unit.

    Returns:
        The state, with min(k, n) images per unit.
    """
    values = np.ascontiguousarray(peak_values.T, np.float32)
    return _select(values, np.broadcast_to(np.asarray(rows, np.int64), values.shape), k)


def merge(states: Iterable[TopK], k: int) -> TopK:
    """The top-k of the union of the states' images (states of disjoint image sets, same units)."""
    states = list(states)
    if not states:
        raise ValueError("no top-k states to merge")
    if len({s.units for s in states}) != 1:
        raise ValueError(f"top-k states of different unit counts: {sorted({s.units for s in states})}")
    return _select(np.concatenate([s.peaks for s in states], 1), np.concatenate([s.rows for s in states], 1), k)
