"""The tally's stores: one chunk's counts with its pending values (``tally/<layer>/<chunk>.zarr``), and a layer's
final counts and IoU (``dissect/<layer>/tally.zarr``).

A chunk store holds the counts of the pixels above each unit's last threshold interval, with concept axes in
``concepts.csv`` order, and the pixels inside the interval as pending entries (``pending_*`` arrays, attribute
``values``). Chunk stores are kept after the reduce, so later stages can complete any chunk's counts at the final
thresholds (:func:`chunk_counts`) without a second pass over the activations.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .quantile import float_keys, key_floats
from .stores import open_group, write_group
from .tally import Counts, Pending


def public_counts(counts: Counts, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Counts with concept axes in concepts.csv order (position j = the j-th concept)."""
    return {
        "intersection": counts.intersection[:, ids],
        "activation": counts.activation,
        "activation_in_category": counts.activation_in_category,
        "label": counts.label[ids],
        "images_in_category": counts.images_in_category,
    }


def pending_arrays(pending: Pending) -> dict[str, np.ndarray]:
    """A chunk's pending pixels as store arrays (values as float32, concepts as ids)."""
    return {
        "pending_above": pending.above,
        "pending_unit": pending.unit,
        "pending_value": key_floats(pending.key),
        "pending_pixels": pending.pixels,
        "pending_labelled": pending.labelled,
        "pending_category": pending.category,
        "pending_concept_entry": pending.concept_entry,
        "pending_concept": pending.concept,
        "pending_concept_count": pending.concept_count,
    }


def write_chunk(
    path: str, counts: Counts, pending: Pending, ids: np.ndarray, rows: np.ndarray, provenance: dict[str, Any]
) -> None:
    """Write one chunk's counts above the intervals, its pending pixels and its dataset rows."""
    write_group(
        path,
        public_counts(counts, ids) | pending_arrays(pending) | {"rows": rows},
        {"provenance": provenance, "images": counts.images, "pixels": counts.pixels, "values": pending.values},
    )


def read_pending(group) -> Pending:
    """A chunk store's pending pixels."""
    return Pending(
        above=group["pending_above"][:],
        values=int(group.attrs["values"]),
        unit=group["pending_unit"][:],
        key=float_keys(group["pending_value"][:]),
        pixels=group["pending_pixels"][:],
        labelled=group["pending_labelled"][:],
        category=group["pending_category"][:],
        concept_entry=group["pending_concept_entry"][:],
        concept=group["pending_concept"][:],
        concept_count=group["pending_concept_count"][:],
    )


def counts_above(group, ids: np.ndarray, size: int) -> Counts:
    """A chunk store's counts of the pixels above the last threshold intervals (id-indexed, length ``size``)."""
    inter = np.zeros((group["activation"].shape[0], size), np.int64)
    inter[:, ids] = group["intersection"][:]
    label = np.zeros(size, np.int64)
    label[ids] = group["label"][:]
    return Counts(
        intersection=inter,
        activation=group["activation"][:],
        activation_in_category=group["activation_in_category"][:],
        label=label,
        images_in_category=group["images_in_category"][:],
        images=int(group.attrs["images"]),
        pixels=int(group.attrs["pixels"]),
    )


def chunk_counts(group, thresholds: np.ndarray, ids: np.ndarray, size: int) -> Counts:
    """A chunk store's complete counts at the given thresholds (id-indexed concept axes of length ``size``)."""
    above = counts_above(group, ids, size)
    return above + read_pending(group).active(thresholds, size, above.pixels)


def write_layer(
    path: str,
    counts: Counts,
    iou: np.ndarray,
    thresholds: np.ndarray,
    ids: np.ndarray,
    categories: list[str],
    provenance: dict[str, Any],
) -> None:
    """Write a layer's final counts, IoU (id-indexed ``iou`` is cut to concepts.csv order) and thresholds."""
    write_group(
        path,
        public_counts(counts, ids) | {"iou": iou[:, ids].astype(np.float32), "thresholds": thresholds},
        {
            "provenance": provenance,
            "concept_ids": ids,
            "categories": categories,
            "images": counts.images,
            "pixels": counts.pixels,
        },
    )


def read_layer_iou(path: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """A layer's IoU, id-indexed (U, max id + 1) float64 with zeros for unused ids, its thresholds and provenance."""
    group = open_group(path)
    iou = np.zeros((group["iou"].shape[0], int(ids.max()) + 1))
    iou[:, ids] = group["iou"][:]
    return iou, group["thresholds"][:], dict(group.attrs["provenance"])


def read_layer_counts(path: str, ids: np.ndarray, size: int) -> Counts:
    """A layer's final counts (the same arrays as a chunk's counts above its intervals), id-indexed."""
    return counts_above(open_group(path), ids, size)
