"""Tests of the trained SegNet segmenter, segmentation scores and torchvision segmenters."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from netdissect.architectures import SegNet
from netdissect.models import ModelError
from netdissect.segmenters import (
    SegmenterVocabulary,
    build_torchvision_segmenter,
    load_segnet,
    predict_labels,
    predict_torchvision,
    save_segnet,
    segmentation_scores,
    train_segmenter,
)

RED, BLUE, BOX, PLAIN, STRIPED = 5, 9, 20, 30, 31
VOCAB = SegmenterVocabulary(pixel={"color": [RED, BLUE], "object": [BOX]}, image={"kind": [PLAIN, STRIPED]})


def _world(n: int, seed: int, size: int = 32) -> tuple[np.ndarray, dict, dict]:
    """Images split into a red and a blue side, with a gray box on some; image label says which side is red."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size, 3), np.uint8)
    half = size // 2
    color = np.zeros((n, half, half), np.uint16)
    box = np.zeros((n, half, half), np.uint16)
    kind = np.zeros(n, np.int64)
    for i in range(n):
        cut = int(rng.integers(4, size - 4)) // 2 * 2
        red_left = i % 2 == 0
        left, right = ((200, 30, 30), (30, 60, 210)) if red_left else ((30, 60, 210), (200, 30, 30))
        images[i, :, :cut], images[i, :, cut:] = left, right
        color[i, :, : cut // 2] = RED if red_left else BLUE
        color[i, :, cut // 2 :] = BLUE if red_left else RED
        kind[i] = PLAIN if red_left else STRIPED
        if i % 3:
            y, x = rng.integers(0, size - 12, 2) // 2 * 2
            images[i, y : y + 12, x : x + 12] = 128
            color[i, y // 2 : y // 2 + 6, x // 2 : x // 2 + 6] = 0
            box[i, y // 2 : y // 2 + 6, x // 2 : x // 2 + 6] = BOX
    noise = rng.integers(-20, 20, images.shape)
    images = np.clip(images.astype(np.int64) + noise, 0, 255).astype(np.uint8)
    return images, {"color": color, "object": box}, {"kind": kind}


@pytest.fixture(scope="module")
def trained() -> tuple[SegNet, dict]:
    images, pixel, image = _world(128, 0)
    return train_segmenter(images, pixel, image, VOCAB, epochs=8, batch_size=16, lr=1e-2, seed=0, log=lambda _: None)


def test_segnet_shapes() -> None:
    x = torch.zeros(2, 3, 64, 64)
    for stride, side in ((1, 64), (2, 32), (4, 16), (8, 8)):
        pixel, image = SegNet({"color": 3, "object": 2}, {"kind": 3}, width=8, stride=stride)(x)
        assert pixel["color"].shape == (2, 3, side, side) and pixel["object"].shape == (2, 2, side, side)
        assert image["kind"].shape == (2, 3)


def test_training_beats_chance(trained: tuple[SegNet, dict]) -> None:
    model, metrics = trained
    assert not model.training
    assert metrics["pixel_accuracy"]["color"] > 0.8
    assert metrics["pixel_accuracy"]["object"] > 0.6
    assert set(metrics["image_accuracy"]) == {"kind"} and metrics["images"] == 128 and metrics["epochs"] == 8
    images, pixel, _ = _world(16, 1)
    planes, _ = predict_labels(model, images, VOCAB)
    assert segmentation_scores(planes[:, 0], pixel["color"], VOCAB.pixel["color"])["pixel_accuracy"] > 0.8


def test_training_is_deterministic() -> None:
    images, pixel, image = _world(16, 2)
    runs = [train_segmenter(images, pixel, image, VOCAB, 1, 8, 1e-2, seed=3, log=lambda _: None)[0] for _ in range(2)]
    a, b = (m.state_dict() for m in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_target_ids_rejected() -> None:
    images, pixel, image = _world(4, 3)
    pixel["color"][0, 0, 0] = 7
    with pytest.raises(ValueError, match=r"'color'.*\[7\]"):
        train_segmenter(images, pixel, image, VOCAB, 1, 4, 1e-3, seed=0, log=lambda _: None)


def test_predict_labels_maps_classes_to_ids() -> None:
    model = SegNet({"color": 3, "object": 2}, {"kind": 3}, width=8)
    with torch.no_grad():
        heads = model.pixel_heads["color"], model.pixel_heads["object"], model.image_heads["kind"]
        for head, best in zip(heads, (2, 1, 1)):
            head.weight.zero_()
            head.bias.zero_()
            head.bias[best] = 1.0
    images = np.zeros((3, 32, 32, 3), np.uint8)
    planes, ids = predict_labels(model, images, VOCAB, batch_size=2)
    assert planes.shape == (3, 2, 16, 16) and planes.dtype == np.uint16
    assert ids.shape == (3, 1) and ids.dtype == np.int64
    assert np.all(planes[:, 0] == BLUE) and np.all(planes[:, 1] == BOX) and np.all(ids == PLAIN)
    with pytest.raises(ValueError, match="do not match"):
        predict_labels(model, images, SegmenterVocabulary(pixel={"color": [RED]}, image={}))


def test_save_load_round_trip(trained: tuple[SegNet, dict], tmp_path: Path) -> None:
    model, _ = trained
    path = tmp_path / "segnet.pt"
    save_segnet(model, VOCAB, path)
    assert isinstance(torch.load(path, weights_only=True), dict)
    loaded, vocab = load_segnet(path)
    assert vocab == VOCAB and not loaded.training
    images, _, _ = _world(8, 4)
    for a, b in zip(predict_labels(model, images, VOCAB), predict_labels(loaded, images, vocab)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ModelError, match=f"segmenter file not found: {tmp_path / 'absent.pt'}"):
        load_segnet(tmp_path / "absent.pt")


def test_segmentation_scores_by_hand() -> None:
    truth = np.array([[1, 1, 2, 0], [2, 2, 0, 3]], np.uint16)
    pred = np.array([[1, 2, 2, 1], [2, 0, 3, 3]], np.uint16)
    scores = segmentation_scores(pred, truth, [1, 2, 3, 4])
    # labelled pixels: 6, correct: (0,0) (0,2) (1,0) (1,3) -> 4/6
    assert scores["pixel_accuracy"] == pytest.approx(4 / 6)
    # id 1: inter 1, union {(0,0),(0,1),(0,3)} = 3; id 2: inter 2, union 4; id 3: inter 1, union 2; id 4 absent
    assert scores["iou"] == pytest.approx({1: 1 / 3, 2: 2 / 4, 3: 1 / 2})
    assert scores["mean_iou"] == pytest.approx((1 / 3 + 1 / 2 + 1 / 2) / 3)
    empty = segmentation_scores(np.zeros((2, 2), np.uint16), np.zeros((2, 2), np.uint16), [1])
    assert empty == {"pixel_accuracy": None, "mean_iou": None, "iou": {}}


def test_torchvision_segmenter_from_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = torchvision.models.get_model(
        "lraspp_mobilenet_v3_large", weights=None, weights_backbone=None, num_classes=21
    )
    path = tmp_path / "lraspp.pt"
    torch.save(source.state_dict(), path)
    model = build_torchvision_segmenter("lraspp_mobilenet_v3_large", str(path))
    assert not model.training
    labels = predict_torchvision(model, np.zeros((3, 64, 64, 3), np.uint8), (32, 32), batch_size=2)
    assert labels.shape == (3, 1, 32, 32) and labels.dtype == np.uint16 and labels.max() < 21
    with pytest.raises(ModelError, match="lraspp_mobilenet_v3_large"):
        build_torchvision_segmenter("lraspp_mobilenet_v3", str(path))


def test_torchvision_segmenter_with_aux_classifier(tmp_path: Path) -> None:
    source = torchvision.models.get_model(
        "deeplabv3_mobilenet_v3_large", weights=None, weights_backbone=None, num_classes=5, aux_loss=True
    )
    path = tmp_path / "deeplab.pt"
    torch.save({"model": source.state_dict()}, path)
    model = build_torchvision_segmenter("deeplabv3_mobilenet_v3_large", str(path))
    assert model.aux_classifier is not None
    assert predict_torchvision(model, np.zeros((1, 32, 32, 3), np.uint8), (16, 16)).max() < 5
