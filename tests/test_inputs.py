"""Other inputs end to end: a plain image folder labelled by a torchvision segmenter, a torchvision classifier
loaded from a local weights file (DataParallel checkpoint)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
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
    segmenter = torchvision.models.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)
    seg_weights = tmp_path / "lraspp.pt"
    torch.save(segmenter.state_dict(), seg_weights)
    wf = workflow_factory(
        {
            "dataset": {"kind": "imagefolder", "root": str(folder), "split": None},
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
    index = pd.read_csv(wf.results / "data" / "index.csv")
    assert len(index) == 10 and index["image"].str.endswith(".png").all()
