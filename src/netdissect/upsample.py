"""Bilinear upsampling geometry, organised in cells.

Upsampling an (h, w) map to (H, W) bilinearly with pixel centres aligned and edges clamped (torch's
``interpolate(mode="bilinear", align_corners=False)``) makes every output pixel a convex combination of the
four source values around it. Output pixels that share the same four source values form a *cell*; a cell's
pixels can never exceed the largest of its corners nor fall below the smallest. Thresholding therefore needs
per-pixel work only in cells whose corners straddle the threshold: every other cell is wholly above or
wholly below it. This module computes that geometry and the exact per-pixel values inside chosen cells.

All arithmetic is float32, in one fixed order of operations, so every pass (thresholds, counts, the
reference full upsampling) sees bit-identical values for the same pixel whatever the batch or chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Relative bound on the float32 rounding of one interpolated value (a few units of 2**-24, with room to spare).
ROUNDING_MARGIN = np.float32(2.0**-18)
BOUNDS_BLOCK = 2048  # maps per block of cell bounds


def _axis(src_size: int, dst_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights along one axis, as torch computes them.

    Returns:
        (i0, i1, w0, w1): for each output position, the two source indices and their float32 weights.
    """
    scale = np.float32(src_size) / np.float32(dst_size)
    dst = np.arange(dst_size, dtype=np.float32)
    src = scale * (dst + np.float32(0.5)) - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = np.minimum(np.floor(src).astype(np.int64), src_size - 1)
    w1 = np.clip(src - i0.astype(np.float32), np.float32(0.0), np.float32(1.0)).astype(np.float32)
    w0 = (np.float32(1.0) - w1).astype(np.float32)
    i1 = np.where(i0 < src_size - 1, i0 + 1, i0)
    return i0, i1, w0, w1


@dataclass(frozen=True)
class Geometry:
    """How an (h, w) map upsamples to (H, W), cell by cell.

    Attributes:
        source: (h, w).
        target: (H, W).
        corners: (G, 4) flat source indices (row0col0, row0col1, row1col0, row1col1) of each cell.
        rows, cols: (G, R) and (G, Q) output rows and columns of each cell, padded with -1.
        row_weights: (G, R, 2) float32 weights of source rows 0 and 1 for each output row (NaN where padded,
            so padded pixels compare false with everything).
        col_weights: (G, Q, 2) float32 weights of source columns 0 and 1 for each output column.
        pixels: (G, R*Q) flat output pixel index of every cell pixel, -1 where padded.
        npix: (G,) number of output pixels in each cell.
        num_rows: (G,) output rows of each cell.
        cell_major: (H*W,) the flat output pixel at every position of the *cell-major* layout: cell after cell,
            each cell column after column; the pixel in cell g, column c, row r sits at position
            block_start[g] + c * num_rows[g] + r (its column runs are contiguous there).
        block_start: (G,) cell-major position of each cell's first pixel.
        cell_of_pixel: (H*W,) the cell of every output pixel.
        corner_rows: (Gr, 2) source rows of each row of cells; cell g lies in row g // Gc.
        corner_cols: (Gc, 2) source columns of each column of cells; cell g lies in column g % Gc.
    """

    source: tuple[int, int]
    target: tuple[int, int]
    corners: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    row_weights: np.ndarray
    col_weights: np.ndarray
    pixels: np.ndarray
    npix: np.ndarray
    num_rows: np.ndarray
    cell_major: np.ndarray
    block_start: np.ndarray
    cell_of_pixel: np.ndarray
    corner_rows: np.ndarray
    corner_cols: np.ndarray

    @property
    def num_cells(self) -> int:
        return len(self.npix)


def _groups(i0: np.ndarray) -> list[np.ndarray]:
    """Output positions grouped by their first source index (contiguous, ascending)."""
    return [np.flatnonzero(i0 == v) for v in np.unique(i0)]


@lru_cache(maxsize=32)
def geometry(h: int, w: int, H: int, W: int) -> Geometry:
    """Build the cell geometry for upsampling (h, w) to (H, W).

    Args:
        h, w: source map size.
        H, W: target size.

    Returns:
        The Geometry, cached per size.
    """
    y0, y1, wy0, wy1 = _axis(h, H)
    x0, x1, wx0, wx1 = _axis(w, W)
    row_groups, col_groups = _groups(y0), _groups(x0)
    R = max(len(g) for g in row_groups)
    Q = max(len(g) for g in col_groups)
    G = len(row_groups) * len(col_groups)
    corners = np.empty((G, 4), np.int64)
    rows = np.full((G, R), -1, np.int64)
    cols = np.full((G, Q), -1, np.int64)
    row_weights = np.full((G, R, 2), np.nan, np.float32)
    col_weights = np.full((G, Q, 2), np.nan, np.float32)
    pixels = np.full((G, R * Q), -1, np.int64)
    npix = np.empty(G, np.int64)
    cell_of_pixel = np.empty(H * W, np.int64)
    g = 0
    for rg in row_groups:
        a0, a1 = y0[rg[0]], y1[rg[0]]
        for cg in col_groups:
            b0, b1 = x0[cg[0]], x1[cg[0]]
            corners[g] = (a0 * w + b0, a0 * w + b1, a1 * w + b0, a1 * w + b1)
            rows[g, : len(rg)] = rg
            cols[g, : len(cg)] = cg
            row_weights[g, : len(rg)] = np.stack([wy0[rg], wy1[rg]], 1)
            col_weights[g, : len(cg)] = np.stack([wx0[cg], wx1[cg]], 1)
            flat = (rg[:, None] * W + cg[None, :]).ravel()
            grid = np.full((R, Q), -1, np.int64)
            grid[: len(rg), : len(cg)] = flat.reshape(len(rg), len(cg))
            pixels[g] = grid.ravel()
            npix[g] = flat.size
            cell_of_pixel[flat] = g
            g += 1
    corner_rows = np.array([(y0[g[0]], y1[g[0]]) for g in row_groups], np.int64)
    corner_cols = np.array([(x0[g[0]], x1[g[0]]) for g in col_groups], np.int64)
    num_rows = (rows >= 0).sum(1)
    by_column = pixels.reshape(G, R, Q).transpose(0, 2, 1).reshape(G, -1)
    cell_major = by_column[by_column >= 0]
    block_start = np.concatenate([[0], np.cumsum(npix)[:-1]])
    return Geometry(
        (h, w),
        (H, W),
        corners,
        rows,
        cols,
        row_weights,
        col_weights,
        pixels,
        npix,
        num_rows,
        cell_major,
        block_start,
        cell_of_pixel,
        corner_rows,
        corner_cols,
    )


def corner_values(maps: np.ndarray, geom: Geometry) -> np.ndarray:
    """The four corner values of every cell.

    Args:
        maps: (..., h, w) float32 source maps.
        geom: their geometry.

    Returns:
        (..., G, 4) float32 corner values.
    """
    flat = maps.reshape(*maps.shape[:-2], -1)
    return flat[..., geom.corners]


def item_corners(maps: np.ndarray, geom: Geometry, index: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The four corner values of chosen cells.

    Args:
        maps: (..., h, w) float32 source maps.
        geom: their geometry.
        index: (K,) flat index of each item's map among the leading axes.
        cells: (K,) the cell of each item.

    Returns:
        (K, 4) float32 corner values.
    """
    flat = maps.reshape(-1, geom.source[0] * geom.source[1])
    return np.take(flat, index[:, None] * flat.shape[1] + np.take(geom.corners, cells, 0))


def bound_blocks(
    maps: np.ndarray, geom: Geometry, block: int = BOUNDS_BLOCK
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Safe lower and upper bounds of every pixel value in each cell, a block of maps at a time.

    The bounds are the cell's corner minimum and maximum widened by the float32 rounding of interpolation, so
    every computed pixel value v of the cell satisfies lo <= v <= hi (strictly inside unless all corners are
    equal). Computed row of cells by row of cells, in blocks small enough to stay in cache: callers that only
    need a few cells out of each block never write all bounds to memory.

    Args:
        maps: (..., h, w) float32 source maps, seen as (N, h, w).
        geom: their geometry.
        block: maps per block.

    Yields:
        (first map index of the block, lo (B, G), hi (B, G)).
    """
    h, w = geom.source
    flat = maps.reshape(-1, h, w)
    rows, cols = geom.corner_rows, geom.corner_cols
    for start in range(0, len(flat), block):
        part = flat[start : start + block]
        top, bottom = np.take(part, rows[:, 0], 1), np.take(part, rows[:, 1], 1)
        row_lo, row_hi = np.minimum(top, bottom), np.maximum(top, bottom)
        low = np.minimum(np.take(row_lo, cols[:, 0], 2), np.take(row_lo, cols[:, 1], 2)).reshape(len(part), -1)
        high = np.maximum(np.take(row_hi, cols[:, 0], 2), np.take(row_hi, cols[:, 1], 2)).reshape(len(part), -1)
        yield start, *_widen(low, high)


def _widen(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Corner minima and maxima widened by the rounding margin, in place (near the largest floats, to -inf and
    inf: still bounds)."""
    margin = np.maximum(np.abs(low), np.abs(high))
    margin *= ROUNDING_MARGIN
    with np.errstate(over="ignore"):
        low -= margin
        high += margin
    return low, high


@dataclass
class CellClasses:
    """Cells of (n, U) maps against per-unit levels low <= high, as (image, unit, cell) index arrays.

    Attributes:
        above: cells wholly above high.
        reaching: the other cells that reach above low (their corners are not all zero).
        zero: the other cells reaching above low whose corners are all zero (every pixel exactly 0).
    """

    above: tuple[np.ndarray, np.ndarray, np.ndarray]
    reaching: tuple[np.ndarray, np.ndarray, np.ndarray]
    zero: tuple[np.ndarray, np.ndarray, np.ndarray]


def map_bounds(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Safe lower and upper bounds of every pixel value of each whole map, widened like cell bounds.

    Every cell bound of ``bound_blocks`` lies inside its map's bounds (a map whose upper bound is at or below a
    level has no cell reaching above it); in a constant map every cell's bounds equal the map's.

    Args:
        maps: (N, h, w) float32 source maps.

    Returns:
        (lo, hi, constant): (N,) float32 bounds and (N,) whether the map is constant.
    """
    flat = maps.reshape(len(maps), -1)
    low, high = flat.min(1), flat.max(1)
    constant = low == high
    return *_widen(low, high), constant


def classify_cells(
    maps: np.ndarray, geom: Geometry, low: np.ndarray, high: np.ndarray, block: int = BOUNDS_BLOCK
) -> CellClasses:
    """Sort every cell of (n, U, h, w) maps by its bounds against per-unit levels (U,) low <= high.

    Only maps whose bounds reach above their unit's low level are bounded cell by cell, ``block`` maps at a time.
    """
    num_units, num_cells = maps.shape[1], geom.num_cells
    flat = maps.reshape(-1, *geom.source)
    candidates = np.flatnonzero(map_bounds(flat)[1] > np.tile(low, maps.shape[0]))
    found: dict[str, list[np.ndarray]] = {"above": [], "reaching": [], "zero": []}
    for start, lo, hi in bound_blocks(np.take(flat, candidates, 0), geom, block):
        index = candidates[start : start + len(lo)]
        unit = index % num_units
        above = lo > high[unit][:, None]
        reaching = ~above & (hi > low[unit][:, None])
        zero = reaching & (lo == 0) & (hi == 0)
        for name, mask in (("above", above), ("reaching", reaching & ~zero), ("zero", zero)):
            rows, cells = np.divmod(np.flatnonzero(mask), num_cells)
            found[name].append(index[rows] * num_cells + cells)

    def items(flat: list[np.ndarray]):
        item_map, cell = np.divmod(np.concatenate(flat) if flat else np.zeros(0, np.int64), num_cells)
        return (*np.divmod(item_map, num_units), cell)

    return CellClasses(items(found["above"]), items(found["reaching"]), items(found["zero"]))


def cell_pixel_values(corners: np.ndarray, cells: np.ndarray, geom: Geometry) -> np.ndarray:
    """Exact float32 upsampled values of the pixels of chosen cells.

    Args:
        corners: (K, 4) corner values of K (image, unit, cell) items.
        cells: (K,) the cell index of each item.
        geom: the geometry.

    Returns:
        (K, R*Q) float32 values laid out like ``geom.pixels[cells]`` (padding positions hold NaN).
    """
    return _interpolate(corners, geom.row_weights[cells], geom.col_weights[cells]).reshape(len(cells), -1)


def _interpolate(corners: np.ndarray, row_weights: np.ndarray, col_weights: np.ndarray) -> np.ndarray:
    """(K, r, q) values from (K, 4) corners and (K, r, 2), (K, q, 2) weights, in the one fixed order of operations."""
    top = col_weights[:, :, 0] * corners[:, 0:1] + col_weights[:, :, 1] * corners[:, 1:2]  # (K, q)
    bottom = col_weights[:, :, 0] * corners[:, 2:3] + col_weights[:, :, 1] * corners[:, 3:4]
    return row_weights[:, :, 0:1] * top[:, None, :] + row_weights[:, :, 1:2] * bottom[:, None, :]


def _every(weights: np.ndarray, cells: np.ndarray, offsets: np.ndarray, stride: int, size: int) -> np.ndarray:
    """(K, ceil(size / stride), 2) weights of every stride-th of the first ``size`` rows (or columns), from each
    item's offset; slots past the end hold NaN."""
    index = offsets[:, None] + stride * np.arange(-(-size // stride))
    picked = np.take(weights.reshape(-1, 2), cells[:, None] * weights.shape[1] + np.minimum(index, size - 1), 0)
    picked[index >= size] = np.nan
    return picked


def sampled_pixel_values(
    corners: np.ndarray, cells: np.ndarray, geom: Geometry, stride: int, offsets: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Exact float32 values of every stride-th row and column of chosen cells, cells of one shape at a time.

    Args:
        corners: (K, 4) corner values of K items.
        cells: (K,) the cell of each item.
        geom: the geometry.
        stride: sampling step along rows and columns.
        offsets: (K, 2) first sampled row and column of each item, in [0, stride) (taken modulo the cell's size).

    Yields:
        (members, values, weight): indices into the K items, their (k, m) sampled values (NaN where a slot falls
        outside the cell) and (k,) the pixels each sample stands for.
    """
    shape = geom.num_rows[cells] * (geom.cols.shape[1] + 1) + geom.npix[cells] // geom.num_rows[cells]
    for key in np.unique(shape):
        members = np.flatnonzero(shape == key)
        r, q = divmod(int(key), geom.cols.shape[1] + 1)
        sub, off = cells[members], offsets[members] % np.array([r, q])  # a cell smaller than the stride: sampled once
        values = _interpolate(
            corners[members],
            _every(geom.row_weights, sub, off[:, 0], stride, r),
            _every(geom.col_weights, sub, off[:, 1], stride, q),
        )
        taken = -(-(r - off[:, 0]) // stride) * -(-(q - off[:, 1]) // stride)
        yield members, values.reshape(len(members), -1), geom.npix[sub] / taken


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Full bilinear upsampling of maps, with exactly the values the cell passes use.

    Args:
        maps: (..., h, w) float32 maps.
        size: (H, W).

    Returns:
        (..., H, W) float32.
    """
    lead = maps.shape[:-2]
    h, w = maps.shape[-2:]
    geom = geometry(h, w, *size)
    flat = maps.reshape(-1, h, w).astype(np.float32)
    out = np.zeros((flat.shape[0], size[0] * size[1]), np.float32)
    corners = corner_values(flat, geom)
    for g in range(geom.num_cells):
        values = cell_pixel_values(corners[:, g], np.full(len(flat), g), geom)
        valid = geom.pixels[g] >= 0
        out[:, geom.pixels[g][valid]] = values[:, valid]
    return out.reshape(*lead, *size)
