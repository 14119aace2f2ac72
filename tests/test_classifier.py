"""Tests of the builtin scene classifier and its training."""

import numpy as np
import pytest
import torch

from netdissect.architectures import scene_cnn
from netdissect.classifier import train_classifier
from netdissect.hooks import LayerHooks


def _shapes(n: int, seed: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Noisy images whose class is which colour channel holds a bright square (anywhere)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 90, (n, size, size, 3), dtype=np.uint8)
    labels = np.arange(n) % 3
    for image, label in zip(images, labels):
        y, x = rng.integers(0, size - 10, 2)
        image[y : y + 10, x : x + 10, label] = 250
    return images, labels


def test_scene_cnn_feature_maps() -> None:
    model = scene_cnn(6).eval()
    with LayerHooks(model, capture=["conv1", "conv2", "conv3", "conv4"]) as hooks:
        logits = hooks.run(torch.zeros(2, 3, 64, 64))
    assert logits.shape == (2, 6)
    shapes = {name: tuple(t.shape[1:]) for name, t in hooks.captured.items()}
    assert shapes == {"conv1": (32, 32, 32), "conv2": (64, 16, 16), "conv3": (128, 8, 8), "conv4": (128, 8, 8)}


def test_training_learns_above_chance() -> None:
    train_x, train_y = _shapes(96, 0)
    val_x, val_y = _shapes(48, 1)
    lines: list[str] = []
    model, metrics = train_classifier(train_x, train_y, val_x, val_y, 3, 4, 16, 5e-3, seed=0, log=lines.append)
    assert not model.training
    assert metrics["val_accuracy"] > 0.6 and metrics["train_accuracy"] > 0.6
    assert metrics["epochs"] == 4 and metrics["images"] == 96 and metrics["seconds"] > 0
    assert len([line for line in lines if not line.startswith("training:")]) == 5  # epochs and the result


def test_same_seed_same_weights() -> None:
    x, y = _shapes(40, 2)
    runs = [train_classifier(x, y, x[:0], y[:0], 3, 1, 16, 1e-3, seed=7, log=lambda _: None) for _ in range(2)]
    (a, metrics), (b, _) = runs
    assert metrics["val_accuracy"] is None
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c, _ = train_classifier(x, y, x[:0], y[:0], 3, 1, 16, 1e-3, seed=8, log=lambda _: None)
    assert not torch.equal(c.state_dict()["fc.weight"], sa["fc.weight"])


def test_labels_out_of_range() -> None:
    x, y = _shapes(8, 3)
    with pytest.raises(ValueError, match="0..1"):
        train_classifier(x, y, x, y, 2, 1, 4, 1e-3, seed=0, log=lambda _: None)
