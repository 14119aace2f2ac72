"""Training the scene classifier (``scene_cnn``) that the default run dissects, with the shared training loop."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .architectures import scene_cnn
from .models import preprocess
from .training import Schedule, fit, torch_threads


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """Fraction of correctly classified samples (channels-last batches: faster convolutions on CPU)."""
    model.eval()
    batches = zip(x.split(batch_size), y.split(batch_size))
    correct = sum(
        int((model(xb.contiguous(memory_format=torch.channels_last)).argmax(1) == yb).sum()) for xb, yb in batches
    )
    return correct / len(y)


def _labels(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Check class labels and convert them to a long tensor."""
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {int(y.min())}..{int(y.max())}")
    return y


def train_classifier(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    num_classes: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    threads: int = 2,
    augment: bool = True,
    autocast: str | None = None,
    log: Callable[[str], object] = print,
) -> tuple[nn.Module, dict]:
    """Train ``scene_cnn`` deterministically (AdamW, one-cycle schedule, optional horizontal flips).

    Args:
        train_images: uint8 (N, H, W, 3).
        train_labels: int (N,) classes 0..num_classes-1.
        val_images: uint8 (M, H, W, 3).
        val_labels: int (M,).
        num_classes: number of classes.
        epochs: passes over the training set.
        batch_size: images per step.
        lr: peak learning rate.
        seed: seed of initialisation, shuffles and augmentation (same seed and threads: same weights).
        threads: torch CPU threads while training.
        augment: flip images horizontally at random.
        autocast: None (float32), or "bfloat16" for the forward passes of training.
        log: receives one line per epoch, and progress lines.

    Returns:
        The model in eval mode, and metrics ``train_accuracy``, ``val_accuracy`` (None without validation
        images), ``epochs``, ``images``, ``seconds``.
    """
    y_train, y_val = _labels(train_labels, num_classes), _labels(val_labels, num_classes)
    x_train = preprocess(train_images)

    def batch_loss(model: nn.Module, index: torch.Tensor, flip: torch.Tensor | None):
        x, y = x_train[index], y_train[index]
        if flip is not None:
            x = torch.where(flip, x.flip(3), x)
        logits = model(x.contiguous(memory_format=torch.channels_last))
        return F.cross_entropy(logits, y), {"train accuracy": int((logits.argmax(1) == y).sum())}

    schedule = Schedule(epochs, batch_size, lr, seed, threads, weight_decay=5e-4, autocast=autocast)
    model, trained = fit(lambda: scene_cnn(num_classes), len(y_train), batch_loss, schedule, flips=augment, log=log)
    with torch_threads(threads):
        metrics = {
            "train_accuracy": _accuracy(model, x_train, y_train, 256),
            "val_accuracy": _accuracy(model, preprocess(val_images), y_val, 256) if len(y_val) else None,
            "epochs": epochs,
            "images": len(y_train),
            "seconds": trained["seconds"],
        }
    val = "n/a" if metrics["val_accuracy"] is None else f"{metrics['val_accuracy']:.3f}"
    log(f"train accuracy {metrics['train_accuracy']:.3f}, val accuracy {val}, {metrics['seconds']:.1f}s")
    return model, metrics
