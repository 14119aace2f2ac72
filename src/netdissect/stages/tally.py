"""Tally stage: per-chunk integer counts with pending values, the reduce that fixes thresholds and IoU, unit labels."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .. import tallystore
from ..iou import iou_matrix
from ..iou import label_units as best_labels
from ..progress import progress
from ..provenance import record
from ..quantile import threshold_in_interval
from ..stores import load_state, open_group, provenance, read_rows, require_same, write_json
from ..tables import concept_categories, concept_vocabulary, read_concepts, write_thresholds, write_units
from ..tally import Pending
from ..tally import tally_chunk as count_chunk
from . import StageError, read_batch

log = logging.getLogger("netdissect.tally")
BATCH_IMAGES = 64


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
        out[has] = read_rows(array, position[has])
    return out


def tally_chunk(job) -> None:
    """Count one chunk of one layer against the last threshold intervals; the values inside them stay pending.

    Every activation row counts towards the thresholds; only rows with a segmentation count towards IoU.
    """
    acts_group, seg_group = open_group(job.input.acts), open_group(job.input.segment)
    acts_prov, seg_prov = provenance(acts_group), provenance(seg_group)
    require_same({job.input.acts: acts_prov["inputs"], job.input.segment: seg_prov["inputs"]}, "dataset")
    bracket, _ = load_state(job.input.bracket)
    concepts = read_concepts(job.input.concepts)
    vocab = concept_vocabulary(concepts)
    rows, position = _labelled_rows(acts_group["rows"][:], seg_group["rows"][:], job.input.acts, job.input.segment)
    acts, labels, image_labels = acts_group["activations"], seg_group["labels"], seg_group["image_labels"]
    if acts.shape[1] != len(bracket["hi"]):
        raise StageError(f"{job.input.acts} has {acts.shape[1]} units but {job.input.bracket} {len(bracket['hi'])}")
    counts, pending = [], []
    batch = read_batch(job, BATCH_IMAGES)
    for start in progress(range(0, acts.shape[0], batch), what=job.input.acts, unit="batches", log=log.info):
        where = position[start : start + batch]
        batch_counts, batch_pending = count_chunk(
            acts[start : start + batch].astype(np.float32),
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
    tallystore.write_chunk(
        job.output.counts,
        total,
        pending,
        concepts["id"].to_numpy(),
        rows,
        record(
            "tally",
            {"label_size": list(labels.shape[-2:])},
            {**acts_prov["inputs"], "segmentation": seg_prov["inputs"]},
        ),
    )


def tally_reduce(job) -> None:
    """Fix every unit's threshold from the chunks' pending values, complete and sum the counts, compute IoU.

    Writes the thresholds table and the layer's tally store.
    """
    concepts = read_concepts(job.input.concepts)
    vocab, ids = concept_vocabulary(concepts), concepts["id"].to_numpy()
    groups = {p: open_group(p) for p in job.input.counts}
    origins = {p: provenance(g)["inputs"] for p, g in groups.items()}
    require_same(origins, "model")
    require_same(origins, "layer")
    _, meta = load_state(job.input.bracket)
    pending = Pending.concat([tallystore.read_pending(g) for g in groups.values()])
    if pending.values != meta["total"]:
        raise StageError(f"tally chunks cover {pending.values} values per unit but {job.input.bracket} {meta['total']}")
    try:
        thresholds = threshold_in_interval(pending.values_histogram(), meta["k"])
    except ValueError as error:
        raise StageError(f"internal error: {error} ({job.input.bracket})") from error
    counts = [tallystore.counts_above(g, ids, vocab.size) for g in groups.values()]
    total = sum(counts[1:], counts[0]) + pending.active(thresholds, vocab.size, counts[0].pixels)
    table = pd.DataFrame(
        {
            "unit": np.arange(len(thresholds)),
            "threshold": thresholds,
            "above": pending.values_above(thresholds),
            "total": meta["total"],
        }
    )
    write_thresholds(job.output.thresholds, table)
    iou = iou_matrix(total, vocab, job.params.union)
    first = next(iter(origins.values()))
    tallystore.write_layer(
        job.output.tally,
        total,
        iou,
        thresholds,
        ids,
        concept_categories(concepts),
        record(
            "tally",
            {"union": job.params.union, "quantile": job.params.quantile},
            {
                "model": first["model"],
                "layer": first["layer"],
                "chunks": sorted(o["dataset"] for o in origins.values()),
            },
        ),
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
    concepts = read_concepts(job.input.concepts)
    iou, thresholds, prov = tallystore.read_layer_iou(job.input.tally, concepts["id"].to_numpy())
    table = best_labels(iou, concepts, thresholds, job.params.iou_threshold)
    statistics = getattr(job.input, "statistics", None)
    if statistics:  # the label statistics' columns (README: Label statistics)
        table = table.merge(pd.read_csv(statistics), on="unit", how="left", validate="one_to_one")
    write_units(job.output.units, table)
    write_json(
        job.output.provenance,
        record(
            "label_units",
            {**job.params.config, "iou_threshold": job.params.iou_threshold},
            {**prov["inputs"], "weights": job.params.weights_digest, "dataset_index": job.params.dataset_digest},
        ),
    )
    log.info("%d of %d units are detectors", int(table["detector"].sum()), len(table))
