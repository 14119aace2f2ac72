"""Which pixels of a bilinear cell lie above a level, found column by column instead of pixel by pixel.

Inside a cell, column j interpolates between its top value T_j and bottom value B_j: the pixel in row i is
v = w0_i * T_j + w1_i * B_j with row weights w1_i ascending. Up to float32 rounding this is T_j + w1_i (B_j - T_j),
monotone in i, so the rows above a level form one contiguous run, found by counting the w1 below the level where
the column crosses it (a bucket table per geometry, ``RowGroups``). Rows whose value
is within the rounding margin of the level are evaluated exactly, so results are identical to evaluating every
pixel (``upsample.cell_pixel_values``) while touching about one pixel per column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .upsample import Geometry

MARGIN = 2.0**-20  # relative bound on |float32 pixel value - (T + w1 (B - T))|, with a 4x safety factor


@dataclass(frozen=True)
class RowGroups:
    """The distinct row layouts of a geometry's cells: cells in one row group share rows and row weights.

    Counting a group's row weights w1 at or below a level x uses ``buckets`` equal buckets along [0, 1] (and
    one for w1 = 1), narrow enough that no bucket holds two distinct weights: the weights in buckets below x's
    are below x, those in buckets above are above, and the one weight value in x's own bucket is compared
    directly. Tables are indexed by group * (buckets + 1) + bucket.
    """

    of_cell: np.ndarray  # (G,) row group of every cell
    buckets: int
    below: np.ndarray  # weights of the group in lower buckets
    value: np.ndarray  # the weight value in the bucket (inf: none)
    ties: np.ndarray  # how many of the group's weights have that value


MAX_BUCKETS = 1 << 16
_ROW_GROUPS: dict[tuple, RowGroups] = {}


def _bucket(w: np.ndarray, buckets: int) -> np.ndarray:
    """The bucket of weights (or levels) in [0, 1]; monotone, and exact since ``buckets`` is a power of 2."""
    return np.clip(np.floor(w * buckets), 0, buckets)


def _row_groups(geom: Geometry) -> RowGroups:
    """The geometry's row groups (cached per geometry size)."""
    cached = _ROW_GROUPS.get((geom.source, geom.target))
    if cached is not None:
        return cached
    keys = [tuple(r) for r in geom.rows]
    distinct = list(dict.fromkeys(keys))
    of_cell = np.array([distinct.index(k) for k in keys], np.int64)
    count = np.array([(np.array(k) >= 0).sum() for k in distinct], np.int64)
    w1 = [geom.row_weights[keys.index(k), :n, 1].astype(np.float64) for k, n in zip(distinct, count)]
    buckets = 16
    while any(((np.diff(w) > 0) & (np.diff(_bucket(w, buckets)) == 0)).any() for w in w1):
        buckets *= 2
        if buckets > MAX_BUCKETS:
            raise ValueError(f"row weights of the {geom.source} -> {geom.target} upsampling lie too close together")
    below = np.zeros((len(w1), buckets + 1), np.int64)
    value = np.full((len(w1), buckets + 1), np.inf)
    ties = np.zeros((len(w1), buckets + 1), np.int64)
    for g, w in enumerate(w1):
        bucket = _bucket(w, buckets).astype(np.int64)
        per_bucket = np.bincount(bucket, minlength=buckets + 1)
        below[g] = np.cumsum(per_bucket) - per_bucket
        value[g, bucket] = w
        ties[g] = per_bucket
    groups = RowGroups(of_cell, buckets, below.ravel(), value.ravel(), ties.ravel())
    _ROW_GROUPS[(geom.source, geom.target)] = groups
    return groups


@dataclass
class Columns:
    """Top and bottom values of every column of K cell items."""

    cells: np.ndarray  # (K,)
    top: np.ndarray  # (K, Q) float32
    bottom: np.ndarray  # (K, Q) float32
    margin: np.ndarray  # (K, Q) float64 rounding margin

    @classmethod
    def of(cls, corners: np.ndarray, cells: np.ndarray, geom: Geometry) -> Columns:
        cw = np.take(geom.col_weights, cells, 0)
        top = cw[:, :, 0] * corners[:, 0:1] + cw[:, :, 1] * corners[:, 1:2]
        bottom = cw[:, :, 0] * corners[:, 2:3] + cw[:, :, 1] * corners[:, 3:4]
        margin = MARGIN * np.maximum(np.abs(top), np.abs(bottom)).astype(np.float64)
        return cls(cells, top, bottom, margin)


def _rows_above(cols: Columns, geom: Geometry, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per item and column, the rows [start, stop) where T + w1 (B - T) > level (a run at one end of the column).

    Rows exactly at the level may fall on either side: callers only use levels a margin away from the decisive
    one, where either side is right.

    Args:
        level: (K, Q) float64.

    Returns:
        (start, stop), (K, Q) int64; empty for padded columns.
    """
    groups = _row_groups(geom)
    group = groups.of_cell[cols.cells][:, None]
    count = geom.num_rows[cols.cells][:, None]
    top = cols.top.astype(np.float64)
    slope = cols.bottom - top
    with np.errstate(divide="ignore", invalid="ignore"):
        where_level = (level - top) / slope  # NaN or infinite where the slope is 0 (handled below)
        index = group * (groups.buckets + 1) + _bucket(where_level, groups.buckets).astype(np.int64)
    # rows with w1 <= the level's: those of lower buckets, and those of its own bucket if they are not above it
    tie = where_level >= np.take(groups.value, index, mode="clip")
    below = np.take(groups.below, index, mode="clip") + tie * np.take(groups.ties, index, mode="clip")
    rising, falling = slope > 0, slope < 0
    flat_above = (slope == 0) & (top > level)
    start = np.where(rising, below, np.where(falling | flat_above, 0, count))
    stop = np.where(falling, below, count)
    return start, np.where(np.isfinite(slope), stop, start)


def _between(cols: Columns, geom: Geometry, low: np.ndarray, high: np.ndarray):
    """Rows where low < T + w1 (B - T) <= high, as two runs per column (one of them empty), and the run above high.

    Returns:
        Three (start, stop) pairs of (K, Q) arrays.
    """
    wide_start, wide_stop = _rows_above(cols, geom, low)
    narrow_start, narrow_stop = _rows_above(cols, geom, high)
    narrow_start = np.maximum(narrow_start, wide_start)
    narrow_stop = np.minimum(narrow_stop, wide_stop)
    return (
        (wide_start, np.maximum(wide_start, narrow_start)),
        (np.minimum(narrow_stop, wide_stop), wide_stop),
        (narrow_start, narrow_stop),
    )


def _expand(start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item, column, row-in-cell) of every row in the per-column ranges."""
    lengths = (stop - start).ravel()
    flat = np.repeat(np.arange(lengths.size), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    item, col = np.divmod(flat, start.shape[1])
    return item, col, start.ravel()[flat] + offsets


def _values(cols: Columns, geom: Geometry, item: np.ndarray, col: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Exact float32 pixel values (same operations as upsample.cell_pixel_values)."""
    rw = np.take(geom.row_weights.reshape(-1, 2), cols.cells[item] * geom.row_weights.shape[1] + row, 0)
    at = item * cols.top.shape[1] + col
    return rw[:, 0] * np.take(cols.top, at) + rw[:, 1] * np.take(cols.bottom, at)


def _pixel_index(geom: Geometry, cells: np.ndarray, col: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Cell-major positions (``Geometry.cell_major``) of pixels given by cell, column and row within the cell."""
    return geom.block_start[cells] + col * geom.num_rows[cells] + row


def _expand_runs(*runs: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = [_expand(start, np.maximum(start, stop)) for start, stop in runs]
    return tuple(np.concatenate(x) for x in zip(*parts))


def run_pixels(start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Every position of runs of consecutive positions, given their first positions and lengths."""
    return np.repeat(start - (np.cumsum(length) - length), length) + np.arange(length.sum())


def _runs(geom: Geometry, cells: np.ndarray, start: np.ndarray, stop: np.ndarray):
    """The nonempty per-column row ranges [start, stop) of (K, Q) arrays as cell-major runs (item, first, length)."""
    length = (stop - start).ravel()
    nonempty = np.flatnonzero(length > 0)
    item, col = np.divmod(nonempty, start.shape[1])
    return item, _pixel_index(geom, cells[item], col, start.ravel()[nonempty]), length[nonempty]


def runs_above(cols: Columns, geom: Geometry, level: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per item, its pixels strictly above ``level`` ((K,) float32), exactly, as runs (item, cell-major position of
    the first pixel, length): the run surely above plus the rows within the rounding margin that are above."""
    wide = level.astype(np.float64)[:, None]
    first, second, (sure_start, sure_stop) = _between(cols, geom, wide - cols.margin, wide + cols.margin)
    item, col, row = _expand_runs(first, second)
    over = _values(cols, geom, item, col, row) > level[item]
    item, col, row = item[over], col[over], row[over]
    decided = item, _pixel_index(geom, cols.cells[item], col, row), np.ones(len(item), np.int64)
    return tuple(np.concatenate(x) for x in zip(_runs(geom, cols.cells, sure_start, sure_stop), decided))


def smaller_side(
    cols: Columns, geom: Geometry, low: np.ndarray, high: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per item, the pixels strictly above ``high`` or the pixels not above it, whichever side is (about) smaller;
    and every pixel inside (low, high] with its value.

    Args:
        cols: the items' columns.
        geom: the geometry.
        low, high: (K,) float32 levels per item, low <= high (equal levels: nothing lies inside).

    Returns:
        (runs, above, inside): the listed pixels as runs (item, cell-major position of the first pixel (see
        ``Geometry.cell_major``), length), per item whether they are its pixels above ``high`` (True) or its
        pixels at or below it (False), and the (item, position, value) of the pixels inside (low, high].
    """
    first, second, (sure_start, sure_stop) = _between(
        cols, geom, low.astype(np.float64)[:, None] - cols.margin, high.astype(np.float64)[:, None] + cols.margin
    )
    above = 2 * (sure_stop - sure_start).sum(1) <= geom.npix[cols.cells]
    rows = np.where(np.take(geom.cols, cols.cells, 0) >= 0, geom.num_rows[cols.cells][:, None], 0)
    side = above[:, None]
    # surely on the listed side: the run above high + margin, or the rows outside the run above low - margin
    sure = [
        _runs(geom, cols.cells, np.where(side, sure_start, 0), np.where(side, sure_stop, np.minimum(first[0], rows))),
        _runs(geom, cols.cells, np.where(side, 0, second[1]), np.where(side, 0, rows)),
    ]
    item_d, col_d, row_d = _expand_runs(first, second)
    values = _values(cols, geom, item_d, col_d, row_d)
    over = values > high[item_d]
    keep = over == above[item_d]
    inside = ~over & (values > low[item_d])
    position = _pixel_index(geom, cols.cells[item_d], col_d, row_d)
    decided = item_d[keep], position[keep], np.ones(keep.sum(), np.int64)
    runs = tuple(np.concatenate(x) for x in zip(*sure, decided))
    return runs, above, (item_d[inside], position[inside], values[inside])


def scan_between(
    cols: Columns, geom: Geometry, low: np.ndarray, high: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per item, the number of pixels strictly above high, and every pixel value v with low < v <= high.

    Rows surely above high (beyond the rounding margin) are counted per column run; every row between the
    two levels' margins is evaluated exactly once and serves both results.

    Args:
        cols: the items' columns.
        geom: the geometry.
        low, high: (K,) float32 levels per item, low <= high.

    Returns:
        (above, item, value): (K,) counts, and (item, float32 value) of each pixel inside (low, high].
    """
    lo = low.astype(np.float64)[:, None] - cols.margin
    hi = high.astype(np.float64)[:, None] + cols.margin
    first, second, (sure_start, sure_stop) = _between(cols, geom, lo, hi)
    item, col, row = _expand_runs(first, second)
    values = _values(cols, geom, item, col, row)
    over = values > high[item]
    keep = (values > low[item]) & ~over
    above = (sure_stop - sure_start).sum(1) + np.bincount(item[over], minlength=len(sure_start))
    return above, item[keep], values[keep]
