"""Training stages: the scene classifier to dissect, and the segmenter that labels the dissected images."""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..datasets import Record, load_image, load_label_planes
from ..plan import open_source
from ..provenance import file_digest
from ..stores import atomic_path, write_json
from . import StageError

log = logging.getLogger("netdissect.training")


def _split(source: dict, split: str) -> list[Record]:
    return open_source(source).records(split, None)


def _images(records: list[Record], resize) -> np.ndarray:
    return np.stack([load_image(r.image, resize) for r in records])


def _scene_targets(records: list[Record], scene_ids: list[int]) -> np.ndarray:
    """Class index (position in scene_ids) of every record's scene label."""
    index = {sid: i for i, sid in enumerate(scene_ids)}
    targets = []
    for r in records:
        scenes = [index[cid] for category, cid in r.image_labels if category == "scene" and cid in index]
        if not scenes:
            raise StageError(f"row {r.index} ({r.image}) has no scene label to train the classifier on")
        targets.append(scenes[0])
    return np.array(targets, np.int64)


def _schedule(job) -> dict:
    """The training loop settings a rule passes (epochs, batch size, learning rate, seed, threads, precision)."""
    p = job.params
    return {
        "epochs": p.epochs,
        "batch_size": p.batch_size,
        "lr": p.lr,
        "seed": p.seed,
        "threads": job.threads,
        "autocast": p.autocast,
        "log": log.info,
    }


def train_classifier(job) -> None:
    """Train the scene classifier on the train split; report validation accuracy on the val split."""
    from ..classifier import train_classifier as train

    p = job.params
    train_records, val_records = _split(p.source, "train"), _split(p.source, "val")
    model, metrics = train(
        _images(train_records, p.resize),
        _scene_targets(train_records, p.scene_ids),
        _images(val_records, p.resize),
        _scene_targets(val_records, p.scene_ids),
        num_classes=len(p.scene_ids),
        **_schedule(job),
    )
    with atomic_path(job.output.weights) as tmp:
        torch.save(model.state_dict(), tmp)
    write_json(
        job.output.metrics, {**metrics, "classes": p.scene_names, "weights_sha256": file_digest(job.output.weights)}
    )
    log.info("validation accuracy %.3f", metrics["val_accuracy"])


def train_segmenter(job) -> None:
    """Train the segmenter on the train split's ground-truth labels (one head per category)."""
    from ..segmenters import SegmenterVocabulary
    from ..segmenters import train_segmenter as train

    p = job.params
    records = _split(p.source, "train")
    vocab = SegmenterVocabulary(pixel=dict(p.pixel_vocabulary), image=dict(p.image_vocabulary))
    size = (p.image_size[0] // 2, p.image_size[1] // 2)
    pixel_targets = {c: np.zeros((len(records),) + size, np.uint16) for c in vocab.pixel}
    image_targets = {c: np.zeros(len(records), np.int64) for c in vocab.image}
    for i, record in enumerate(records):
        planes, _ = load_label_planes(record, size)
        for (category, _), plane in zip(record.pixel_labels, planes):
            if category in pixel_targets and not pixel_targets[category][i].any():
                pixel_targets[category][i] = plane
        for category, cid in record.image_labels:
            if category in image_targets:
                image_targets[category][i] = cid
    model, metrics = train(
        _images(records, p.resize),
        pixel_targets,
        image_targets,
        vocab,
        **_schedule(job),
    )
    _save(model, vocab, job.output.segmenter)
    write_json(job.output.metrics, metrics)


def _save(model, vocab, path: str) -> None:
    from ..segmenters import save_segnet

    with atomic_path(path) as tmp:
        save_segnet(model, vocab, tmp)
