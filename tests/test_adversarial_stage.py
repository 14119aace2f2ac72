"""The adversarial stage on a planted model and a Broden-format folder written here: the groups, the changes and
the recorded skip follow from the construction (tests/basic_models.py: ChannelNet)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT
from PIL import Image

from netdissect import plan
from netdissect.classlabels import label_table
from netdissect.config import ConfigError, resolve_exclusive, validate
from netdissect.stages import stage_job
from netdissect.stages.adversarial import adversarial

DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
# class -> pixel (r, g, b): red and green images are classified correctly, blue ones as red (r > b)
COLOURS = {"red": (153, 128, 26), "green": (26, 153, 26), "blue": (128, 26, 102)}
EPSILON = 0.1


def write_colours(root, per_class=3):
    (root / "images").mkdir(parents=True)
    rows = []
    for i in range(per_class * len(COLOURS)):
        name = list(COLOURS)[i % len(COLOURS)]
        Image.fromarray(np.full((4, 4, 3), COLOURS[name], np.uint8)).save(root / "images" / f"{i}.png")
        rows.append(f"{i}.png,val,4,4,2,2,{10 + list(COLOURS).index(name)}")
    (root / "index.csv").write_text("image,split,ih,iw,sh,sw,scene\n" + "\n".join(rows) + "\n")
    labels = "".join(f"{10 + i},{n},scene(3),3,0,\n" for i, n in enumerate(COLOURS))
    (root / "label.csv").write_text("number,name,category,frequency,coverage,syns\n" + labels)


def run_stage(tmp_path, inputs=None, **settings):
    root = tmp_path / "colours"
    write_colours(root)
    out = tmp_path / "adversarial"
    source = {"kind": "broden", "root": str(root), "split": None}
    labels, _ = label_table(plan.open_source(source), list(COLOURS), None)  # the dataset's scene column
    labels.to_csv(tmp_path / "labels.csv", index=False)
    params = {
        "source": source,
        "model": {"factory": f"{ROOT / 'tests' / 'basic_models.py'}:ChannelNet", "normalize": "none"},
        "resize": None,
        "device": "cpu",
        "seed": 0,
        "layers": ["features"],
        "image_size": [4, 4],
        "batch_size": 4,  # several batches
        "class_names": list(COLOURS),
        "ablation_layers": [],
        "split": "val",
        "pairs": None,
        "images": 5,
        "epsilon": EPSILON,
        "step_size": EPSILON / 4,
        "steps": 8,
        "units": 1,
    }
    outputs = {"units": [str(out / "features" / "units.csv")], "summary": str(out / "summary.csv")}
    inputs = {"source": str(root / "index.csv"), "labels": str(tmp_path / "labels.csv"), **(inputs or {})}
    adversarial(stage_job(inputs, outputs | {"figure": str(out / "a.png")}, **params | settings))
    text = {"source_units": str, "target_units": str}
    return pd.read_csv(out / "summary.csv", dtype=text), pd.read_csv(outputs["units"][0])


def test_attack_moves_the_planted_units_and_records_the_skip(tmp_path):
    summary, units = run_stage(tmp_path)
    # each class to its most confused: red and green to each other (the closest mean probability), blue to red
    assert list(zip(summary["source"], summary["target"])) == [("red", "green"), ("green", "red"), ("blue", "red")]
    red, green, blue = summary.to_dict("records")
    # unit u is class u's: correlation puts unit 0 first for red, unit 1 for green
    assert (red["source_units"], red["target_units"], red["ranking"]) == ("0", "1", "correlation")
    # red -> green: r - 0.1 < g + 0.1 on every red image, so it always succeeds; unit 0 loses 0.1, unit 1 gains
    # 0.1, unit 2 (b = 26/255 > 0.1) loses 0.1
    assert red["images"] == 3 and red["success_rate"] == 1.0
    assert red["source_change"] == pytest.approx(-EPSILON, abs=1e-5)
    assert red["target_change"] == pytest.approx(EPSILON, abs=1e-5)
    assert red["other_change"] == pytest.approx(-EPSILON, abs=1e-5)
    # green -> red: g - r = 127/255 > 0.2, so it never succeeds, but the units move all the same
    assert green["success_rate"] == 0.0 and green["source_change"] == pytest.approx(-EPSILON, abs=1e-5)
    assert green["target_change"] == pytest.approx(EPSILON, abs=1e-5)
    # no blue image is classified as blue: a recorded skip, not a crash
    assert blue["images"] == 0 and blue["status"] == "skipped: no correctly classified val image of class 'blue'"
    assert list(units.columns) == ["source", "target", "unit", "clean_mean", "attacked_mean", "change", "group"]
    first = units[units["source"] == "red"]
    np.testing.assert_allclose(first["clean_mean"], np.array(COLOURS["red"]) / 255, atol=1e-6)
    assert list(first["group"]) == ["source", "target", "other"]
    assert (tmp_path / "adversarial" / "a.png").stat().st_size > 1000


def test_pairs_from_the_config_and_the_ablation_ranking(tmp_path):
    table = pd.DataFrame(
        {"unit": [0, 1, 2] * 3, "class": [c for c in COLOURS for _ in range(3)], "split": "val", "balanced_acc": 0.5}
        | {"drop": 0.0, "margin_drop": [0, 0, 1, 0, 0, 1, 1, 0, 0]}  # unit 2 matters most for red and green
    )
    path = tmp_path / "single_unit.csv"
    table.to_csv(path, index=False)
    inputs = {"ablation": [str(path)]}
    summary, units = run_stage(tmp_path, inputs, pairs=[["red", "green"]], ablation_layers=["features"])
    assert len(summary) == 1 and summary.loc[0, "ranking"] == "ablation"
    assert set(units["group"]) == {"both", "other"}  # unit 2 is among the first of both classes


def test_classes_are_checked_before_any_job(tmp_path):
    config = validate(copy.deepcopy(DEFAULT), SCHEMA)
    names = plan.adversarial_classes(config)
    assert len(names) == 6 and "lake-s" in names
    config["adversarial"]["pairs"] = [["lake-s", "beach"]]
    with pytest.raises(ConfigError, match="'adversarial.pairs': the model has no class 'beach' \\(classes: "):
        plan.adversarial_classes(config)
    config["adversarial"]["pairs"] = [["lake-s", "lake-s"]]
    with pytest.raises(ConfigError, match="towards itself"):
        plan.adversarial_classes(config)
    config["model"]["weights"] = None
    with pytest.raises(ConfigError, match="set model.classes .*, or set adversarial.activate: false"):
        plan.adversarial_classes(config)
    class_list = tmp_path / "classes.txt"
    class_list.write_text("cat\ndog\n")
    config["model"]["classes"] = str(class_list)
    config["adversarial"]["pairs"] = [["dog", "cat"]]
    assert plan.adversarial_classes(config) == ["cat", "dog"]  # any model with a class list
    # a model without class names switches the stage off, unless the user switched it on; a class list on
    other = {"model": {"name": "resnet18", "random_init": True}}
    assert resolve_exclusive(DEFAULT, [("f", other)])["adversarial"]["activate"] is False
    forced = {**other, "adversarial": {"activate": True}}
    assert resolve_exclusive(DEFAULT, [("f", forced)])["adversarial"]["activate"] is True
    named = {"model": other["model"] | {"classes": str(class_list)}}
    assert resolve_exclusive(DEFAULT, [("f", named)])["adversarial"]["activate"] is True


def test_only_skipped_pairs_still_write_every_table(tmp_path):
    summary, units = run_stage(tmp_path, pairs=[["blue", "red"]])
    assert list(summary["images"]) == [0] and summary.loc[0, "status"].startswith("skipped: ")
    assert units.empty and list(units.columns)[:3] == ["source", "target", "unit"]
