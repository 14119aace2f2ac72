"""Segment stage: the concept table, per-chunk label stores from the chosen segmenter, and segmenter quality."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..datasets import DatasetError, load_label_planes
from ..plan import chunk_records, open_source
from ..progress import progress
from ..provenance import record as provenance_record
from ..stores import open_group, write_group, write_json
from ..tables import read_concepts, write_concepts
from . import StageError
from .images import Skipped, image_batches

log = logging.getLogger("netdissect.segment")
CHUNK_ROWS = 64  # images per zarr chunk of label stores


def concept_table(spec: dict, source: dict) -> pd.DataFrame:
    """The concepts the segmenter can emit: id, name, category (ids match the label values in the stores)."""
    if spec["kind"] in ("dataset", "trained"):
        table = open_source(source).concepts()
        if table.empty:
            raise StageError(f"dataset {source['root']} has no concepts (label.csv) to dissect with")
        return table[["id", "name", "category"]]
    if spec["kind"] == "torchvision":
        from ..segmenters import VOC_CLASSES

        names = list(VOC_CLASSES[1:])
        return pd.DataFrame({"id": range(1, len(names) + 1), "name": names, "category": "object"})
    table = pd.read_csv(spec["concepts"], keep_default_na=False)
    missing = {"name", "category"} - set(table.columns)
    if missing:
        raise StageError(f"segmenter.concepts file {spec['concepts']} lacks columns {sorted(missing)}")
    return pd.DataFrame({"id": range(1, len(table) + 1), "name": table["name"], "category": table["category"]})


def concepts(job) -> None:
    """Write concepts.csv."""
    table = concept_table(job.params.segmenter, job.params.source)
    if table["name"].duplicated().any():
        dupes = sorted(table.loc[table["name"].duplicated(), "name"])[:10]
        raise StageError(f"concept names must be unique; repeated: {dupes}")
    write_concepts(job.output.concepts, table)


def _pad_stack(arrays: list[np.ndarray], axis_len: int, shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros((len(arrays), axis_len) + shape, np.uint16)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
    return out


def _dataset_labels(records, label_size, skip: bool, skipped: Skipped):
    planes, image_ids, kept = [], [], []
    for record in progress(records, what="labels", unit="images", log=log.info):
        try:
            p, ids = load_label_planes(record, label_size)
        except DatasetError as error:
            if not skip:
                raise StageError(f"{error} (set dataset.skip_bad_images: true to skip bad images)") from error
            skipped.add(record, str(error))
            continue
        planes.append(p)
        image_ids.append(ids)
        kept.append(record)
    return planes, image_ids, kept


def load_segmenter(job):
    """The job's model segmenter and a ``predict(images) -> (planes, image_ids)`` for uint8 (N, H, W, 3) batches."""
    import torch

    from ..segmenters import build_torchvision_segmenter, load_segnet, predict_labels, predict_torchvision

    p = job.params
    torch.set_num_threads(max(1, job.threads))
    kind = p.segmenter["kind"]
    if kind == "trained":
        model, vocab = load_segnet(job.input.segmenter)
        return lambda images: predict_labels(model, images, vocab)
    if kind == "torchvision":
        model = build_torchvision_segmenter(p.segmenter["name"], p.segmenter["weights"], p.allow_pickle)
    else:
        model = _factory_segmenter(p.segmenter, p.allow_pickle)
    return lambda images: (predict_torchvision(model, images, p.label_size), np.zeros((len(images), 0), np.int64))


def _model_labels(job, records, skipped: Skipped):
    """Labels predicted by a model segmenter, plus ground truth when the dataset has it (for quality)."""
    p = job.params
    predict = load_segmenter(job)
    planes, image_ids, kept = [], [], []
    batches = image_batches(records, 32, p.image_size, p.resize, p.skip_bad_images, skipped)
    for images, batch in progress(
        batches, total=-(-len(records) // 32), what=f"segmenting rows {p.start}-{p.stop}", unit="batches", log=log.info
    ):
        if not batch:
            continue
        pl, ids = predict(images)
        planes.extend(pl)
        image_ids.extend(ids)
        kept.extend(batch)
    return planes, image_ids, kept


def _factory_segmenter(spec: dict, allow_pickle: bool):
    from ..models import build_model
    from ..modelspec import ModelSpec

    return build_model(
        ModelSpec(
            factory=spec["factory"],
            weights=spec["weights"],
            random_init=spec["weights"] is None,
            allow_pickle=allow_pickle,
        )
    )


def _quality_counts(pred: np.ndarray, truth_records, label_size, categories: list[str], size: int) -> dict:
    """Per-category correct/labelled pixels and per-concept intersection and union of predicted vs true labels."""
    correct = np.zeros(len(categories), np.int64)
    labelled = np.zeros(len(categories), np.int64)
    inter = np.zeros(size, np.int64)
    union = np.zeros(size, np.int64)
    for i, record in enumerate(truth_records):
        truth_planes, _ = load_label_planes(record, label_size)
        by_category = {}
        for (category, _), plane in zip(record.pixel_labels, truth_planes):
            by_category.setdefault(category, plane)
        for c, category in enumerate(categories):
            truth = by_category.get(category, np.zeros(label_size, np.uint16))
            guess = pred[i, c]
            mask = truth > 0
            correct[c] += int((guess[mask] == truth[mask]).sum())
            labelled[c] += int(mask.sum())
            both = np.bincount(truth[(guess == truth) & mask], minlength=size)[:size]
            inter += both
            union += (
                np.bincount(truth.ravel(), minlength=size)[:size]
                + np.bincount(guess.ravel(), minlength=size)[:size]
                - both
            )
    union[0] = inter[0] = 0
    return {"correct": correct, "labelled": labelled, "intersection": inter, "union": union}


def segment_chunk(job) -> None:
    """Label one chunk's images into a zarr store (label planes, image-level labels, rows)."""
    p = job.params
    records = chunk_records(p.source, p.start, p.stop)
    skipped = Skipped()
    kind = p.segmenter["kind"]
    if kind == "dataset":
        planes, image_ids, kept = _dataset_labels(records, p.label_size, p.skip_bad_images, skipped)
    else:
        planes, image_ids, kept = _model_labels(job, records, skipped)
    if not kept:
        raise StageError(f"no readable images in rows {p.start}-{p.stop} of {p.source['root']}")
    labels = stack_planes(planes, p.label_size)
    quality = None
    if kind == "trained":
        concepts = read_concepts(job.input.concepts)
        size = int(concepts["id"].max()) + 1
        quality = _quality_counts(labels, kept, p.label_size, p.pixel_categories, size)
    write_labels(job, labels, image_ids, [r.index for r in kept], quality, skipped.entries)
    log.info("labelled %d images (%d skipped) with the %s segmenter", len(kept), len(skipped.entries), kind)


def stack_planes(planes: list[np.ndarray], label_size) -> np.ndarray:
    """Images' label planes (each (P_i, h, w)) as one uint16 array (N, max P_i, h, w), missing planes 0."""
    return _pad_stack(planes, max(1, max(len(x) for x in planes)), tuple(label_size))


def write_labels(job, labels: np.ndarray, image_ids, rows: list[int], quality: dict | None, skipped: list) -> None:
    """Write a chunk's label store: label planes, image-level labels, rows, and quality counts when given."""
    p = job.params
    arrays = {
        "labels": labels,
        "image_labels": _pad_stack([np.asarray(x) for x in image_ids], max(1, max(len(x) for x in image_ids)), ()),
        "rows": np.array(rows, np.int64),
    }
    arrays |= {f"quality_{k}": v for k, v in (quality or {}).items()}
    settings = {"segmenter": p.segmenter, "label_size": p.label_size}
    inputs = {"dataset": p.digest, "segmenter": p.segmenter_digest}
    attrs = {"provenance": provenance_record("segment", settings, inputs), "skipped": skipped}
    write_group(job.output.store, arrays, attrs, chunk_rows=CHUNK_ROWS)


def segmenter_quality(job) -> None:
    """Pixel accuracy and mean IoU of the trained segmenter against ground truth, over the dissected images."""
    totals: dict[str, np.ndarray] = {}
    for path in job.input.stores:
        group = open_group(path)
        for key in ("correct", "labelled", "intersection", "union"):
            totals[key] = totals.get(key, 0) + group[f"quality_{key}"][:]
    concepts = read_concepts(job.input.concepts)
    per_category = {}
    for c, category in enumerate(job.params.pixel_categories):
        ids = concepts.loc[concepts["category"] == category, "id"].to_numpy()
        ids = ids[totals["union"][ids] > 0]
        per_category[category] = {
            "pixel_accuracy": float(totals["correct"][c] / max(totals["labelled"][c], 1)),
            "mean_iou": float(np.mean(totals["intersection"][ids] / totals["union"][ids])) if len(ids) else 0.0,
        }
    write_json(
        job.output.quality,
        {
            "pixel_accuracy": float(totals["correct"].sum() / max(totals["labelled"].sum(), 1)),
            "mean_iou": float(np.mean([v["mean_iou"] for v in per_category.values()])),
            "categories": per_category,
            "images": int(sum(open_group(p)["rows"].shape[0] for p in job.input.stores)),
        },
    )
