"""Exact top-q thresholds of upsampled activations, from mergeable per-chunk histograms.

Definition. For a unit with M upsampled values (all images, all pixels), sorted v(1) >= v(2) >= ... >= v(M),
and k = floor(q * M) with q the decimal value of the config, the threshold is t = v(k+1): the (k+1)-th largest
value. At most k values (a fraction <= q) lie strictly above t; without ties exactly k do.

Computation. Rounds narrow a per-unit interval (lo, hi] that holds t. Each round is a pass over the chunks
that produces histograms which simply add up, so the result does not depend on chunk size or on the order in
which chunks are merged:

1. coarse: histograms of every cell's lower and upper value bounds on fixed bins (no per-pixel work);
2. sample: values on a sub-grid of the cells that can reach (lo, hi], scaled up: an estimate that picks a
   narrow interval for the next round;
3. refine: exact pixel values, only in cells that can reach (lo, hi], on 4096 bins spanning (lo, hi];
4. the count pass (``tally``) keeps the distinct values inside the one bin that holds t, with their labels;
   ``threshold_in_interval`` then pins t down exactly from all chunks' values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .cellscan import Columns, scan_between
from .upsample import (
    BOUNDS_BLOCK,
    Geometry,
    bound_blocks,
    classify_cells,
    item_corners,
    map_bounds,
    sampled_pixel_values,
)

COARSE_SHIFT = 20  # 32-bit keys >> 20: 4096 fixed bins (sign, exponent and 3 mantissa bits)
COARSE_BINS = 1 << 12
REFINE_BINS = 4096
EXACT = 0  # nbins of a histogram of exact values (bins are float keys)
FLOAT_MAX = np.finfo(np.float32).max
SAMPLE_BATCH = 32768  # sampled cells evaluated at once
SCAN_BATCH = 4096  # cells scanned column by column at once (more spills the cache)


def float_keys(values: np.ndarray, shift: int = 0) -> np.ndarray:
    """Map float32 values to int64 keys that sort like the values (-0.0 and +0.0 share one key).

    Args:
        values: float32 array without NaN.
        shift: drop this many low bits (coarse bins of keys).

    Returns:
        Keys in [0, 2**(32 - shift)): int64, or int32 when shifted.
    """
    bits = (np.asarray(values, np.float32) + np.float32(0.0)).view(np.uint32)
    keys = np.where(bits >> np.uint32(31), ~bits, bits | np.uint32(1 << 31))
    return (keys >> np.uint32(shift)).astype(np.int32) if shift else keys.astype(np.int64)


def key_floats(keys: np.ndarray) -> np.ndarray:
    """Inverse of float_keys; the unused key just below +0.0 (it would be -0.0) maps to the float below 0."""
    keys = np.asarray(keys, np.int64)
    keys = np.where(keys == (1 << 31) - 1, keys - 1, keys)
    bits = np.where(keys >= 1 << 31, keys ^ (1 << 31), ~keys)  # float_keys backwards; ~keys wraps modulo 2**32
    return bits.astype(np.uint32).view(np.float32)


def target_rank(quantile: float, total: int) -> int:
    """k = floor(q * M), with q taken as the exact decimal written in the config."""
    return int(Fraction(repr(float(quantile))) * total)


@dataclass
class Histogram:
    """Mergeable per-unit counts: values above the interval plus sparse bins inside it.

    Attributes:
        total: number of values per unit seen (images x pixels).
        above: (U,) count of values above the interval.
        unit, bin, count: sparse (unit, bin, count) triples, each (unit, bin) at most once in binned histograms;
            bins are float keys when nbins == EXACT.
        nbins: bins per unit (EXACT for exact values).
    """

    total: int
    above: np.ndarray
    unit: np.ndarray
    bin: np.ndarray
    count: np.ndarray
    nbins: int
    table: np.ndarray | None = field(default=None, repr=False)  # the dense (U, nbins) counts, when at hand

    @classmethod
    def from_table(cls, total: int, above: np.ndarray, table: np.ndarray, nbins: int) -> Histogram:
        """The histogram of a dense (U * nbins,) table of counts (integers, or floats that round to them)."""
        nz = np.flatnonzero(table)
        count = table[nz] if table.dtype.kind in "iu" else np.rint(table[nz])
        if nbins & (nbins - 1):
            unit, bins = np.divmod(nz, nbins)
        else:  # a power of two: shift and mask, far cheaper than integer division
            unit, bins = nz >> (nbins.bit_length() - 1), nz & (nbins - 1)
        return cls(total, np.rint(above).astype(np.int64), unit, bins, count.astype(np.int64), nbins)

    def dense(self) -> np.ndarray:
        """(U, nbins) int64 counts (binned rounds only)."""
        if self.table is not None:
            return self.table
        out = np.zeros((len(self.above), self.nbins), np.int64)
        out[self.unit, self.bin] = self.count  # (unit, bin) pairs are unique
        return out


def merge(states: list[Histogram]) -> Histogram:
    """Add up binned histograms of the same round (any order gives the same result)."""
    first = states[0]
    dense = np.zeros(len(first.above) * first.nbins, np.int64)  # (unit, bin) pairs are unique within a histogram
    for s in states:
        dense[s.unit * first.nbins + s.bin] += s.count
    above = np.sum([s.above for s in states], axis=0)
    merged = Histogram.from_table(sum(s.total for s in states), above, dense, first.nbins)
    merged.table = dense.reshape(len(above), first.nbins)
    return merged


def coarse_histograms(acts: np.ndarray, geom: Geometry, block: int = BOUNDS_BLOCK) -> tuple[Histogram, Histogram]:
    """Round 1: pixel-weighted histograms of cell lower and upper bounds on fixed key bins.

    A constant map (e.g. all zero after a ReLU) adds one entry per histogram, the bounds of all its cells.

    Args:
        acts: (n, U, h, w) float32 activations.
        geom: geometry upsampling (h, w) to the label resolution.
        block: maps whose cell bounds are computed at once.

    Returns:
        (lower, upper) histograms over COARSE_BINS bins.
    """
    n, num_units = acts.shape[:2]
    flat = acts.reshape(-1, *geom.source)
    map_lo, map_hi, constant = map_bounds(flat)
    varying = np.flatnonzero(~constant)
    keys = np.empty((2, len(varying), geom.num_cells), np.int32)  # bins of cell lower and upper bounds
    for start, lo, hi in bound_blocks(np.take(flat, varying, 0), geom, block):
        keys[0, start : start + len(lo)] = float_keys(lo, COARSE_SHIFT)
        keys[1, start : start + len(hi)] = float_keys(hi, COARSE_SHIFT)
    whole = np.stack([float_keys(map_lo[constant], COARSE_SHIFT), float_keys(map_hi[constant], COARSE_SHIFT)])
    pixels = geom.target[0] * geom.target[1]
    units = np.concatenate([np.repeat(varying % num_units, geom.num_cells), np.flatnonzero(constant) % num_units])
    weights = np.concatenate([np.tile(geom.npix, len(varying)), np.full(whole.shape[1], pixels)]).astype(np.float64)
    keys = np.concatenate([keys.reshape(2, -1), whole], axis=1)
    first = int(keys.min())  # count only the span of bins in use: a far smaller table (every map has a key)
    width = int(keys.max()) - first + 1
    rows = (np.arange(2)[:, None] * num_units + units) * width - first
    table = np.bincount((keys + rows).ravel(), np.tile(weights, 2), 2 * num_units * width)
    total = n * pixels
    out = []
    for part in np.rint(table).astype(np.int64).reshape(2, -1):
        nz = np.flatnonzero(part)
        unit, bins = np.divmod(nz, width)
        out.append(Histogram(total, np.zeros(num_units, np.int64), unit, bins + first, part[nz], COARSE_BINS))
    return out[0], out[1]


def bracket_from_coarse(lower: Histogram, upper: Histogram, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Interval (lo, hi] holding the (k+1)-th largest value, from merged round-1 histograms.

    Values above x number at most the pixels of cells whose upper bound exceeds x, and at least the pixels
    of cells whose lower bound exceeds x: hi is the smallest bin edge where the first count is <= k, lo the
    largest bin edge where the second is >= k+1.

    Returns:
        (lo, hi) float32 per unit.
    """
    up, low = upper.dense(), lower.dense()
    in_bins_above = np.cumsum(up[:, ::-1], axis=1)[:, ::-1] - up  # upper bounds in bins > b
    hi_bin = np.argmax(in_bins_above <= k, axis=1)
    ok = np.cumsum(low[:, ::-1], axis=1)[:, ::-1] >= k + 1  # lower bounds in bins >= b
    lo_bin = COARSE_BINS - 1 - np.argmax(ok[:, ::-1], axis=1)
    hi_key = ((hi_bin.astype(np.int64) + 1) << COARSE_SHIFT) - 1
    lo_key = (lo_bin.astype(np.int64) << COARSE_SHIFT) - 1
    limits = float_keys(np.array([-FLOAT_MAX, FLOAT_MAX]))  # the top bins hold inf and NaN keys
    return key_floats(np.clip(lo_key, *limits)), key_floats(np.clip(hi_key, *limits))


def bin_scale(lo: np.ndarray, hi: np.ndarray, nbins: int) -> np.ndarray:
    """Per-unit float64 factor mapping (lo, hi] onto nbins bins."""
    return nbins / np.maximum(hi.astype(np.float64) - lo.astype(np.float64), np.finfo(np.float64).tiny)


def bin_of(values: np.ndarray, lo: np.ndarray, scale: np.ndarray, nbins: int) -> np.ndarray:
    """Bin of values in (lo, hi]; monotone in the value, identical in every chunk."""
    b = np.floor((values.astype(np.float64) - lo) * scale)
    return np.clip(b, 0, nbins - 1).astype(np.int64)


def _pixels_per_unit(items: tuple[np.ndarray, np.ndarray, np.ndarray], geom: Geometry, num_units: int) -> np.ndarray:
    """(U,) float64 number of pixels in the given (image, unit, cell) items."""
    return np.bincount(items[1], weights=geom.npix[items[2]], minlength=num_units).astype(np.float64)


def _sample_offsets(img: np.ndarray, unit: np.ndarray, cell: np.ndarray, stride: int) -> np.ndarray:
    """(K, 2) first sampled row and column of each item, varied from item to item.

    Activation peaks sit at source pixels, i.e. at the same place in every cell; one fixed sub-grid would see
    them from the same distances every time and bias the estimate (by about 9% at stride 4). Offsets mixed
    from the item's indices spread the sub-grids evenly over all positions.
    """
    mixed = img * 7919 + unit * 104729 + cell * 1299709
    return np.stack([mixed % stride, (mixed // stride) % stride], 1)


def histogram_between(
    batches: np.ndarray | Iterable[np.ndarray],
    geom: Geometry,
    lo: np.ndarray,
    hi: np.ndarray,
    nbins: int,
    stride: int = 1,
    batch: int | None = None,
    block: int = BOUNDS_BLOCK,
) -> Histogram:
    """Counts of upsampled values above hi, and binned inside (lo, hi].

    Only cells whose bounds reach into (lo, hi] get per-pixel values; cells wholly above hi count whole, and
    cells whose corners are all zero add their pixels to the bin of 0 at once (every such pixel is exactly 0).
    With stride > 1 only every stride-th row and column of a cell is evaluated and counts are scaled up:
    an estimate, used to choose a narrow interval cheaply.

    Args:
        batches: (n, U, h, w) float32 activations, or an iterable of such batches (a chunk read piece by piece).
        geom: the upsampling geometry.
        lo, hi: (U,) float32 interval per unit.
        nbins: bins per unit.
        stride: 1 for exact counts, more to sample.
        batch: number of cells evaluated at once (bounds memory; default: what runs fastest for the stride).
        block: maps whose cell bounds are computed at once.

    Returns:
        The Histogram of all batches.
    """
    num_units = len(lo)
    total, above = 0, np.zeros(num_units)
    table = np.zeros(num_units * nbins)  # batches add up densely
    for acts in [batches] if isinstance(batches, np.ndarray) else batches:
        total += acts.shape[0] * geom.target[0] * geom.target[1]
        batch_above, index, weights = _entries_between(acts, geom, lo, hi, nbins, stride, batch, block)
        above += batch_above
        table += np.bincount(index, weights=weights, minlength=len(table))
    return Histogram.from_table(total, above, table, nbins)


def _entries_between(acts, geom, lo, hi, nbins, stride, batch, block):
    """One batch of histogram_between: above (U,), and the table index (unit * nbins + bin) and weight of every
    value inside."""
    num_units = acts.shape[1]
    cells = classify_cells(acts, geom, lo, hi, block)
    above = _pixels_per_unit(cells.above, geom, num_units)
    img, unit, cell = cells.reaching
    scale = bin_scale(lo, hi, nbins)

    def index(units, values):
        return units * nbins + bin_of(values, lo[units], scale[units], nbins)

    # all-zero cells (ReLU layers) hold exact zeros: one entry per unit instead of one per pixel
    zeros = _pixels_per_unit(cells.zero, geom, num_units)
    zero_units = np.flatnonzero(zeros)
    indices, weights = [index(zero_units, np.zeros(len(zero_units), np.float32))], [zeros[zero_units]]
    batch = batch or (SAMPLE_BATCH if stride > 1 else SCAN_BATCH)
    for start in range(0, len(img), batch):
        u, g = unit[start : start + batch], cell[start : start + batch]
        corners = item_corners(acts, geom, img[start : start + batch] * num_units + u, g)
        if stride > 1:
            offsets = _sample_offsets(img[start : start + batch], u, g, stride)
            parts = []
            for members, values, weight in sampled_pixel_values(corners, g, geom, stride, offsets):
                unit_lo, unit_hi = lo[u[members]][:, None], hi[u[members]][:, None]
                above += np.bincount(u[members], weights=(values > unit_hi).sum(1) * weight, minlength=num_units)
                rows, cols = np.nonzero((values > unit_lo) & (values <= unit_hi))
                parts.append((members[rows], values[rows, cols], weight[rows]))
            item, inside, w = (np.concatenate(x) for x in zip(*parts))
        else:
            counts, item, inside = scan_between(Columns.of(corners, g, geom), geom, lo[u], hi[u])
            above += np.bincount(u, weights=counts, minlength=num_units)
            w = np.ones(len(item))
        indices.append(index(u[item], inside))
        weights.append(w)
    return above, np.concatenate(indices), np.concatenate(weights)


def estimated_bracket(
    state: Histogram, lo: np.ndarray, hi: np.ndarray, k: int, slack: float, floor: int
) -> tuple[np.ndarray, np.ndarray]:
    """A narrow interval expected to hold the (k+1)-th largest value, from a sampled histogram over (lo, hi].

    The interval runs from where about k(1 + slack) + floor values are estimated above to where about
    k(1 - slack) - floor are; the exact round after it verifies that it holds the value.

    Returns:
        (lo, hi) float32 per unit, inside the given interval.
    """
    counts = state.dense()
    at_or_above = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1] + state.above[:, None]
    beyond = at_or_above - counts  # values above each bin
    k_low, k_high = k * (1 - slack) - floor, k * (1 + slack) + floor
    hi_bin = np.argmax(beyond <= k_low, axis=1)  # some bin qualifies (the top one) where state.above <= k_low
    low_ok = at_or_above >= k_high + 1
    lo_bin = state.nbins - 1 - np.argmax(low_ok[:, ::-1], axis=1)
    hi_edge = key_floats(_first_key_in_bin(lo, hi, hi_bin + 1, state.nbins) - 1)
    lo_edge = key_floats(_first_key_in_bin(lo, hi, lo_bin, state.nbins) - 1)
    new_hi = np.where(state.above <= k_low, hi_edge, hi)
    new_lo = np.where(low_ok.any(1), lo_edge, lo)
    return np.minimum(new_lo, new_hi), new_hi


def _first_bin_reaching(state: Histogram, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, the largest bin b such that values in bins >= b (plus those above) number >= k+1.

    Returns:
        (b, found): int64 bins and a mask of units where such a bin exists.
    """
    if state.nbins:  # binned: cumulative counts from the top bin down, densely
        reached = np.cumsum(state.dense()[:, ::-1], axis=1) + state.above[:, None] >= k + 1
        found = reached.any(1)
        return np.where(found, state.nbins - 1 - np.argmax(reached, axis=1), 0), found
    order = np.lexsort((-state.bin, state.unit))  # by unit, then bin descending
    unit, bins, count = state.unit[order], state.bin[order], state.count[order]
    cum = np.cumsum(count)
    starts = np.flatnonzero(np.r_[True, unit[1:] != unit[:-1]]) if len(unit) else np.zeros(0, np.int64)
    before = np.repeat(cum[starts] - count[starts], np.diff(np.r_[starts, len(unit)]))
    hit = np.flatnonzero(state.above[unit] + cum - before >= k + 1)
    hit_units, first = np.unique(unit[hit], return_index=True)
    b = np.zeros(len(state.above), np.int64)
    found = np.zeros(len(state.above), bool)
    b[hit_units] = bins[hit[first]]
    found[hit_units] = True
    return b, found


def _first_key_in_bin(lo: np.ndarray, hi: np.ndarray, target: np.ndarray, nbins: int) -> np.ndarray:
    """Smallest float key in (lo, hi] whose bin is >= target (bisection; key(hi)+1 if none)."""
    scale = bin_scale(lo, hi, nbins)
    left, right = float_keys(lo) + 1, float_keys(hi) + 1  # answer in [left, right]
    while np.any(left < right):
        mid = (left + right) // 2
        reached = bin_of(key_floats(mid), lo, scale, nbins) >= target
        right = np.where(reached, mid, right)
        left = np.where(reached | (left >= right), left, mid + 1)
    return left


def narrow(state: Histogram, lo: np.ndarray, hi: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Narrow (lo, hi] to the bin holding the (k+1)-th largest value, from a merged round-2/3 histogram.

    Returns:
        (lo, hi) float32 per unit.
    """
    b, found = _first_bin_reaching(state, k)
    start = _first_key_in_bin(lo, hi, b, state.nbins)
    stop = _first_key_in_bin(lo, hi, b + 1, state.nbins)
    return np.where(found, key_floats(start - 1), lo), np.where(found, key_floats(stop - 1), hi)


def threshold_in_interval(state: Histogram, k: int) -> np.ndarray:
    """The (k+1)-th largest value per unit, from the count above each unit's last interval and the exact values
    inside it (an EXACT histogram whose (unit, key) pairs may repeat, e.g. one per chunk).

    Raises:
        ValueError: when some unit's interval does not hold that value.
    """
    missed = check_bracket(state, k)
    if len(missed):
        raise ValueError(f"the last threshold interval misses units {missed[:20].tolist()}")
    return key_floats(_first_bin_reaching(state, k)[0])


def check_bracket(state: Histogram, k: int) -> np.ndarray:
    """Units whose interval does not hold the (k+1)-th largest value (an internal consistency check)."""
    inside = np.bincount(state.unit, weights=state.count, minlength=len(state.above))
    return np.flatnonzero(~((state.above <= k) & (state.above + inside >= k + 1)))
