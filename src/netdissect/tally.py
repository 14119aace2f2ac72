"""Integer intersection, activation and label counts of one chunk, for IoU.

A unit u is *active* at a pixel when its upsampled activation is strictly above its threshold t_u. For every
unit u and concept c the chunk contributes

- intersection[u, c]: active pixels of u that carry c (an image-level label carries every pixel of its image);
- activation[u]: active pixels of u;
- activation_in_category[u, g]: active pixels of u in images that carry some concept of category g;
- label[c]: pixels that carry c.

Counts are exact integers that add up over chunks. Cells wholly above a threshold contribute their label
histogram at once; only cells whose corners straddle it are evaluated pixel by pixel.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .cellscan import Columns, smaller_side
from .upsample import Geometry, classify_cells, geometry, item_corners

HISTOGRAM_BLOCK = 1 << 18  # (image, cell, concept) entries counted at once


@dataclass
class Counts:
    """Additive counts of a chunk (or of a whole dataset after merging). Concept axes are indexed by id (0 unused).

    Attributes:
        intersection: (U, C+1) int64.
        activation: (U,) int64.
        activation_in_category: (U, G) int64.
        label: (C+1,) int64.
        images_in_category: (G,) int64 number of images carrying some concept of each category.
        images: number of images.
        pixels: pixels per image (H * W).
    """

    intersection: np.ndarray
    activation: np.ndarray
    activation_in_category: np.ndarray
    label: np.ndarray
    images_in_category: np.ndarray
    images: int
    pixels: int

    def __add__(self, other: Counts) -> Counts:
        if self.pixels != other.pixels:
            raise ValueError(f"cannot add counts at {self.pixels} and {other.pixels} pixels per image")
        summed = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self) if f.name != "pixels"}
        return Counts(**summed, pixels=self.pixels)


@dataclass(frozen=True)
class Vocabulary:
    """Concept ids 1..C with their category index (0..G-1); ``category[0]`` is -1 (no concept)."""

    category: np.ndarray
    num_categories: int

    @property
    def size(self) -> int:
        """C + 1: the length of id-indexed concept axes."""
        return len(self.category)


def _cell_histograms(labels: np.ndarray, geom: Geometry, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concept pixel counts of every (image, cell), as CSR rows indexed by image * G + cell.

    Counted densely a few images at a time (the block's table stays in cache), keeping only nonzero entries.

    Returns:
        (indptr, concept, count).
    """
    n = labels.shape[0]
    per_image = geom.num_cells * size
    block = max(1, HISTOGRAM_BLOCK // per_image)
    cell_keys = (geom.cell_of_pixel * size).astype(np.int64)
    keys, counts = [], []
    for start in range(0, n, block):
        part = labels[start : start + block].reshape(-1, labels.shape[1], labels.shape[-2] * labels.shape[-1])
        offsets = np.arange(len(part))[:, None, None] * per_image
        dense = np.bincount((offsets + cell_keys + part).ravel(), minlength=len(part) * per_image)
        dense[::size] = 0  # concept 0: no label
        nonzero = np.flatnonzero(dense)
        keys.append(nonzero + start * per_image)
        counts.append(dense[nonzero])
    key, count = np.concatenate(keys), np.concatenate(counts)
    indptr = np.searchsorted(key // size, np.arange(n * geom.num_cells + 1))
    return indptr, key % size, count


def _count_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact a @ b of integer count matrices, through float64 BLAS (exact below 2**53, far above any count)."""
    return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)


def _gather_rows(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entry positions of the given CSR rows, and for each entry the index of its row in ``rows``."""
    lengths = indptr[rows + 1] - indptr[rows]
    owner = np.repeat(np.arange(len(rows)), lengths)
    starts = np.repeat(indptr[rows] - np.cumsum(lengths) + lengths, lengths)
    return starts + np.arange(lengths.sum()), owner


def tally_chunk(
    acts: np.ndarray,
    labels: np.ndarray,
    image_labels: np.ndarray,
    thresholds: np.ndarray,
    vocab: Vocabulary,
    batch: int = 4096,
) -> Counts:
    """Count one chunk of images.

    Args:
        acts: (n, U, h, w) float32 activations.
        labels: (n, P, H, W) integer concept ids per pixel and plane (0 = none; a concept at most once per pixel).
        image_labels: (n, Q) integer concept ids of image-level labels (0 = none).
        thresholds: (U,) float32.
        vocab: the concept vocabulary.
        batch: straddling cells evaluated at once.

    Returns:
        The chunk's Counts.
    """
    n, num_units, h, w = acts.shape
    H, W = labels.shape[-2:]
    geom = geometry(h, w, H, W)
    size = vocab.size
    thresholds = np.asarray(thresholds, np.float32)
    cells = classify_cells(acts, geom, thresholds, thresholds)  # above t, or straddling it
    img, unit, cell = cells.above
    active = (
        np.bincount(  # (n, U) active pixels, starting with those of cells wholly above t
            img * num_units + unit, weights=geom.npix[cell], minlength=n * num_units
        )
        .astype(np.int64)
        .reshape(n, num_units)
    )
    hits = np.zeros(num_units * size, np.int64)
    indptr, concept, count = _cell_histograms(labels, geom, size)

    def add_cells(img, unit, cell):
        """Add the label histograms of whole (image, unit, cell) items."""
        entries, owner = _gather_rows(indptr, img * geom.num_cells + cell)
        keys = unit[owner] * size + concept[entries]
        hits[:] += np.bincount(keys, weights=count[entries], minlength=hits.size).astype(np.int64)

    # cells wholly above threshold: add their label histograms
    add_cells(*cells.above)

    # straddling cells: the pixels above threshold, or the whole cell minus the pixels not above, whichever is fewer
    pixel_labels = labels.reshape(n, labels.shape[1], -1).transpose(0, 2, 1).reshape(-1, labels.shape[1])  # (n*HW, P)
    img, unit, cell = cells.reaching
    for start in range(0, len(img), batch):
        i, u, g = img[start : start + batch], unit[start : start + batch], cell[start : start + batch]
        corners = item_corners(acts, geom, i * num_units + u, g)
        item, pixel, above = smaller_side(Columns.of(corners, g, geom), geom, thresholds[u])
        listed = np.bincount(item, minlength=len(g))
        np.add.at(active, (i, u), np.where(above, listed, geom.npix[g] - listed))
        add_cells(i[~above], u[~above], g[~above])
        keys = (u[item] * size)[:, None] + pixel_labels[i[item] * (H * W) + pixel]  # concept 0 (none) is dropped below
        sign = np.where(above[item], 1, -1)[:, None]
        hits += np.bincount(
            keys.ravel(), weights=np.broadcast_to(sign, keys.shape).ravel(), minlength=hits.size
        ).astype(np.int64)
    intersection = hits.reshape(num_units, size)
    intersection[:, 0] = 0

    # image-level labels carry every pixel of their image
    image_onehot = np.zeros((n, size), np.int64)
    rows, cols = np.nonzero(image_labels)
    image_onehot[rows, image_labels[rows, cols].astype(np.int64)] = 1
    image_onehot[:, 0] = 0
    intersection += _count_product(active.T, image_onehot)

    image_of_entry = np.repeat(np.arange(n * geom.num_cells) // geom.num_cells, np.diff(indptr))
    pixel_hist = np.bincount(image_of_entry * size + concept, weights=count, minlength=n * size).reshape(n, size)
    label = pixel_hist.sum(0).astype(np.int64) + image_onehot.sum(0) * (H * W)
    present = (pixel_hist > 0) | (image_onehot > 0)
    in_category = np.zeros((n, vocab.num_categories), np.int64)
    for g in range(vocab.num_categories):
        in_category[:, g] = present[:, vocab.category == g].any(1)
    return Counts(
        intersection=intersection,
        activation=active.sum(0),
        activation_in_category=_count_product(active.T, in_category),
        label=label,
        images_in_category=in_category.sum(0),
        images=n,
        pixels=H * W,
    )
