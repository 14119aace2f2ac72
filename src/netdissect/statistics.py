"""How sure a unit's label is: bootstrap intervals over images and a permutation null, from exact per-image counts.

Per image x of the dissection (at the final thresholds t_u), for unit u and concept c: I(x) the active pixels of u
that carry c, A(x) the active pixels of u, L(x) the pixels of c, and whether x carries some concept of each
category. Counts of a resample are sums of these with the resample's multiplicities, so every chunk adds its part
for all resamples at once and the result does not depend on the chunking.

- **Bootstrap**: resample r draws the N images of the run with replacement (``numpy.random.default_rng([seed,
  r])``). Per unit, the IoU of its ``candidates`` best concepts (by the full data's IoU) is computed in every
  resample; the unit's best IoU there (the largest of them) gives the percentile interval, and the fraction of
  resamples in which its label keeps the largest IoU (ties: the lowest concept id) is the label's stability.
- **Permutation null**: the unit's maps of image x are paired with the label maps of image pi(x) for a uniformly
  random permutation pi of the labelled images. On a ``grid`` x ``grid`` partition of the label maps, with pixel
  positions inside a grid cell taken as exchangeable, the intersection T_pi = sum_x D(x, pi(x)) with
  D(x, y) = sum_cells m_x s_y / n_cell is a linear permutation statistic: its mean and variance are exact sums of
  per-image moments (Hoeffding 1951), and the p-value of the observed intersection is the normal upper tail
  there. Benjamini-Hochberg over every unit x concept pair gives q-values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from .cellscan import Columns, run_pixels, runs_above
from .iou import UNIONS
from .tally import cell_histograms, gathered_counts
from .upsample import Geometry, classify_cells, geometry, item_corners

CANDIDATES = 8  # concepts per unit followed through the resamples
GRID = 8  # cells per side of the permutation null's partition


@dataclass
class ImageCounts:
    """Exact counts of each image of a chunk at the final thresholds (concept axes id-indexed, length C+1).

    Attributes:
        positions: (n,) each image's position among the run's images (its bootstrap index).
        activation: (n, U) active pixels.
        intersection: (n, U, K) active pixels carrying each of the unit's candidate concepts.
        label: (n, C+1) pixels of each concept.
        present: (n, G) whether the image carries some concept of each category.
        mask_grid: (n, U, grid**2) active pixels per grid cell.
        label_grid: (n, C+1, grid**2) pixels of each concept per grid cell.
    """

    positions: np.ndarray
    activation: np.ndarray
    intersection: np.ndarray
    label: np.ndarray
    present: np.ndarray
    mask_grid: np.ndarray
    label_grid: np.ndarray

    @classmethod
    def concat(cls, parts: list[ImageCounts]) -> ImageCounts:
        """The counts of several batches of images, in order."""
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})


def grid_cells(size: tuple[int, int], grid: int) -> tuple[np.ndarray, np.ndarray]:
    """(H*W,) grid cell of every pixel (row-major), and (grid**2,) pixels per cell."""
    H, W = size
    rows = np.arange(H) * grid // H
    cols = np.arange(W) * grid // W
    cell = (rows[:, None] * grid + cols[None, :]).ravel()
    return cell, np.bincount(cell, minlength=grid * grid)


def active_pixels(acts: np.ndarray, thresholds: np.ndarray, geom: Geometry, batch: int = 4096):
    """The pixels whose upsampled activation is strictly above their unit's threshold, with the spine's cell passes.

    Cells wholly above (all-zero cells too, under a negative threshold) are returned whole; the cells that straddle
    the threshold are scanned column by column (``cellscan.runs_above``) and give their active pixels.

    Args:
        acts: (n, U, h, w) float32 activations.
        thresholds: (U,) float32.
        geom: the upsampling of the maps to the label maps.
        batch: straddling cells evaluated at once.

    Returns:
        ((image, unit, cell) of the wholly active cells, (image, unit, row-major pixel) of the other active pixels).
    """
    num_units = acts.shape[1]
    cells = classify_cells(acts, geom, thresholds, thresholds)
    img, unit, cell = cells.reaching  # at one level (low == high), no cell is all-zero inside the interval
    parts = [(np.zeros(0, np.int64),) * 3]
    for start in range(0, len(img), batch):
        i, u, g = img[start : start + batch], unit[start : start + batch], cell[start : start + batch]
        columns = Columns.of(item_corners(acts, geom, i * num_units + u, g), g, geom)
        item, first, length = runs_above(columns, geom, thresholds[u])
        owner = np.repeat(item, length)
        parts.append((i[owner], u[owner], geom.cell_major[run_pixels(first, length)]))
    return cells.above, tuple(np.concatenate(x) for x in zip(*parts))


def _cell_grid(geom: Geometry, cell: np.ndarray, cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels of every upsampling cell in every grid cell, as CSR rows per upsampling cell: (indptr, grid, count)."""
    pix = geom.pixels
    keys = (np.arange(geom.num_cells)[:, None] * cells + cell[pix])[pix >= 0]  # padding (-1) is dropped
    dense = np.bincount(keys)
    nonzero = np.flatnonzero(dense)
    indptr = np.searchsorted(nonzero, np.arange(geom.num_cells + 1) * cells)
    return indptr, nonzero % cells, dense[nonzero]


def image_counts(
    acts: np.ndarray,
    labels: np.ndarray,
    image_labels: np.ndarray,
    thresholds: np.ndarray,
    candidates: np.ndarray,
    category: np.ndarray,
    num_categories: int,
    positions: np.ndarray,
    grid: int = GRID,
) -> ImageCounts:
    """Per-image counts of labelled images at the final thresholds.

    Active pixels of wholly active cells count through the cells' label histograms and grid overlaps; only the
    active pixels of straddling cells are counted one by one.

    Args:
        acts: (n, U, h, w) float32 activations.
        labels: (n, P, H, W) concept ids per pixel and plane (0: none; a concept at most once per pixel).
        image_labels: (n, Q) image-level concept ids (0: none); such a concept carries every pixel.
        thresholds: (U,) float32 t_u: a pixel is active when strictly above.
        candidates: (U, K) concept ids (1 and up) followed per unit.
        category: (C+1,) category index per concept id (-1: unused).
        num_categories: G.
        positions: (n,) the images' positions among the run's images.
        grid: cells per side of the null's partition.
    """
    n, num_units, h, w = acts.shape
    _, _, H, W = labels.shape
    size, k = len(category), candidates.shape[1]
    geom = geometry(h, w, H, W)
    cell, cell_pixels = grid_cells((H, W), grid)
    cells = grid * grid
    onehot = np.zeros((n, size), np.int64)
    rows, cols = np.nonzero(image_labels)
    onehot[rows, image_labels[rows, cols].astype(np.int64)] = 1
    onehot[:, 0] = 0
    pixel = labels.reshape(n, labels.shape[1], H * W).astype(np.int64)
    (w_img, w_unit, w_cell), (img, unit, where) = active_pixels(acts, np.asarray(thresholds, np.float32), geom)
    item, w_item = img * num_units + unit, w_img * num_units + w_unit
    whole_pixels = np.bincount(w_item, geom.npix[w_cell], n * num_units).astype(np.int64)
    activation = (np.bincount(item, minlength=n * num_units) + whole_pixels).reshape(n, num_units)
    mask_grid = np.bincount(item * cells + cell[where], minlength=n * num_units * cells)
    mask_grid += gathered_counts(
        _cell_grid(geom, cell, cells), w_cell, lambda o, g: w_item[o] * cells + g, n * num_units * cells
    )
    # each unit's candidate concepts -> 0..K-1, every other concept (0, none, too) -> K, a column dropped below:
    # counting all pixels avoids compacting the hits of each plane
    slot = np.full((num_units, size), k)
    slot[np.arange(num_units)[:, None], candidates] = np.arange(k)[None, :]
    hits = np.zeros(n * num_units * (k + 1), np.int64)
    at, unit_row, item_row = img * pixel[0].size + where, unit * size, item * (k + 1)
    for plane in range(pixel.shape[1]):
        hits += np.bincount(
            item_row + np.take(slot, unit_row + np.take(pixel, at + plane * H * W)), minlength=hits.size
        )
    hits += gathered_counts(
        cell_histograms(labels, geom, size),
        w_img * geom.num_cells + w_cell,
        lambda o, c: w_item[o] * (k + 1) + np.take(slot, w_unit[o] * size + c),
        hits.size,
    )
    intersection = hits.reshape(n, num_units, k + 1)[:, :, :k] + activation[:, :, None] * onehot[:, candidates]
    grid_keys = (np.arange(n)[:, None, None] * size + pixel) * cells + cell[None, None, :]
    label_grid = np.bincount(grid_keys.ravel(), minlength=n * size * cells).reshape(n, size, cells)
    label_grid[:, 0] = 0
    label_grid += onehot[:, :, None] * cell_pixels[None, None, :]
    label = label_grid.sum(2)
    present = np.zeros((n, num_categories), bool)
    has, concept = np.nonzero((label > 0) & (category >= 0)[None, :])
    present[has, category[concept]] = True
    return ImageCounts(
        positions=np.asarray(positions, np.int64),
        activation=activation,
        intersection=intersection,
        label=label,
        present=present,
        mask_grid=mask_grid.reshape(n, num_units, cells),
        label_grid=label_grid,
    )


def resample_weights(images: int, resamples: int, seed: int) -> np.ndarray:
    """(R, N) bootstrap multiplicities: resample r draws N of the N images with replacement, by rng([seed, r])."""
    out = np.empty((resamples, images), np.int64)
    for r in range(resamples):
        out[r] = np.bincount(np.random.default_rng([seed, r]).integers(0, images, images), minlength=images)
    return out


@dataclass
class Sums:
    """Additive statistics of some images: per-resample counts and the permutation null's moments.

    Attributes:
        intersection: (R, U, K) per resample, active pixels carrying each candidate.
        activation: (R, U) active pixels.
        activation_in_category: (R, U, G) active pixels in images carrying some concept of category g.
        label: (R, C+1) pixels of each concept.
        mask_total, mask_moment: (U, cells) sum over images of m_x / sqrt(n_cell), (U, cells, cells) of its outer
            products.
        label_total, label_moment: the same for every concept's label maps, (C+1, cells) and (C+1, cells, cells).
        images: labelled images summed.
    """

    intersection: np.ndarray
    activation: np.ndarray
    activation_in_category: np.ndarray
    label: np.ndarray
    mask_total: np.ndarray
    mask_moment: np.ndarray
    label_total: np.ndarray
    label_moment: np.ndarray
    images: int

    def __add__(self, other: Sums) -> Sums:
        return Sums(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def of_arrays(cls, arrays) -> Sums:
        return cls(
            **{f.name: arrays[f.name][...] for f in fields(cls) if f.name != "images"},
            images=int(arrays["images"][...]),
        )


def chunk_sums(counts: ImageCounts, weights: np.ndarray, cell_pixels: np.ndarray) -> Sums:
    """A chunk's Sums: its images' counts weighted by their columns of the (R, N) multiplicities."""
    w = weights[:, counts.positions].astype(np.float64)
    n = len(counts.positions)

    def weighted(values: np.ndarray) -> np.ndarray:  # exact: integers far below 2**53
        flat = values.reshape(n, -1).astype(np.float64)
        return np.rint(w @ flat).astype(np.int64).reshape(len(w), *values.shape[1:])

    in_category = counts.activation[:, :, None] * counts.present[:, None, :]
    scale = 1.0 / np.sqrt(np.maximum(cell_pixels, 1))
    masks = counts.mask_grid * scale
    labels = counts.label_grid * scale
    return Sums(
        intersection=weighted(counts.intersection),
        activation=weighted(counts.activation),
        activation_in_category=weighted(in_category),
        label=weighted(counts.label),
        mask_total=masks.sum(0),
        mask_moment=np.matmul(masks.transpose(1, 2, 0), masks.transpose(1, 0, 2)),
        label_total=labels.sum(0),
        label_moment=np.matmul(labels.transpose(1, 2, 0), labels.transpose(1, 0, 2)),
        images=n,
    )


def candidate_concepts(iou: np.ndarray, k: int) -> np.ndarray:
    """(U, K) per unit the ids of its k highest-IoU concepts (ties: the lowest id; all C where k > C), in ascending
    id order."""
    order = np.argsort(-iou[:, 1:], kind="stable")[:, :k] + 1
    return np.sort(order)


def resample_iou(sums: Sums, candidates: np.ndarray, category: np.ndarray, union: str) -> np.ndarray:
    """(R, U, K) IoU of every unit's candidates in every resample (the formula of :func:`netdissect.iou.iou_matrix`)."""
    if union not in UNIONS:
        raise ValueError(f"union must be one of {UNIONS}, not {union!r}")
    inter = sums.intersection.astype(np.float64)
    if union == "all":
        act = sums.activation[:, :, None].astype(np.float64)
    else:
        cats = np.maximum(category[candidates], 0)  # (U, K)
        act = np.take_along_axis(sums.activation_in_category, cats[None], 2).astype(np.float64)
    label = sums.label[:, candidates].astype(np.float64)
    return inter / np.maximum(act + label - inter, 1)


def bootstrap_summary(
    iou: np.ndarray, candidates: np.ndarray, labels: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per unit the percentile interval of its best IoU over the resamples and its label's stability.

    Args:
        iou: (R, U, K) from :func:`resample_iou`, candidates in ascending id order.
        candidates: (U, K) ids.
        labels: (U,) the full data's label id per unit (0: none; its stability is then NaN).
        level: the interval's coverage (0.95: the 2.5 and 97.5 percentiles).
    """
    best = iou.max(2)
    low, high = np.quantile(best, [(1 - level) / 2, (1 + level) / 2], axis=0)
    winner = np.take_along_axis(candidates, iou.argmax(2).T, 1).T  # (R, U) ids; ties: the lowest id
    stability = ((winner == labels[None, :]) & (best > 0)).mean(0)
    return low, high, np.where(labels > 0, stability, np.nan)


def null_moments(sums: Sums) -> tuple[np.ndarray, np.ndarray]:
    """(U, C+1) mean and variance of the intersection under random pairing of maps and label maps.

    With D(x, y) = <v_x, w_y> (v, w the grid counts over sqrt(n_cell)) and N images, sum_x D(x, pi(x)) has mean
    D../N and variance (sum D^2 - sum_x D_x.^2/N - sum_y D_.y^2/N + D..^2/N^2) / (N - 1).
    """
    N = sums.images
    V, W = sums.mask_total, sums.label_total
    total = V @ W.T
    mean = total / max(N, 1)
    if N < 2:
        return mean, np.zeros_like(mean)
    masks, labels = sums.mask_moment.reshape(len(V), -1), sums.label_moment.reshape(len(W), -1)
    squares = masks @ labels.T  # <sum_x v_x v_x^T, sum_y w_y w_y^T>
    rows = masks @ np.einsum("ca,cb->cab", W, W).reshape(len(W), -1).T  # sum_x <v_x, W>^2
    cols = np.einsum("ua,ub->uab", V, V).reshape(len(V), -1) @ labels.T  # sum_y <V, w_y>^2
    var = (squares - rows / N - cols / N + total**2 / N**2) / (N - 1)
    return mean, np.maximum(var, 0.0)


def p_values(observed: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Upper-tail p-values of observed intersections under the normal approximation of the null (1 where the
    null has no spread, or the observation is at most its mean)."""
    sd = np.sqrt(var)
    z = (observed - mean) / np.where(sd > 0, sd, 1.0)
    tail = np.vectorize(lambda v: 0.5 * math.erfc(v / math.sqrt(2)))(z) if z.size else z
    return np.where((sd > 0) & (z > 0), tail, 1.0)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """q-values (BH adjusted p-values) of every entry of ``p``, the same shape."""
    flat = p.ravel()
    m = len(flat)
    order = np.argsort(flat)  # tied p-values get the same q-value in any order
    ranked = flat[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = q  # at most the largest p
    return out.reshape(p.shape)
