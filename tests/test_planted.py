"""A planted model on a Broden-format folder written here: units built to indicate chosen concepts are recovered."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import zarr
from PIL import Image

pytestmark = pytest.mark.workflow

PLANTED_MODEL = '''
import torch
from torch import nn


class Indicators(nn.Module):
    """Unit 0 fires on red pixels, unit 1 on green ones (graded so values never tie), unit 2 is dead."""

    def forward(self, x):
        pooled = nn.functional.avg_pool2d(x[:, :2], 2)
        ramp = torch.linspace(1.0, 1.1, pooled.shape[-1] * pooled.shape[-2]).view(1, 1, *pooled.shape[-2:])
        return torch.cat([pooled * ramp, torch.zeros_like(pooled[:, :1])], 1)


class Planted(nn.Module):
    def __init__(self):
        super().__init__()
        self.units = Indicators()
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        return self.head(self.units(x).mean((2, 3)))


def planted():
    return Planted()
'''


def planted_model(model_file, factory: str = "planted") -> dict:
    """The model config section that builds a factory from a written model file, dissecting its 'units' layer."""
    return {
        "name": None,
        "factory": f"{model_file}:{factory}",
        "weights": None,
        "random_init": True,
        "layers": ["units"],
        "normalize": "none",
    }


def write_broden(root, n=24, side=32, seed=0, unlabelled_material=()):
    """Images with a red 8x8 square (object 'square') and a green 8x8 square (material 'paint'); the images
    listed in ``unlabelled_material`` have the green square but no material label at all."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    rows = []
    half = side // 2
    for i in range(n):
        image = np.zeros((side, side, 3), np.uint8)
        obj = np.zeros((half, half), np.uint16)
        mat = np.zeros((half, half), np.uint16)
        (ay, ax), (by, bx) = rng.integers(0, 4, 2) * 4, rng.integers(0, 4, 2) * 4 + [0, 0]
        while abs(int(ay) - int(by)) < 4 and abs(int(ax) - int(bx)) < 4:
            by, bx = rng.integers(0, 4, 2) * 4
        image[2 * ay : 2 * ay + 8, 2 * ax : 2 * ax + 8, 0] = 255
        image[2 * by : 2 * by + 8, 2 * bx : 2 * bx + 8, 1] = 255
        obj[ay : ay + 4, ax : ax + 4] = 1
        mat[by : by + 4, bx : bx + 4] = 258  # id > 255 exercises label = R + 256 * G
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        for name, plane in (("obj", obj), ("mat", mat)):
            rgb = np.stack([plane % 256, plane // 256, np.zeros_like(plane)], -1).astype(np.uint8)
            Image.fromarray(rgb).save(root / "images" / f"{i}_{name}.png")
        material = "" if i in unlabelled_material else f"{i}_mat.png"
        rows.append(
            f"{i}.png,{'train' if i % 4 else 'val'},{side},{side},{half},{half},{i}_obj.png,{material},{3 + i % 2}"
        )
    (root / "index.csv").write_text("image,split,ih,iw,sh,sw,object,material,scene\n" + "\n".join(rows) + "\n")
    (root / "label.csv").write_text(
        "number,name,category,frequency,coverage,syns\n1,square,object(24),24,0,\n3,indoor,scene(12),12,0,\n"
        "4,outdoor,scene(12),12,0,\n258,paint,material(24),24,0,\n"
    )


def planted_workflow(workflow_factory, tmp_path, unlabelled_material=(), **config):
    """The planted model on a Broden folder written here, dissected with the dataset's labels at q = 16/256."""
    root = tmp_path / "broden"
    write_broden(root, unlabelled_material=unlabelled_material)
    model_file = tmp_path / "planted.py"
    model_file.write_text(PLANTED_MODEL)
    return workflow_factory(
        {
            "dataset": {"kind": "broden", "root": str(root), "split": None},
            "model": planted_model(model_file),
            "segmenter": {"kind": "dataset"},
            "quantile": 16 / 256,
            "chunk_size": 10,
            **config,
        }
    )


def test_planted_units_are_recovered(workflow_factory, tmp_path):
    wf = planted_workflow(workflow_factory, tmp_path, statistics={"activate": True, "resamples": 200})
    wf.run()
    units = pd.read_csv(wf.results / "dissect" / "units" / "units.csv")
    assert list(units["label"].fillna("")) == ["square", "paint", ""]
    assert list(units["category"].fillna("")) == ["object", "material", ""]
    np.testing.assert_allclose(units["iou"], [1.0, 1.0, 0.0])
    assert list(units["detector"]) == [True, True, False]
    # the label statistics: a planted unit's IoU is 1 in every resample, its square moves from image to image
    np.testing.assert_allclose(units[["iou_low", "iou_high", "label_stability"]][:2], 1.0)
    assert (units["p_value"][:2] < 1e-6).all() and list(units["fdr_detector"]) == [True, True, False]
    assert units.loc[2, ["label_stability", "p_value", "q_value"]].isna().all()  # the dead unit has no label
    found = pd.read_csv(wf.results / "statistics" / "units" / "discoveries.csv")
    assert {(0, "square"), (1, "paint")} <= set(zip(found["unit"], found["concept"]))
    assert (found["q_value"] <= 0.05).all() and 2 not in set(found["unit"])
    thresholds = pd.read_csv(wf.results / "dissect" / "units" / "thresholds.csv")
    assert list(thresholds["above"]) == [16 * 24, 16 * 24, 0]
    concepts = pd.read_csv(wf.results / "concepts.csv", keep_default_na=False)
    assert list(concepts["id"]) == [1, 3, 4, 258]


def test_category_union_counts_a_unit_only_over_images_of_the_category(workflow_factory, tmp_path):
    """Six images show the green square without any material label: the plain union counts the paint unit's
    activation there (IoU 18/24), the category-restricted union does not (IoU 1); hand-computed counts."""
    unlabelled = (1, 5, 8, 13, 17, 22)
    wf = planted_workflow(workflow_factory, tmp_path, unlabelled_material=unlabelled, union="all")
    wf.run()
    units = pd.read_csv(wf.results / "dissect" / "units" / "units.csv", keep_default_na=False)
    np.testing.assert_allclose(units["material_iou"], [0.0, 18 / 24, 0.0])
    np.testing.assert_allclose(units["object_iou"], [1.0, 0.0, 0.0])
    wf.set_config({**wf.config, "union": "category"})
    wf.run()
    units = pd.read_csv(wf.results / "dissect" / "units" / "units.csv", keep_default_na=False)
    np.testing.assert_allclose(units["material_iou"], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(units["object_iou"], [1.0, 0.0, 0.0])
    tally = zarr.open_group(str(wf.results / "dissect" / "units" / "tally.zarr"), mode="r")
    categories = list(tally.attrs["categories"])
    in_category = tally["activation_in_category"][:]
    assert in_category[1, categories.index("material")] == 16 * (24 - len(unlabelled))
    assert in_category[0, categories.index("material")] == 16 * (24 - len(unlabelled))
    assert in_category[1, categories.index("object")] == 16 * 24
    assert list(tally["images_in_category"][:][[categories.index(c) for c in ("object", "material")]]) == [24, 18]
