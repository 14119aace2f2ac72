"""The default network dissected on the synthetic world (``scene_cnn``) and its training.

Training helpers shared with the segmenter (thread limits, seeded batches, flips) live here too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .models import preprocess


def _stage(cin: int, cout: int, pool: bool) -> nn.Sequential:
    """Conv3x3-BN-ReLU, optionally followed by 2x2 max pooling."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SceneCNN(nn.Module):
    """Small CNN for 64x64 RGB scenes: stages conv1..conv4, then global average pooling and a linear layer.

    Feature maps for a 64-pixel input: conv1 32x32x32, conv2 64x16x16, conv3 128x8x8, conv4 128x8x8.
    """

    def __init__(self, num_classes: int = 6) -> None:
        """Build the layers.

        Args:
            num_classes: number of output classes.
        """
        super().__init__()
        self.conv1 = _stage(3, 32, pool=True)
        self.conv2 = _stage(32, 64, pool=True)
        self.conv3 = _stage(64, 128, pool=True)
        self.conv4 = _stage(128, 128, pool=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, num_classes) of a normalised batch (N, 3, H, W)."""
        x = self.conv4(self.conv3(self.conv2(self.conv1(x))))
        return self.fc(self.pool(x).flatten(1))


def scene_cnn(num_classes: int = 6) -> nn.Module:
    """Builtin ``scene_cnn`` architecture, randomly initialised.

    Args:
        num_classes: number of scene classes.

    Returns:
        The network.
    """
    return SceneCNN(num_classes)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Limit torch's intra-op threads inside the block, restoring the previous setting after.

    Args:
        threads: number of threads.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def batch_count(n: int, batch_size: int) -> int:
    """Number of batches :func:`seeded_batches` yields per epoch.

    Args:
        n: number of samples.
        batch_size: samples per batch.

    Returns:
        Batches per epoch: a final batch of one sample is dropped when there are others.
    """
    full, rest = divmod(n, batch_size)
    return full + (rest > 1 or (rest == 1 and full == 0))


def seeded_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch of shuffled index batches; a final batch of one is dropped (batch norm needs two).

    Args:
        n: number of samples.
        batch_size: samples per batch.
        generator: source of the shuffle.

    Returns:
        Index tensors.
    """
    batches = list(torch.randperm(n, generator=generator).split(batch_size))
    return batches[: batch_count(n, batch_size)]


def random_flips(n: int, generator: torch.Generator) -> torch.Tensor:
    """Which samples of a batch to flip horizontally.

    Args:
        n: batch size.
        generator: source of the coin flips.

    Returns:
        bool (n, 1, 1, 1), broadcastable over (n, C, H, W).
    """
    return (torch.rand(n, generator=generator) < 0.5).view(n, 1, 1, 1)


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """Fraction of correctly classified samples."""
    model.eval()
    correct = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in zip(x.split(batch_size), y.split(batch_size)))
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
        log: receives one progress line per epoch.

    Returns:
        The model in eval mode, and metrics ``train_accuracy``, ``val_accuracy`` (None without validation
        images), ``epochs``, ``images``, ``seconds``.
    """
    start = time.perf_counter()
    y_train, y_val = _labels(train_labels, num_classes), _labels(val_labels, num_classes)
    with torch_threads(threads):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        model = scene_cnn(num_classes).to(memory_format=torch.channels_last)  # faster convolutions on CPU
        x_train = preprocess(train_images)
        steps = batch_count(len(y_train), batch_size) * epochs
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 1))
        for epoch in range(epochs):
            model.train()
            total, correct, loss_sum = 0, 0, 0.0
            for index in seeded_batches(len(y_train), batch_size, generator):
                x, y = x_train[index], y_train[index]
                if augment:
                    x = torch.where(random_flips(len(index), generator), x.flip(3), x)
                logits = model(x.contiguous(memory_format=torch.channels_last))
                loss = F.cross_entropy(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total += len(y)
                correct += int((logits.argmax(1) == y).sum())
                loss_sum += loss.item() * len(y)
            log(
                f"epoch {epoch + 1}/{epochs}: loss {loss_sum / total:.4f}, train accuracy {correct / total:.3f}, "
                f"{time.perf_counter() - start:.1f}s"
            )
        model.to(memory_format=torch.contiguous_format)
        metrics = {
            "train_accuracy": _accuracy(model, x_train, y_train, 256),
            "val_accuracy": _accuracy(model, preprocess(val_images), y_val, 256) if len(y_val) else None,
            "epochs": epochs,
            "images": len(y_train),
            "seconds": time.perf_counter() - start,
        }
    model.eval()
    val = "n/a" if metrics["val_accuracy"] is None else f"{metrics['val_accuracy']:.3f}"
    log(f"train accuracy {metrics['train_accuracy']:.3f}, val accuracy {val}, {metrics['seconds']:.1f}s")
    return model, metrics
