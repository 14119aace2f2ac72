"""Tally stage: per-chunk integer counts, their reduction into the IoU matrix, and the unit labels."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..iou import iou_matrix
from ..iou import label_units as best_labels
from ..provenance import record
from ..stores import (
    open_group,
    provenance,
    require_same,
    write_csv,
    write_group,
    write_json,
)
from ..tally import Counts, Vocabulary
from ..tally import tally_chunk as count_chunk
from . import StageError

log = logging.getLogger("netdissect.tally")
BATCH_IMAGES = 64
COUNT_ARRAYS = ("intersection", "activation", "activation_in_category", "label", "images_in_category")


def read_concepts(path: str) -> tuple[pd.DataFrame, list[str], Vocabulary]:
    """The concept table, its categories (in order of appearance) and the id-indexed vocabulary."""
    concepts = pd.read_csv(path, keep_default_na=False)
    categories = list(pd.unique(concepts["category"]))
    category = np.full(int(concepts["id"].max()) + 1, -1, np.int64)
    category[concepts["id"].to_numpy()] = [categories.index(c) for c in concepts["category"]]
    return concepts, categories, Vocabulary(category, len(categories))


def _aligned_rows(acts_rows: np.ndarray, seg_rows: np.ndarray, acts_path: str, seg_path: str):
    """Positions of the rows both stores hold (images skipped by either stage drop out)."""
    common, in_acts, in_seg = np.intersect1d(acts_rows, seg_rows, return_indices=True)
    if len(common) == 0:
        raise StageError(f"{acts_path} and {seg_path} share no images")
    return common, in_acts, in_seg


def tally_chunk(job) -> None:
    """Count intersections, activations and labels of one chunk for one layer."""
    acts_group, seg_group = open_group(job.input.acts), open_group(job.input.segment)
    acts_prov, seg_prov = provenance(acts_group), provenance(seg_group)
    require_same({job.input.acts: acts_prov["inputs"], job.input.segment: seg_prov["inputs"]}, "dataset")
    thresholds = pd.read_csv(job.input.thresholds)["threshold"].to_numpy(np.float32)
    concepts, _, vocab = read_concepts(job.input.concepts)
    rows, in_acts, in_seg = _aligned_rows(
        acts_group["rows"][:], seg_group["rows"][:], job.input.acts, job.input.segment
    )
    acts, labels, image_labels = acts_group["activations"], seg_group["labels"], seg_group["image_labels"]
    if acts.shape[1] != len(thresholds):
        raise StageError(f"{job.input.acts} has {acts.shape[1]} units but {job.input.thresholds} {len(thresholds)}")
    total = None
    for start in range(0, len(rows), BATCH_IMAGES):
        a, s = in_acts[start : start + BATCH_IMAGES], in_seg[start : start + BATCH_IMAGES]
        counts = count_chunk(
            acts.get_orthogonal_selection((a,)).astype(np.float32),
            labels.get_orthogonal_selection((s,)),
            image_labels.get_orthogonal_selection((s,)),
            thresholds,
            vocab,
        )
        total = counts if total is None else total + counts
    ids = concepts["id"].to_numpy()
    write_group(
        job.output.counts,
        _public_counts(total, ids) | {"rows": rows},
        {
            "provenance": record(
                "tally",
                {"label_size": list(labels.shape[-2:])},
                {**acts_prov["inputs"], "segmentation": seg_prov["inputs"]},
            ),
            "images": total.images,
            "pixels": total.pixels,
        },
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


def _read_counts(path: str, ids: np.ndarray, size: int) -> Counts:
    group = open_group(path)
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
    """Sum the chunks' counts and compute the IoU matrix."""
    concepts, categories, vocab = read_concepts(job.input.concepts)
    ids = concepts["id"].to_numpy()
    origins = {p: provenance(open_group(p))["inputs"] for p in job.input.counts}
    require_same(origins, "model")
    require_same(origins, "layer")
    total = None
    for path in job.input.counts:
        counts = _read_counts(path, ids, vocab.size)
        total = counts if total is None else total + counts
    iou = iou_matrix(total, vocab, job.params.union)
    thresholds = pd.read_csv(job.input.thresholds)["threshold"].to_numpy(np.float32)
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
    log.info("%s: IoU of %d units x %d concepts over %d images", first["layer"], iou.shape[0], len(ids), total.images)


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
