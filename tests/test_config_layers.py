"""User config layers over the defaults: a key the user sets wins over a default it excludes; the split default."""

from __future__ import annotations

import pytest
from test_config_errors import DEFAULT, SCHEMA
from test_planted import write_broden

from netdissect.config import ConfigError, resolve_exclusive, validate
from netdissect.plan import make_plan

FILE = "/home/me/my.yaml"


def resolve(*layers: dict) -> dict:
    """The defaults with each layer given as a config file, the last one as --config when there are several."""
    sources = [FILE] + ["/home/me/more.yaml"] * (len(layers) - 2) + ["--config"]
    return resolve_exclusive(DEFAULT, list(zip(sources, layers)) if len(layers) > 1 else [(FILE, layers[0])])


def error(*layers: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        resolve(*layers)
    return str(caught.value)


def test_no_layers_is_the_default():
    assert resolve_exclusive(DEFAULT, []) == DEFAULT


def test_a_factory_replaces_the_default_network_and_its_training():
    model = resolve({"model": {"factory": "net.py:build", "layers": ["units"]}})["model"]
    assert (model["name"], model["factory"], model["weights"], model["random_init"]) == (
        None,
        "net.py:build",
        None,
        False,
    )
    # a factory's module is dissected as it returns it: no weights and no random_init needed
    checked = validate(resolve({"model": {"factory": "net.py:build"}}), SCHEMA)
    assert checked["model"]["weights"] is None


def test_a_name_replaces_a_default_factory():
    defaults = {**DEFAULT, "model": {**DEFAULT["model"], "name": None, "factory": "net.py:build"}}
    model = resolve_exclusive(defaults, [(FILE, {"model": {"name": "resnet18"}})])["model"]
    assert (model["name"], model["factory"]) == ("resnet18", None)


def test_weights_train_applies_to_scene_cnn_only():
    model = resolve({"model": {"name": "resnet18"}})["model"]
    assert model["weights"] is None
    with pytest.raises(ConfigError, match="model.weights' is not set"):
        validate(resolve({"model": {"name": "resnet18"}}), SCHEMA)
    with pytest.raises(ConfigError, match="'train' trains the builtin scene_cnn, not model.name 'resnet18'"):
        validate(resolve({"model": {"name": "resnet18", "weights": "train"}}), SCHEMA)
    assert resolve({"model": {"name": "scene_cnn"}})["model"]["weights"] == "train"


def test_random_init_replaces_the_default_weights():
    model = resolve({"model": {"random_init": True}})["model"]
    assert model["weights"] is None and model["random_init"] is True
    assert resolve({"model": {"random_init": "true"}}, {"seed": 1})["model"]["weights"] is None


def test_both_keys_set_by_the_user_name_both_and_where():
    assert error({"model": {"name": "resnet18", "factory": "net.py:build"}}) == (
        f"config keys 'model.name' (set in {FILE}) and 'model.factory' (set in {FILE}) exclude each other: set only one of them"
    )
    message = error({"model": {"name": "resnet18"}}, {"model": {"factory": "net.py:build"}})
    assert f"'model.name' (set in {FILE})" in message and "'model.factory' (set in --config)" in message
    message = error({"model": {"weights": "w.pt"}}, {"model": {"random_init": "true"}})
    assert "'model.weights'" in message and "'model.random_init' (set in --config)" in message


def test_a_key_the_user_unsets_is_no_conflict():
    for nulled in (None, "null"):  # a file's null, or --config's string
        model = resolve({"model": {"name": nulled, "factory": "net.py:build"}})["model"]
        assert model["factory"] == "net.py:build"
    model = resolve({"model": {"factory": "net.py:build"}}, {"model": {"factory": "null", "name": "vgg16"}})["model"]
    assert model["name"] == "vgg16"
    assert resolve({"model": {"weights": "w.pt", "random_init": False}})["model"]["weights"] == "w.pt"


def test_segmenter_keys_choose_their_kind():
    assert resolve({"segmenter": {"factory": "seg.py:f", "concepts": "c.csv"}})["segmenter"]["kind"] == "factory"
    assert resolve({"segmenter": {"name": "fcn_resnet50", "weights": "w.pt"}})["segmenter"]["kind"] == "torchvision"
    # keys of the trained segmenter are harmless with another kind
    assert resolve({"segmenter": {"kind": "dataset", "epochs": 1}})["segmenter"]["kind"] == "dataset"


def test_segmenter_kind_and_keys_of_another_kind_conflict():
    message = error({"segmenter": {"kind": "torchvision", "factory": "seg.py:f"}})
    assert message.startswith(f"config keys 'segmenter.kind' (set in {FILE}) and 'segmenter.factory' (set in {FILE})")
    assert "'segmenter.name'" in error({"segmenter": {"name": "fcn_resnet50"}}, {"segmenter": {"factory": "s.py:f"}})
    assert "set segmenter.kind" in error({"segmenter": {"weights": "w.pt"}})


def test_a_broden_dataset_is_labelled_by_its_own_labels_unless_the_user_chooses():
    assert resolve({"dataset": {"kind": "broden", "root": "x"}})["segmenter"]["kind"] == "dataset"
    kept = resolve({"dataset": {"kind": "broden", "root": "x"}, "segmenter": {"kind": "trained"}})
    assert kept["segmenter"]["kind"] == "trained"
    assert resolve({"dataset": {"kind": "imagefolder", "root": "x"}})["model"]["weights"] is None


def test_trained_segmenter_is_refused_on_a_broden_dataset(tmp_path):
    write_broden(tmp_path / "b")
    config = resolve({"dataset": {"kind": "broden", "root": str(tmp_path / "b")}, "segmenter": {"kind": "trained"}})
    with pytest.raises(ConfigError, match="'segmenter.kind': 'trained' learns the synthetic world's concepts"):
        validate(config, SCHEMA)


def test_split_default_depends_on_the_dataset_kind(tmp_path):
    assert DEFAULT["dataset"]["split"] == "auto"
    assert validate(DEFAULT, SCHEMA)["dataset"]["split"] == "val"
    root = tmp_path / "b"
    write_broden(root)
    broden = {"dataset": {"kind": "broden", "root": str(root)}, "segmenter": {"kind": "dataset"}}
    checked = validate(resolve(broden), SCHEMA)
    assert checked["dataset"]["split"] is None
    plan = make_plan(checked)
    assert plan.selection == {"images": 24, "splits": {"train": 18, "val": 6}}
    chosen = validate(resolve(broden, {"dataset": {"split": "val"}}), SCHEMA)
    assert make_plan(chosen).selection == {"images": 6, "splits": {"val": 6}}
    folder = {"dataset": {"kind": "imagefolder", "root": str(root)}}
    labelled_by = {"segmenter": {"factory": "s.py:f", "concepts": str(root / "label.csv")}}
    assert (
        validate(resolve(folder, {"model": {"random_init": True}, **labelled_by}), SCHEMA)["dataset"]["split"] is None
    )
    with pytest.raises(ConfigError, match="'dataset.split': image folders have no splits"):
        validate(resolve(folder, {"dataset": {"split": "val"}}), SCHEMA)


def test_synthetic_selection_counts_splits():
    plan = make_plan(validate(DEFAULT, SCHEMA))
    assert plan.selection == {"images": 800, "splits": {"val": 800}}
    every = validate(resolve({"dataset": {"split": None, "size": 2100}}), SCHEMA)
    assert make_plan(every).selection == {"images": 2100, "splits": {"train": 2000, "val": 100}}


def test_training_here_needs_train_and_val_splits(tmp_path):
    root = tmp_path / "b"
    write_broden(root)
    index = root / "index.csv"
    index.write_text(index.read_text().replace(",val,", ",train,"))
    config = validate(resolve({"dataset": {"kind": "broden", "root": str(root)}}), SCHEMA)
    assert config["model"]["weights"] == "train"
    with pytest.raises(ConfigError, match="'model.weights': 'train' needs the train and val splits: .*'train'$"):
        make_plan(config)


def test_command_line_values_read_nested_leaves_as_yaml():
    from netdissect.config import command_line_values

    # what snakemake makes of --config run=x 'model={factory: n.py:b, factory_args: {width: 8, act: relu}}'
    values = {"run": "x", "model": {"factory": "n.py:b", "factory_args": {"width": "8", "act": "relu"}, "name": "null"}}
    model = command_line_values(values)["model"]
    assert model == {"factory": "n.py:b", "factory_args": {"width": 8, "act": "relu"}, "name": None}
