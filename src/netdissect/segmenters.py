"""Segmenters: models that turn images into concept label planes.

Two kinds: :class:`SegNet`, a small encoder-decoder trained here on a dataset's own labels (one pixel head
per pixel category, one image head per image-level category), and torchvision's semantic segmentation
models loaded from a weights file (Pascal VOC classes). Labels are global concept ids, 0 meaning none.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from .architectures import SegNet
from .config import TORCHVISION_SEGMENTERS
from .models import ModelError, apply_state_dict, preprocess, read_state_dict
from .training import Schedule, fit, torch_threads

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
_SEGNET_FORMAT = "netdissect-segnet-1"


@dataclass(frozen=True)
class SegmenterVocabulary:
    """Concepts a segmenter predicts, per category.

    Attributes:
        pixel: pixel category -> concept ids of its head's classes 1..K (class 0 = none).
        image: image-level category -> concept ids of its head's classes 1..K (class 0 = none).
    """

    pixel: dict[str, list[int]]
    image: dict[str, list[int]]


def _head_sizes(vocab: SegmenterVocabulary) -> tuple[dict[str, int], dict[str, int]]:
    """Classes (including none) of every pixel head and every image head of a vocabulary."""
    return {c: len(ids) + 1 for c, ids in vocab.pixel.items()}, {c: len(ids) + 1 for c, ids in vocab.image.items()}


def _class_lookup(ids: list[int], category: str) -> np.ndarray:
    """Table mapping concept id -> class index (0 for none; -1 for ids outside the category)."""
    if any(i <= 0 for i in ids) or len(set(ids)) != len(ids):
        raise ValueError(f"segmenter vocabulary '{category}': concept ids must be distinct and positive, got {ids}")
    table = np.full(max(ids, default=0) + 1, -1, np.int64)
    table[0] = 0
    table[ids] = np.arange(1, len(ids) + 1)
    return table


def _to_classes(targets: np.ndarray, ids: list[int], category: str) -> torch.Tensor:
    """Concept-id targets -> class-index tensor of the category's head."""
    table = _class_lookup(ids, category)
    targets = np.asarray(targets).astype(np.int64)
    outside = (targets < 0) | (targets >= len(table))
    classes = table[np.where(outside, 0, targets)]
    bad = np.unique(targets[outside | (classes < 0)])
    if len(bad):
        raise ValueError(f"targets of '{category}' hold concept ids not in its vocabulary: {bad[:10].tolist()}")
    return torch.from_numpy(classes)


def _check_vocab(model: SegNet, vocab: SegmenterVocabulary) -> None:
    """Raise when the model's heads do not match the vocabulary."""
    expected = _head_sizes(vocab)
    if expected != (model.pixel_classes, model.image_classes):
        raise ValueError(
            f"segmenter heads {model.pixel_classes} / {model.image_classes} do not match the vocabulary "
            f"(classes incl. none: {expected[0]} / {expected[1]})"
        )


def train_segmenter(
    images: np.ndarray,
    pixel_targets: dict[str, np.ndarray],
    image_targets: dict[str, np.ndarray],
    vocab: SegmenterVocabulary,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    threads: int = 2,
    autocast: str | None = None,
    log: Callable[[str], object] = print,
) -> tuple[SegNet, dict]:
    """Train a SegNet deterministically (summed cross-entropy of all heads, AdamW, one-cycle, random flips).

    Args:
        images: uint8 (N, H, W, 3).
        pixel_targets: pixel category -> uint16 (N, H/2, W/2) concept ids (0 = none).
        image_targets: image-level category -> int64 (N,) concept ids (0 = none).
        vocab: concepts of every head; targets must use only these ids.
        epochs: passes over the images.
        batch_size: images per step.
        lr: peak learning rate.
        seed: seed of initialisation, shuffles and flips (same seed and threads: same weights).
        threads: torch CPU threads while training.
        autocast: None (float32), or "bfloat16" for the forward passes of training.
        log: receives one line per epoch, and progress lines.

    Returns:
        The model in eval mode, and metrics: per-head training ``pixel_accuracy`` (over labelled pixels) and
        ``mean_iou``, per-head training ``image_accuracy``, final ``loss``, ``epochs``, ``images``, ``seconds``.
    """
    pixel = {c: _to_classes(pixel_targets[c], ids, c) for c, ids in vocab.pixel.items()}
    image = {c: _to_classes(image_targets[c], ids, c) for c, ids in vocab.image.items()}
    n = len(images)
    x_all = preprocess(images)

    def build() -> SegNet:
        model = SegNet(*_head_sizes(vocab))
        out_size = model.output_size(*x_all.shape[-2:])
        for c, t in pixel.items():
            if tuple(t.shape) != (n, *out_size):
                raise ValueError(f"pixel targets of '{c}' have shape {tuple(t.shape)}, expected {(n, *out_size)}")
        return model

    def batch_loss(model: nn.Module, index: torch.Tensor, flip: torch.Tensor | None):
        x = torch.where(flip, x_all[index].flip(3), x_all[index])
        pixel_logits, image_logits = model(x.contiguous(memory_format=torch.channels_last))
        loss = sum(
            F.cross_entropy(pixel_logits[c], torch.where(flip[:, 0], t[index].flip(2), t[index]))
            for c, t in pixel.items()
        ) + sum(F.cross_entropy(image_logits[c], t[index]) for c, t in image.items())
        return loss, {}

    schedule = Schedule(epochs, batch_size, lr, seed, threads, 1e-4, autocast)
    model, trained = fit(build, n, batch_loss, schedule, log=log)
    with torch_threads(threads):
        planes, image_ids = predict_labels(model, images, vocab)
    metrics = {
        "pixel_accuracy": {},
        "mean_iou": {},
        "image_accuracy": {c: float(np.mean(image_ids[:, j] == image_targets[c])) for j, c in enumerate(vocab.image)},
        "loss": trained["loss"],
        "epochs": epochs,
        "images": n,
        "seconds": trained["seconds"],
    }
    for i, (c, ids) in enumerate(vocab.pixel.items()):
        scores = segmentation_scores(planes[:, i], pixel_targets[c], ids)
        metrics["pixel_accuracy"][c] = scores["pixel_accuracy"]
        metrics["mean_iou"][c] = scores["mean_iou"]
    log(f"training pixel accuracy {metrics['pixel_accuracy']}, image accuracy {metrics['image_accuracy']}")
    return model, metrics


@torch.inference_mode()
def predict_labels(
    model: SegNet, images: np.ndarray, vocab: SegmenterVocabulary, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Label images with a trained SegNet.

    Args:
        model: the segmenter.
        images: uint8 (N, H, W, 3).
        vocab: the vocabulary the model was trained with.
        batch_size: images per forward pass.

    Returns:
        (planes uint16 (N, P, h, w): one plane of concept ids per pixel category in vocabulary order, 0 = none;
        image_ids int64 (N, Qi): one concept id per image-level category, 0 = none).
    """
    _check_vocab(model, vocab)
    model.eval()
    pixel_ids = [np.array([0, *ids], np.uint16) for ids in vocab.pixel.values()]
    image_ids = [np.array([0, *ids], np.int64) for ids in vocab.image.values()]
    n = len(images)
    planes = np.zeros((n, len(pixel_ids), *model.output_size(*images.shape[1:3])), np.uint16)
    labels = np.zeros((n, len(image_ids)), np.int64)
    for begin in range(0, n, batch_size):
        batch = slice(begin, begin + batch_size)
        pixel_logits, image_logits = model(preprocess(images[batch]).contiguous(memory_format=torch.channels_last))
        for i, (c, table) in enumerate(zip(vocab.pixel, pixel_ids)):
            planes[batch, i] = table[pixel_logits[c].argmax(1).numpy()]
        for j, (c, table) in enumerate(zip(vocab.image, image_ids)):
            labels[batch, j] = table[image_logits[c].argmax(1).numpy()]
    return planes, labels


def save_segnet(model: SegNet, vocab: SegmenterVocabulary, path: str | Path) -> None:
    """Save a SegNet with its vocabulary in one file that loads with ``weights_only=True``.

    Args:
        model: the segmenter.
        vocab: its vocabulary.
        path: output file.
    """
    _check_vocab(model, vocab)
    torch.save(
        {
            "format": _SEGNET_FORMAT,
            "arch": model.arch,
            "vocab": {
                "pixel": {c: [int(i) for i in ids] for c, ids in vocab.pixel.items()},
                "image": {c: [int(i) for i in ids] for c, ids in vocab.image.items()},
            },
            "state_dict": model.state_dict(),
        },
        path,
    )


def load_segnet(path: str | Path) -> tuple[SegNet, SegmenterVocabulary]:
    """Load a file written by :func:`save_segnet` (with ``weights_only=True``).

    Args:
        path: the file.

    Returns:
        The segmenter in eval mode and its vocabulary.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"segmenter file not found: {path}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"segmenter file {path} could not be read: {exc!r}") from exc
    if not isinstance(saved, dict) or saved.get("format") != _SEGNET_FORMAT:
        raise ModelError(f"segmenter file {path} was not written by save_segnet ({_SEGNET_FORMAT})")
    model = SegNet(**saved["arch"])
    apply_state_dict(model, saved["state_dict"], path)
    vocab = SegmenterVocabulary(pixel=dict(saved["vocab"]["pixel"]), image=dict(saved["vocab"]["image"]))
    _check_vocab(model, vocab)
    return model.eval(), vocab


def segmentation_scores(pred: np.ndarray, truth: np.ndarray, ids: list[int]) -> dict:
    """Pixel accuracy and mean IoU of predicted against true concept-id maps.

    Args:
        pred: uint16 predicted ids (0 = none).
        truth: uint16 true ids, same shape.
        ids: concepts to score.

    Returns:
        ``pixel_accuracy``: fraction of pixels with truth != 0 predicted exactly (None if there are none);
        ``iou``: id -> |pred = id and truth = id| / |pred = id or truth = id| over all pixels, for the given ids
        that appear in truth or pred; ``mean_iou``: their mean (None if none appear).
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth shape {truth.shape}")
    labelled = truth != 0
    accuracy = float(np.mean(pred[labelled] == truth[labelled])) if labelled.any() else None
    size = int(max(pred.max(initial=0), truth.max(initial=0), max(ids, default=0))) + 1
    p = pred.ravel().astype(np.int64)
    t = truth.ravel().astype(np.int64)
    inter = np.bincount(t[p == t], minlength=size)
    union = np.bincount(p, minlength=size) + np.bincount(t, minlength=size) - inter
    iou = {int(i): float(inter[i] / union[i]) for i in ids if i > 0 and union[i] > 0}
    return {"pixel_accuracy": accuracy, "mean_iou": float(np.mean(list(iou.values()))) if iou else None, "iou": iou}


# Final classifier layer of each torchvision segmenter, whose output count is the number of classes.
_CLASS_LAYER = {name: "classifier.4.weight" for name in TORCHVISION_SEGMENTERS} | {
    "lraspp_mobilenet_v3_large": "classifier.high_classifier.weight"
}


def build_torchvision_segmenter(name: str, weights: str, allow_pickle: bool = False) -> nn.Module:
    """Build a torchvision segmentation model from a local weights file (never downloads).

    The auxiliary classifier is built when the state dict has ``aux_classifier.`` keys, and the number of
    classes is read from the final classifier layer (21 Pascal VOC classes for torchvision's own weights).

    Args:
        name: one of :data:`TORCHVISION_SEGMENTERS`.
        weights: weights file.
        allow_pickle: allow full pickles (only for trusted files).

    Returns:
        The model in eval mode.
    """
    if name not in TORCHVISION_SEGMENTERS:
        close = difflib.get_close_matches(name, TORCHVISION_SEGMENTERS, n=3, cutoff=0.4)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ModelError(
            f"segmenter.name: unknown torchvision segmenter '{name}'{hint}; valid: {', '.join(TORCHVISION_SEGMENTERS)}"
        )
    if weights is None:
        raise ModelError(f"segmenter.weights: torchvision segmenter '{name}' needs a weights file")
    state = read_state_dict(weights, allow_pickle)
    kwargs: dict = {"weights": None, "weights_backbone": None}
    if any(k.startswith("aux_classifier.") for k in state):
        if name.startswith("lraspp"):
            raise ModelError(f"weights file {weights} has aux_classifier keys, but {name} has no auxiliary classifier")
        kwargs["aux_loss"] = True
    classes = state.get(_CLASS_LAYER[name])
    kwargs["num_classes"] = int(classes.shape[0]) if classes is not None else len(VOC_CLASSES)
    model = torchvision.models.get_model(name, **kwargs)
    apply_state_dict(model, state, weights)
    return model.eval()


@torch.inference_mode()
def predict_torchvision(model: nn.Module, images: np.ndarray, size: tuple[int, int], batch_size: int = 8) -> np.ndarray:
    """Label images with a torchvision segmentation model (or a user's model with the same output).

    Args:
        model: model returning (N, K+1, h', w') logits, or a dict with them under ``'out'``.
        images: uint8 (N, H, W, 3), ImageNet-normalised before the forward pass.
        size: (h, w) of the label planes; logits are resized bilinearly to it before the argmax.
        batch_size: images per forward pass.

    Returns:
        uint16 (N, 1, h, w): class c becomes concept id c (0 = background = none).
    """
    model.eval()
    planes = [np.zeros((0, 1, *size), np.uint16)]
    with torch.inference_mode():
        for begin in range(0, len(images), batch_size):
            logits = model(preprocess(images[begin : begin + batch_size]))
            logits = logits["out"] if isinstance(logits, dict) else logits
            logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
            planes.append(logits.argmax(1, keepdim=True).numpy().astype(np.uint16))
    return np.concatenate(planes)
