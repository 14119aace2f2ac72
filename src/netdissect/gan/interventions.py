"""What an intervention on a generator did, measured on label maps of the images before and after (pure numpy).

Removal: the concept's pixels before and after, the other pixels whose label changed, and what replaced the
concept. Insertion: the concept's pixels added in a window around the edited feature cell, grouped by the label
the window had before (its context).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Removal:
    """The effect of removing a concept's units on one set of images.

    Attributes:
        fraction_before: the concept's share of all pixels before.
        fraction_after: and after.
        other_changed: share of the pixels not of the concept before whose label changed.
        top_replacement: the label most often found after where the concept was (0 if none was replaced).
    """

    fraction_before: float
    fraction_after: float
    other_changed: float
    top_replacement: int


def removal_effect(before: np.ndarray, after: np.ndarray, concept: int) -> Removal:
    """Compare label maps of the same latents without and with the concept's units removed.

    Args:
        before: integer label maps (N, h, w) of the concept's category, unedited.
        after: the same with the units removed.
        concept: the concept id.
    """
    if before.shape != after.shape:
        raise ValueError(f"label maps before {before.shape} and after {after.shape} differ in shape")
    was = before == concept
    others = ~was
    replaced = after[was & (after != concept)]
    top = int(np.bincount(replaced.ravel()).argmax()) if replaced.size else 0
    return Removal(
        fraction_before=float(was.mean()),
        fraction_after=float((after == concept).mean()),
        other_changed=float((before[others] != after[others]).sum() / max(int(others.sum()), 1)),
        top_replacement=top,
    )


def cell_window(
    cell: tuple[int, int], grid: tuple[int, int], size: tuple[int, int], margin: int
) -> tuple[slice, slice]:
    """The label-map window of a feature cell: its footprint on the map, grown by ``margin`` cells on each side.

    Args:
        cell: (row, column) of the feature cell.
        grid: (rows, columns) of the feature map.
        size: (h, w) of the label map; each side must be a multiple of the grid's.
        margin: cells added on each side (clipped at the border).
    """
    (r, c), (gr, gc), (h, w) = cell, grid, size
    if h % gr or w % gc:
        raise ValueError(f"label maps of {h}x{w} do not split into a {gr}x{gc} grid of cells")
    sy, sx = h // gr, w // gc
    rows = slice(max(r - margin, 0) * sy, min(r + 1 + margin, gr) * sy)
    cols = slice(max(c - margin, 0) * sx, min(c + 1 + margin, gc) * sx)
    return rows, cols


def context_of(context_map: np.ndarray, window: tuple[slice, slice]) -> int:
    """The most frequent label of a window (ties: the lowest id); 0 is 'none'."""
    return int(np.bincount(context_map[window].ravel()).argmax())


def cell_masks(cells: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """bool (len(cells), rows, columns) masks, each True at its one (row, column) cell."""
    masks = np.zeros((len(cells),) + tuple(grid), bool)
    masks[np.arange(len(cells)), cells[:, 0], cells[:, 1]] = True
    return masks


def chosen_concepts(units: pd.DataFrame, categories: set[str], count: int) -> list[str]:
    """The concepts with the most detector units of a layer (ties: the higher best IoU, then the name).

    Args:
        units: the layer's ``units.csv``.
        categories: the pixel categories whose concepts can be removed and inserted.
        count: how many concepts to return (fewer when fewer have detectors).
    """
    detectors = units[units["detector"] & units["category"].isin(categories)]
    ranked = detectors.groupby("label")["iou"].agg(["size", "max"]).reset_index()
    ranked = ranked.sort_values(["size", "max", "label"], ascending=[False, False, True])
    return list(ranked["label"][:count])


def insertion_rows(
    before: np.ndarray,
    after: np.ndarray,
    context: np.ndarray,
    windows: list[tuple[slice, slice]],
    cells: list[tuple[slice, slice]],
    min_pixels: int,
) -> pd.DataFrame:
    """Per edited location: its context, the concept pixels added in its window, and whether that succeeded.

    Args:
        before: (E, h, w) bool, the concept's pixels before each edit (the unedited image of its latent).
        after: (E, h, w) bool, and after.
        context: (E, h, w) labels of the unedited images; the most frequent inside each edited cell is its context.
        windows: the E windows in which added pixels are counted.
        cells: the E edited cells' own footprints.
        min_pixels: an edit succeeds when it adds at least this many concept pixels to its window.
    """
    added = np.array([int(a[w].sum()) - int(b[w].sum()) for a, b, w in zip(after, before, windows)])
    contexts = [context_of(c, w) for c, w in zip(context, cells)]
    return pd.DataFrame({"context": contexts, "added": added, "success": added >= min_pixels})


def spread_cells(grid: tuple[int, int], per_side: int) -> np.ndarray:
    """(L, 2) cells (row, column) spread evenly over a grid, at most ``per_side`` per side, corners included."""
    rows, cols = (np.unique(np.linspace(0, n - 1, min(per_side, n)).round().astype(int)) for n in grid)
    return np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)
