"""Planning the ablation sweeps: class labels (scene column, ImageFolder layouts, CSV), class lists, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_config_errors import DEFAULT, SCHEMA
from test_config_layers import resolve

from netdissect.ablationplan import ablation_plan, chunk_names, chunk_range
from netdissect.checks import check_model
from netdissect.classlabels import class_report, label_table
from netdissect.config import ConfigError, validate
from netdissect.datasets import open_dataset
from netdissect.models import ModelError
from netdissect.plan import model_spec


def photos(root, layout):
    """Tiny PNGs at the given relative paths."""
    for path in layout:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / path)
    return root


def test_image_folder_layouts_give_classes_and_splits(tmp_path):
    split = photos(tmp_path / "s", ["train/cat/1.png", "train/dog/2.png", "val/cat/3.png", "val/owl/4.png"])
    table, report = label_table(open_dataset("imagefolder", split), ["cat", "dog"], None)
    assert list(table["split"]) == ["train", "train", "val"] and list(table["class"]) == ["cat", "dog", "cat"]
    assert list(table["output"]) == [0, 1, 0] and report == [
        "1 images of class 'owl' left out: the model has no output for it"
    ]
    assert len(open_dataset("imagefolder", split).records("val")) == 2  # dataset.split selects among the splits
    classes = class_report(table, ["cat", "dog"], {"ranking": "train", "eval": None})
    assert list(classes["status"]) == ["ok", "ok"] and list(classes["eval_images"]) == [2, 1]
    with pytest.raises(ConfigError, match="'ablation.eval_split': fewer than 2 classes have images in split 'val'"):
        class_report(table, ["cat", "dog"], {"ranking": "train", "eval": "val"})
    flat = photos(tmp_path / "f", ["cat/1.png", "dog/2.png"])
    table, _ = label_table(open_dataset("imagefolder", flat), ["dog", "cat"], None)
    assert list(table["output"]) == [1, 0] and set(table["split"]) == {""}


def test_labels_csv_decides_classes_and_splits(tmp_path):
    root = photos(tmp_path / "p", ["a.png", "b.png", "c.png"])
    labels = tmp_path / "labels.csv"
    labels.write_text(f"image,class,split\na.png,cat,train\n{root / 'b.png'},dog,train\nc.png,cat,val\n")
    table, _ = label_table(open_dataset("imagefolder", root), ["cat", "dog"], str(labels))
    assert list(table["class"]) == ["cat", "dog", "cat"] and list(table["split"]) == ["train", "train", "val"]
    labels.write_text("image,class\na.png,kat\n")
    with pytest.raises(ConfigError, match="class 'kat' of .* is not in the model's class list \\(did you mean cat"):
        label_table(open_dataset("imagefolder", root), ["cat", "dog"], str(labels))
    labels.write_text("image,class\nz.png,cat\n")
    with pytest.raises(ConfigError, match="row 0: image 'z.png' is not in the dataset"):
        label_table(open_dataset("imagefolder", root), ["cat", "dog"], str(labels))


def folder_config(tmp_path, names, **ablation):
    root = photos(tmp_path / "s", ["train/cat/1.png", "train/dog/2.png", "val/cat/3.png", "val/dog/4.png"])
    (tmp_path / "classes.txt").write_text("\n".join(names or []) + "\n")
    user = {
        "dataset": {"kind": "imagefolder", "root": str(root)},
        "model": {"name": "resnet18", "random_init": True, "layers": ["layer3", "layer4"]},
        "segmenter": {"factory": "s.py:f", "concepts": str(tmp_path / "classes.txt")},
    }
    if names is not None:
        user["model"]["classes"] = str(tmp_path / "classes.txt")
    if ablation:
        user["ablation"] = ablation
    return validate(resolve(user), SCHEMA)


def test_plan_and_its_errors(tmp_path):
    cfg = folder_config(tmp_path, ["cat", "dog", "owl"], unit_chunks=3)
    plan = ablation_plan(cfg)
    assert (
        plan.layers == ("layer4",)
        and plan.classes == ("cat", "dog", "owl")
        and plan.unit_chunks == tuple(chunk_names(3))
    )
    assert plan.report == ("class 'owl' skipped: no ranking images",)
    with pytest.raises(ModelError, match="'model.classes': the class list names 3 classes but the model outputs"):
        check_model(model_spec(cfg), ["layer4"], 3, (32, 32))
    with pytest.raises(ConfigError, match="'ablation.layers': 'layer2' is not a dissected layer"):
        ablation_plan(folder_config(tmp_path, ["cat", "dog"], layers=["layer2"]))
    with pytest.raises(ConfigError, match="'model.classes': the class list names 1 class"):
        ablation_plan(folder_config(tmp_path, ["cat"]))
    with pytest.raises(ConfigError, match="'ablation.classes': 'emu' is not in the model's class list"):
        ablation_plan(folder_config(tmp_path, ["cat", "dog"], classes=["emu"]))
    with pytest.raises(ConfigError, match="'ablation.ranking_split': no labelled images in split 'test'"):
        ablation_plan(folder_config(tmp_path, ["cat", "dog"], ranking_split="test"))


def test_activated_only_where_the_classes_are_known(tmp_path):
    assert resolve({})["ablation"]["activate"] and ablation_plan(validate(DEFAULT, SCHEMA)).classes[0] == "street-s"
    assert not resolve({"model": {"random_init": True}})["ablation"]["activate"]
    assert not folder_config(tmp_path, None)["ablation"]["activate"]
    with pytest.raises(ConfigError, match="'model.classes' must name the model's class list"):
        ablation_plan(validate(resolve({"model": {"random_init": True}, "ablation": {"activate": True}}), SCHEMA))


def test_chunk_ranges_cover_every_item_once():
    for total in (0, 5, 128):
        ranges = [chunk_range(name, total) for name in chunk_names(3)]
        assert (
            [r[0] for r in ranges[1:]] == [r[1] for r in ranges[:-1]] and ranges[0][0] == 0 and ranges[-1][1] == total
        )
