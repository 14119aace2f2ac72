"""Tally stage: per-chunk integer counts with pending values, the reduce that fixes thresholds and IoU, unit labels."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..iou import iou_matrix
from ..iou import label_units as best_labels
from ..provenance import record
from ..quantile import float_keys, key_floats, threshold_in_interval
from ..stores import (
    load_state,
    open_group,
    provenance,
    require_same,
    write_csv,
    write_group,
    write_json,
)
from ..tally import Counts, Pending, Vocabulary
from ..tally import tally_chunk as count_chunk
from . import StageError

log = logging.getLogger("netdissect.tally")
BATCH_IMAGES = 64


def read_concepts(path: str) -> tuple[pd.DataFrame, list[str], Vocabulary]:
    """The concept table, its categories (in order of appearance) and the id-indexed vocabulary."""
    concepts = pd.read_csv(path, keep_default_na=False)
    categories = list(pd.unique(concepts["category"]))
    category = np.full(int(concepts["id"].max()) + 1, -1, np.int64)
    category[concepts["id"].to_numpy()] = [categories.index(c) for c in concepts["category"]]
    return concepts, categories, Vocabulary(category, len(categories))


def _labelled_rows(acts_rows: np.ndarray, seg_rows: np.ndarray, acts_path: str, seg_path: str):
    """The rows both stores hold, and for every activation row its position in the segmentation (-1: none)."""
    common, in_acts, in_seg = np.intersect1d(acts_rows, seg_rows, return_indices=True)
    if len(common) == 0:
        raise StageError(f"{acts_path} and {seg_path} share no images")
    position = np.full(len(acts_rows), -1, np.int64)
    position[in_acts] = in_seg
    return common, position


def _labels(array, position: np.ndarray) -> np.ndarray:
    """Rows of a segmentation array at the given positions; zeros (no concept) where the position is -1."""
    out = np.zeros((len(position), *array.shape[1:]), array.dtype)
    has = position >= 0
    if has.any():
        out[has] = array.get_orthogonal_selection((position[has],))
    return out


def tally_chunk(job) -> None:
    """Count one chunk of one layer against the last threshold intervals; the values inside them stay pending.

    Every activation row counts towards the thresholds; only rows with a segmentation count towards IoU.
    """
    acts_group, seg_group = open_group(job.input.acts), open_group(job.input.segment)
    acts_prov, seg_prov = provenance(acts_group), provenance(seg_group)
    require_same({job.input.acts: acts_prov["inputs"], job.input.segment: seg_prov["inputs"]}, "dataset")
    bracket, _ = load_state(job.input.bracket)
    concepts, _, vocab = read_concepts(job.input.concepts)
    rows, position = _labelled_rows(acts_group["rows"][:], seg_group["rows"][:], job.input.acts, job.input.segment)
    acts, labels, image_labels = acts_group["activations"], seg_group["labels"], seg_group["image_labels"]
    if acts.shape[1] != len(bracket["hi"]):
        raise StageError(f"{job.input.acts} has {acts.shape[1]} units but {job.input.bracket} {len(bracket['hi'])}")
    counts, pending = [], []
    for start in range(0, acts.shape[0], BATCH_IMAGES):
        where = position[start : start + BATCH_IMAGES]
        batch_counts, batch_pending = count_chunk(
            acts[start : start + BATCH_IMAGES].astype(np.float32),
            _labels(labels, where),
            _labels(image_labels, where),
            bracket["lo"],
            bracket["hi"],
            vocab,
            labelled=where >= 0,
        )
        counts.append(batch_counts)
        pending.append(batch_pending)
    total, pending = sum(counts[1:], counts[0]), Pending.concat(pending)
    ids = concepts["id"].to_numpy()
    write_group(
        job.output.counts,
        _public_counts(total, ids) | _pending_arrays(pending) | {"rows": rows},
        {
            "provenance": record(
                "tally",
                {"label_size": list(labels.shape[-2:])},
                {**acts_prov["inputs"], "segmentation": seg_prov["inputs"]},
            ),
            "images": total.images,
            "pixels": total.pixels,
            "values": pending.values,
        },
    )


def _pending_arrays(pending: Pending) -> dict[str, np.ndarray]:
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


def _public_counts(counts: Counts, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Counts with concept axes in concepts.csv order (position j = the j-th concept)."""
    return {
        "intersection": counts.intersection[:, ids],
        "activation": counts.activation,
        "activation_in_category": counts.activation_in_category,
        "label": counts.label[ids],
        "images_in_category": counts.images_in_category,
    }


def chunk_counts(group, thresholds: np.ndarray, ids: np.ndarray, size: int) -> Counts:
    """A chunk store's complete counts at the given thresholds (id-indexed concept axes of length ``size``)."""
    above = _counts_above(group, ids, size)
    return above + read_pending(group).active(thresholds, size, above.pixels)


def _counts_above(group, ids: np.ndarray, size: int) -> Counts:
    """A chunk store's counts of the pixels above the last threshold intervals."""
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


def tally_reduce(job) -> None:
    """Fix every unit's threshold from the chunks' pending values, complete and sum the counts, compute IoU.

    Writes the thresholds table and the layer's tally store.
    """
    concepts, categories, vocab = read_concepts(job.input.concepts)
    ids = concepts["id"].to_numpy()
    groups = {p: open_group(p) for p in job.input.counts}
    origins = {p: provenance(g)["inputs"] for p, g in groups.items()}
    require_same(origins, "model")
    require_same(origins, "layer")
    _, meta = load_state(job.input.bracket)
    pending = Pending.concat([read_pending(g) for g in groups.values()])
    if pending.values != meta["total"]:
        raise StageError(f"tally chunks cover {pending.values} values per unit but {job.input.bracket} {meta['total']}")
    try:
        thresholds = threshold_in_interval(pending.values_histogram(), meta["k"])
    except ValueError as error:
        raise StageError(f"internal error: {error} ({job.input.bracket})") from error
    counts = [_counts_above(g, ids, vocab.size) for g in groups.values()]
    total = sum(counts[1:], counts[0]) + pending.active(thresholds, vocab.size, counts[0].pixels)
    table = pd.DataFrame(
        {
            "unit": np.arange(len(thresholds)),
            "threshold": thresholds,
            "above": pending.values_above(thresholds),
            "total": meta["total"],
        }
    )
    write_csv(job.output.thresholds, table)
    iou = iou_matrix(total, vocab, job.params.union)
    first = next(iter(origins.values()))
    write_group(
        job.output.tally,
        _public_counts(total, ids) | {"iou": iou[:, ids].astype(np.float32), "thresholds": thresholds},
        {
            "provenance": record(
                "tally",
                {"union": job.params.union, "quantile": job.params.quantile},
                {
                    "model": first["model"],
                    "layer": first["layer"],
                    "chunks": sorted(o["dataset"] for o in origins.values()),
                },
            ),
            "concept_ids": ids,
            "categories": categories,
            "images": total.images,
            "pixels": total.pixels,
        },
    )
    log.info(
        "%s: thresholds at q=%s (k=%d of %d values); IoU of %d units x %d concepts over %d images",
        first["layer"],
        meta["quantile"],
        meta["k"],
        meta["total"],
        iou.shape[0],
        len(ids),
        total.images,
    )


def label_units(job) -> None:
    """Label every unit with its best concept overall and per category; write units.csv."""
    group = open_group(job.input.tally)
    concepts = pd.read_csv(job.input.concepts, keep_default_na=False)
    ids = concepts["id"].to_numpy()
    iou = np.zeros((group["iou"].shape[0], int(ids.max()) + 1))
    iou[:, ids] = group["iou"][:]
    table = best_labels(iou, concepts, group["thresholds"][:], job.params.iou_threshold)
    write_csv(job.output.units, table)
    prov = provenance(group)
    write_json(
        job.output.provenance,
        record(
            "label_units",
            {**job.params.config, "iou_threshold": job.params.iou_threshold},
            {**prov["inputs"], "weights": job.params.weights_digest, "dataset_index": job.params.dataset_digest},
        ),
    )
    log.info("%d of %d units are detectors", int(table["detector"].sum()), len(table))
