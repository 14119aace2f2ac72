"""Other inputs end to end: a plain image folder labelled by a torchvision segmenter, a torchvision classifier
loaded from a local weights file (DataParallel checkpoint)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
import zarr
from PIL import Image

pytestmark = pytest.mark.workflow


def test_image_folder_with_torchvision_models(workflow_factory, tmp_path):
    folder = tmp_path / "photos"
    (folder / "b").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(10):
        image = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
        Image.fromarray(image).save(folder / ("b" if i % 2 else "") / f"img{i}.png")
    torch.manual_seed(0)
    classifier = torchvision.models.resnet18(weights=None, num_classes=5)
    weights = tmp_path / "resnet18.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in classifier.state_dict().items()}}, weights)
    segmenter = torchvision.models.segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=21
    )
    seg_weights = tmp_path / "lraspp.pt"
    torch.save(segmenter.state_dict(), seg_weights)
    wf = workflow_factory(
        {
            "dataset": {"kind": "imagefolder", "root": str(folder), "split": None, "resize": [40, 40]},
            "model": {"name": "resnet18", "num_classes": 5, "weights": str(weights), "layers": ["layer2", "layer3"]},
            "segmenter": {"kind": "torchvision", "name": "lraspp_mobilenet_v3_large", "weights": str(seg_weights)},
            "chunk_size": 6,
        }
    )
    wf.run()
    concepts = pd.read_csv(wf.results / "concepts.csv", keep_default_na=False)
    assert len(concepts) == 20 and set(concepts["category"]) == {"object"}
    for layer, units in (("layer2", 128), ("layer3", 256)):
        table = pd.read_csv(wf.results / "dissect" / layer / "units.csv", keep_default_na=False)
        assert len(table) == units
    store = zarr.open_group(str(wf.results / "segment" / "0000000-0000006.zarr"), mode="r")
    assert store["labels"].shape == (6, 1, 20, 20)  # half the resized image
    index = pd.read_csv(wf.results / "data" / "index.csv")
    assert len(index) == 10 and index["image"].str.endswith(".png").all()


FACTORY_SEGMENTER = '''
import torch
from torch import nn


class Bright(nn.Module):
    """Class 1 ('dark') where the image is dark, class 2 ('bright') where bright, never 0 (none)."""

    def forward(self, x):
        level = x.mean(1, keepdim=True)
        return torch.cat([torch.full_like(level, -9.0), -level, level], 1)


def bright():
    return Bright()
'''


def test_factory_segmenter_and_factory_model(workflow_factory, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(8):
        image = np.zeros((32, 32, 3), np.uint8)
        y, x = rng.integers(0, 24, 2)
        image[y : y + 8, x : x + 8] = 255
        Image.fromarray(image).save(folder / f"{i}.png")
    code = tmp_path / "seg.py"
    code.write_text(FACTORY_SEGMENTER)
    concepts = tmp_path / "concepts.csv"
    concepts.write_text("name,category\ndark,lightness\nbright,lightness\n")
    planted = tmp_path / "planted.py"
    from test_planted import PLANTED_MODEL, planted_model

    planted.write_text(PLANTED_MODEL)
    wf = workflow_factory(
        {
            "dataset": {"kind": "imagefolder", "root": str(folder), "split": None},
            "model": planted_model(planted),
            "segmenter": {"kind": "factory", "factory": f"{code}:bright", "concepts": str(concepts)},
            "quantile": 64 / (16 * 16),
        }
    )
    wf.run()
    units = pd.read_csv(wf.results / "dissect" / "units" / "units.csv", keep_default_na=False)
    assert list(units["label"][:2]) == ["bright", "bright"] and units["iou"][0] > 0.9
