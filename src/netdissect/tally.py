"""Integer intersection, activation and label counts of one chunk, for IoU.

A unit u is *active* at a pixel when its upsampled activation is strictly above its threshold t_u. For every
unit u and concept c the chunk contributes

- intersection[u, c]: active pixels of u that carry c (an image-level label carries every pixel of its image);
- activation[u]: active pixels of u;
- activation_in_category[u, g]: active pixels of u in images that carry some concept of category g;
- label[c]: pixels that carry c.

Counts are exact integers that add up over chunks. Cells wholly above a threshold contribute their label
histogram at once; only cells whose corners straddle it are evaluated pixel by pixel.

The count pass also finishes the threshold search: it takes each unit's last threshold interval (low, high],
which holds t_u, counts pixels above high as active, and keeps the pixels inside the interval as ``Pending``
entries (distinct value, pixels, their concepts and categories). Once the pending values of all chunks fix t_u
(``quantile.threshold_in_interval``), the pending entries above t_u join the counts (``Pending.above``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .cellscan import Columns, run_pixels, smaller_side
from .quantile import EXACT, Histogram, float_keys
from .upsample import BOUNDS_BLOCK, Geometry, classify_cells, geometry, item_corners

HISTOGRAM_BLOCK = 1 << 18  # (image, cell, concept) entries counted at once
KEYS_PER_COUNT = 1 << 22  # label keys of straddling cells' pixels collected before they are counted


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


@dataclass
class Pending:
    """Pixels whose value lies inside their unit's last threshold interval (low, high]: active or not once t is known.

    Attributes:
        above: (U,) pixels above high, in every image (labelled or not): with the entries, what fixes t.
        values: values per unit seen (images x pixels, labelled or not).
        unit, key: (E,) unit and float key (``quantile.float_keys``) of each distinct pending value.
        pixels: (E,) pixels with that value, in every image.
        labelled: (E,) of those, pixels of images with a segmentation (they count as active above t).
        category: (E, G) of those, pixels of images carrying some concept of category g.
        concept_entry, concept, concept_count: (entry, concept id, pixels) of every entry's concepts.
    """

    above: np.ndarray
    values: int
    unit: np.ndarray
    key: np.ndarray
    pixels: np.ndarray
    labelled: np.ndarray
    category: np.ndarray
    concept_entry: np.ndarray
    concept: np.ndarray
    concept_count: np.ndarray

    @classmethod
    def concat(cls, parts: list[Pending]) -> Pending:
        """The pending pixels of several batches or chunks together (entries may repeat a (unit, key))."""
        offsets = np.cumsum([0] + [len(p.unit) for p in parts[:-1]])
        joined = {
            f.name: np.concatenate([getattr(p, f.name) for p in parts])
            for f in fields(cls)
            if f.name not in ("above", "values", "concept_entry")
        }
        return cls(
            above=np.sum([p.above for p in parts], axis=0),
            values=sum(p.values for p in parts),
            concept_entry=np.concatenate([p.concept_entry + o for p, o in zip(parts, offsets)]),
            **joined,
        )

    def values_histogram(self) -> Histogram:
        """The pending values with the count above, as an EXACT histogram for ``quantile.threshold_in_interval``."""
        return Histogram(self.values, self.above, self.unit, self.key, self.pixels, EXACT)

    def _above(self, thresholds: np.ndarray) -> np.ndarray:
        """(E,) whether each entry's value is strictly above its unit's threshold."""
        return self.key > float_keys(thresholds)[self.unit]

    def values_above(self, thresholds: np.ndarray) -> np.ndarray:
        """(U,) values strictly above each unit's threshold, in every image."""
        on = self._above(thresholds)
        return self.above + np.bincount(self.unit[on], self.pixels[on], len(self.above)).astype(np.int64)

    def active(self, thresholds: np.ndarray, size: int, pixels: int) -> Counts:
        """The counts the entries above the thresholds add (only activations and intersections).

        Args:
            thresholds: (U,) float32 t per unit, inside each unit's interval.
            size: length of id-indexed concept axes.
            pixels: pixels per image.
        """
        num_units = len(self.above)
        on = self._above(thresholds)
        hit = on[self.concept_entry]
        intersection = np.zeros(num_units * size, np.int64)
        np.add.at(intersection, self.unit[self.concept_entry[hit]] * size + self.concept[hit], self.concept_count[hit])
        category = np.zeros((num_units, self.category.shape[1]), np.int64)
        np.add.at(category, self.unit[on], self.category[on])
        return Counts(
            intersection=intersection.reshape(num_units, size),
            activation=np.bincount(self.unit[on], self.labelled[on], num_units).astype(np.int64),
            activation_in_category=category,
            label=np.zeros(size, np.int64),
            images_in_category=np.zeros(self.category.shape[1], np.int64),
            images=0,
            pixels=pixels,
        )


def cell_histograms(
    labels: np.ndarray, geom: Geometry, size: int, block: int = HISTOGRAM_BLOCK
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concept pixel counts of every (image, cell), as CSR rows indexed by image * G + cell.

    Counted densely a few images at a time (a block of about ``block`` entries stays in cache), keeping only
    nonzero entries.

    Returns:
        (indptr, concept, count).
    """
    n = labels.shape[0]
    per_image = geom.num_cells * size
    images = max(1, block // per_image)
    cell_keys = (geom.cell_of_pixel * size).astype(np.int64)
    keys, counts = [], []
    for start in range(0, n, images):
        part = labels[start : start + images]
        part = part.reshape(len(part), labels.shape[1], labels.shape[-2] * labels.shape[-1])
        offsets = np.arange(len(part))[:, None, None] * per_image
        dense = np.bincount((offsets + cell_keys + part).ravel())  # only its nonzero entries are kept
        dense[::size] = 0  # concept 0: no label
        nonzero = np.flatnonzero(dense)
        keys.append(nonzero + start * per_image)
        counts.append(dense[nonzero])
    key, count = np.concatenate(keys), np.concatenate(counts)
    indptr = np.searchsorted(key, np.arange(n * geom.num_cells + 1) * size)  # row r: keys from r * size on
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


def gathered_counts(csr: tuple[np.ndarray, np.ndarray, np.ndarray], rows: np.ndarray, keys_of, size: int) -> np.ndarray:
    """(size,) int64 sums of the counts of some CSR rows (indptr, column, count), each entry counted at the key
    ``keys_of(index of its row in rows, its column)``."""
    indptr, column, count = csr
    entries, owner = _gather_rows(indptr, rows)
    return np.bincount(keys_of(owner, column[entries]), count[entries], size).astype(np.int64)


def _label_hits(histograms, geom: Geometry, img, unit, cell, num_units: int, size: int) -> np.ndarray:
    """(U * size,) pixels of each (unit, concept) in the label histograms of whole (image, unit, cell) items."""
    rows = img * geom.num_cells + cell
    return gathered_counts(histograms, rows, lambda owner, concept: unit[owner] * size + concept, num_units * size)


def tally_chunk(
    acts: np.ndarray,
    labels: np.ndarray,
    image_labels: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    vocab: Vocabulary,
    labelled: np.ndarray | None = None,
    batch: int = 4096,
    histogram_block: int = HISTOGRAM_BLOCK,
    bounds_block: int = BOUNDS_BLOCK,
) -> tuple[Counts, Pending]:
    """Count one chunk of images against each unit's last threshold interval (low, high].

    Pixels above high are active; pixels inside (low, high] are returned as pending entries. With low == high
    (the thresholds themselves) the counts are final and nothing is pending.

    Args:
        acts: (n, U, h, w) float32 activations.
        labels: (n, P, H, W) integer concept ids per pixel and plane (0 = none; a concept at most once per pixel).
        image_labels: (n, Q) integer concept ids of image-level labels (0 = none).
        low, high: (U,) float32 interval per unit.
        vocab: the concept vocabulary.
        labelled: (n,) images that have a segmentation (default: all). The others (all labels 0) only count
            towards the thresholds: ``Pending.above`` and ``Pending.pixels``.
        batch: straddling cells evaluated at once.
        histogram_block: (image, cell, concept) entries of label histograms counted at once.
        bounds_block: maps whose cell bounds are computed at once.

    Returns:
        The chunk's Counts (of labelled images) and its Pending pixels.
    """
    n, num_units, h, w = acts.shape
    H, W = labels.shape[-2:]
    geom = geometry(h, w, H, W)
    size = vocab.size
    labelled = np.ones(n, bool) if labelled is None else np.asarray(labelled, bool)
    low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
    cells = classify_cells(
        acts, geom, low, high, bounds_block
    )  # above high, straddling, or all-zero inside (low, high]
    img, unit, cell = cells.above
    active = (
        np.bincount(  # (n, U) active pixels, starting with those of cells wholly above high
            img * num_units + unit, weights=geom.npix[cell], minlength=n * num_units
        )
        .astype(np.int64)
        .reshape(n, num_units)
    )
    hits = np.zeros(num_units * size, np.int64)
    histograms = cell_histograms(labels, geom, size, histogram_block)

    def add_cells(img, unit, cell):
        """Add the label histograms of whole (image, unit, cell) items."""
        hits[:] += _label_hits(histograms, geom, img, unit, cell, num_units, size)

    # cells wholly above high: add their label histograms
    add_cells(*cells.above)

    # straddling cells: the pixels above high, or the whole cell minus the pixels not above, whichever is fewer
    # (n*HW, P) labels in cell-major pixel order: the runs of pixels the scan lists are contiguous there
    pixel_labels = np.take(labels.reshape(n, labels.shape[1], H * W), geom.cell_major, 2).transpose(0, 2, 1)
    pixel_labels = pixel_labels.reshape(n * H * W, -1)
    img, unit, cell = cells.reaching
    inside = []
    keys: dict[int, list[np.ndarray]] = {1: [], -1: []}  # label keys of listed pixels to add and to subtract

    def count_keys():
        for sign, parts in keys.items():
            if parts:
                hits[:] += sign * np.bincount(np.concatenate(parts), minlength=hits.size)
            parts.clear()

    for start in range(0, len(img), batch):
        i, u, g = img[start : start + batch], unit[start : start + batch], cell[start : start + batch]
        corners = item_corners(acts, geom, i * num_units + u, g)
        runs, above, (p_item, p_pixel, p_value) = smaller_side(Columns.of(corners, g, geom), geom, low[u], high[u])
        inside.append((i[p_item], u[p_item], p_pixel, p_value))
        run_item, run_start, run_length = runs
        listed = np.bincount(run_item, run_length, len(g)).astype(np.int64)
        np.add.at(active, (i, u), np.where(above, listed, geom.npix[g] - listed))
        add_cells(i[~above], u[~above], g[~above])
        # labels of the listed pixels: added where they are the pixels above, subtracted from the cell's otherwise
        for sign, runs_on_side in ((1, above[run_item]), (-1, ~above[run_item])):
            r_item, r_length = run_item[runs_on_side], run_length[runs_on_side]
            positions = run_pixels(np.take(i * (H * W), r_item) + run_start[runs_on_side], r_length)
            unit_keys = np.repeat(np.take(u * size, r_item), r_length)
            keys[sign].append((unit_keys[:, None] + np.take(pixel_labels, positions, 0)).ravel())
        if sum(len(k) for k in keys[1] + keys[-1]) > KEYS_PER_COUNT:
            count_keys()
    count_keys()
    intersection = hits.reshape(num_units, size)
    intersection[:, 0] = 0

    # image-level labels carry every pixel of their image
    image_onehot = np.zeros((n, size), np.int64)
    rows, cols = np.nonzero(image_labels)
    image_onehot[rows, image_labels[rows, cols].astype(np.int64)] = 1
    image_onehot[:, 0] = 0
    intersection += _count_product(active.T, image_onehot)

    indptr, concept, count = histograms
    image_of_entry = np.repeat(np.arange(n * geom.num_cells) // geom.num_cells, np.diff(indptr))
    pixel_hist = np.bincount(image_of_entry * size + concept, weights=count, minlength=n * size).reshape(n, size)
    label = pixel_hist.sum(0).astype(np.int64) + image_onehot.sum(0) * (H * W)
    present = (pixel_hist > 0) | (image_onehot > 0)
    in_category = np.zeros((n, vocab.num_categories), np.int64)
    for g in range(vocab.num_categories):
        in_category[:, g] = present[:, vocab.category == g].any(1)
    counts = Counts(
        intersection=intersection,
        activation=active[labelled].sum(0),
        activation_in_category=_count_product(active.T, in_category),
        label=label,
        images_in_category=in_category.sum(0),
        images=int(labelled.sum()),
        pixels=H * W,
    )
    images = _ImageLabels(pixel_labels, histograms, image_onehot, in_category, labelled)
    pending = _pending(inside, cells.zero, geom, images, active.sum(0), n * H * W)
    return counts, pending


@dataclass
class _ImageLabels:
    """What a chunk's pending pixels need to know of their images."""

    pixel_labels: np.ndarray  # (n * HW, P) concept ids of every pixel, cell-major within an image
    histograms: tuple[np.ndarray, np.ndarray, np.ndarray]  # CSR concept counts of every (image, cell)
    onehot: np.ndarray  # (n, C+1) image-level concepts
    in_category: np.ndarray  # (n, G) images carrying some concept of each category
    labelled: np.ndarray  # (n,) images with a segmentation


def _pending(inside: list, zero, geom: Geometry, images: _ImageLabels, above: np.ndarray, values: int) -> Pending:
    """Pending entries from the pixels inside the interval, and from the all-zero cells inside it (value 0).

    Args:
        inside: (image, unit, pixel, value) arrays of pixels inside (low, high], per batch.
        zero: (image, unit, cell) of all-zero cells inside the interval.
        geom, images: the chunk's geometry and labels.
        above: (U,) pixels above high.
        values: values per unit seen.
    """
    size = images.onehot.shape[1]
    img, unit, pixel, value = (np.concatenate(x) for x in zip(*inside)) if inside else [np.zeros(0, np.int64)] * 4
    flat, entry = np.unique(unit.astype(np.int64) << 32 | float_keys(value), return_inverse=True)
    count = len(flat)
    # concepts: the pixel's labels, and the image labels of its image
    p_entry = np.repeat(entry, images.pixel_labels.shape[1])
    p_concept = np.take(images.pixel_labels, img * (geom.target[0] * geom.target[1]) + pixel, 0).ravel()
    pairs, inverse = np.unique(entry * len(images.onehot) + img, return_inverse=True)
    pair_count = np.bincount(inverse, minlength=len(pairs))
    pair_entry, pair_img = np.divmod(pairs, len(images.onehot))
    i_rows, i_concept = np.nonzero(images.onehot[pair_img])
    keys = np.concatenate([p_entry, pair_entry[i_rows]]) * size + np.concatenate([p_concept, i_concept])
    counts = np.concatenate([np.ones(len(p_entry), np.int64), pair_count[i_rows]])
    keep = keys % size != 0
    concept_keys, concept_index = np.unique(keys[keep], return_inverse=True)
    category = np.zeros((count, images.in_category.shape[1]), np.int64)
    np.add.at(category, pair_entry, pair_count[:, None] * images.in_category[pair_img])
    pixels = Pending(
        above=above,
        values=values,
        unit=flat >> 32,
        key=flat & 0xFFFFFFFF,
        pixels=np.bincount(entry, minlength=count).astype(np.int64),
        labelled=np.bincount(entry, images.labelled[img], count).astype(np.int64),
        category=category,
        concept_entry=concept_keys // size,
        concept=concept_keys % size,
        concept_count=np.bincount(concept_index, counts[keep], len(concept_keys)).astype(np.int64),
    )
    return Pending.concat([pixels, _pending_zeros(zero, geom, images, len(above))])


def _pending_zeros(zero, geom: Geometry, images: _ImageLabels, num_units: int) -> Pending:
    """One pending entry per unit for all its all-zero cells inside the interval (every such pixel is exactly 0),
    with their label histograms summed per unit."""
    img, unit, cell = zero
    n, size = images.onehot.shape
    per_image = np.bincount(img * num_units + unit, geom.npix[cell], n * num_units).astype(np.int64)
    per_image = per_image.reshape(n, num_units)  # zero-cell pixels of each image and unit
    hits = _label_hits(images.histograms, geom, img, unit, cell, num_units, size).reshape(num_units, size)
    hits += _count_product(per_image.T, images.onehot)
    hits[:, 0] = 0
    units = np.flatnonzero(per_image.sum(0))
    concept_entry, concept_id = np.nonzero(hits[units])
    return Pending(
        above=np.zeros(num_units, np.int64),
        values=0,
        unit=units,
        key=np.full(len(units), float_keys(np.float32(0))),
        pixels=per_image.sum(0)[units],
        labelled=per_image[images.labelled].sum(0)[units],
        category=_count_product(per_image.T, images.in_category)[units],
        concept_entry=concept_entry,
        concept=concept_id,
        concept_count=hits[units][concept_entry, concept_id],
    )
