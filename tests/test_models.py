"""Tests of model building, weight loading, layer lookup and preprocessing."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from netdissect.architectures import scene_cnn
from netdissect.checks import check_model
from netdissect.layout import generator_layer, is_generator_layer
from netdissect.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ModelError,
    build_model,
    load_weights,
    preprocess,
    resolve_layers,
)
from netdissect.modelspec import ModelSpec
from netdissect.provenance import file_digest


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_build_torchvision_by_name() -> None:
    model = build_model(ModelSpec(name="resnet18", random_init=True, num_classes=7))
    assert not model.training
    assert model.fc.out_features == 7


def test_build_builtin_scene_cnn() -> None:
    model = build_model(ModelSpec(name="scene_cnn", num_classes=6, random_init=True))
    assert {"conv1", "conv2", "conv3", "conv4", "pool", "fc"} <= {name for name, _ in model.named_modules()}
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 6)


def test_unknown_name_lists_close_names() -> None:
    with pytest.raises(ModelError, match="model.name: unknown architecture 'resnet19'; did you mean: resnet18"):
        build_model(ModelSpec(name="resnet19", random_init=True))


def test_name_and_factory_are_exclusive() -> None:
    with pytest.raises(ModelError, match="set exactly one of model.name and model.factory"):
        build_model(ModelSpec(random_init=True))
    with pytest.raises(ModelError, match="set exactly one of model.name and model.factory"):
        build_model(ModelSpec(name="scene_cnn", factory="x.py:f", random_init=True))


def test_missing_weights_needs_random_init() -> None:
    with pytest.raises(ModelError, match="random_init: true"):
        build_model(ModelSpec(name="scene_cnn"))


def test_factory_from_file(tmp_path: Path) -> None:
    source = tmp_path / "my_net.py"
    source.write_text(
        "from torch import nn\n\n"
        "def make(width=4):\n"
        "    return nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU())\n"
        "def broken():\n"
        "    raise RuntimeError('boom')\n"
    )
    model = build_model(ModelSpec(factory=f"{source}:make", factory_args={"width": 5}, random_init=True))
    assert model[0].out_channels == 5
    with pytest.raises(ModelError, match="boom") as info:
        build_model(ModelSpec(factory=f"{source}:broken", random_init=True))
    assert f"{source}:broken" in str(info.value)
    with pytest.raises(ModelError, match="no function 'nope'"):
        build_model(ModelSpec(factory=f"{source}:nope", random_init=True))
    with pytest.raises(ModelError, match=f"file not found: {tmp_path / 'absent.py'}$"):
        build_model(ModelSpec(factory=f"{tmp_path / 'absent.py'}:make", random_init=True))


def test_factory_from_module() -> None:
    spec = ModelSpec(factory="netdissect.architectures:scene_cnn", factory_args={"num_classes": 3}, random_init=True)
    assert build_model(spec).fc.out_features == 3
    with pytest.raises(ModelError, match="no_such_module"):
        build_model(ModelSpec(factory="no_such_module:f", random_init=True))


def test_weights_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = scene_cnn(6)
    plain = tmp_path / "plain.pt"
    torch.save(source.state_dict(), plain)
    assert _same_weights(build_model(ModelSpec(name="scene_cnn", num_classes=6, weights=str(plain))), source)
    wrapped = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, wrapped)
    target = scene_cnn(6)
    load_weights(target, wrapped)
    assert _same_weights(target, source)


def test_mismatched_weights_name_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "four_classes.pt"
    torch.save(scene_cnn(4).state_dict(), path)
    with pytest.raises(ModelError) as info:
        build_model(ModelSpec(name="scene_cnn", num_classes=6, weights=str(path)))
    assert str(path) in str(info.value) and "fc.weight" in str(info.value)
    state = scene_cnn(6).state_dict()
    state["extra.weight"] = state.pop("fc.bias")
    torch.save(state, path)
    with pytest.raises(ModelError, match="missing keys.*fc.bias.*unexpected keys.*extra.weight"):
        load_weights(scene_cnn(6), path)


def test_missing_weights_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="absent.pt"):
        load_weights(scene_cnn(6), tmp_path / "absent.pt")


def test_pickled_model_needs_allow_pickle(tmp_path: Path) -> None:
    source = scene_cnn(6)
    path = tmp_path / "whole.pt"
    torch.save(source, path)
    with pytest.raises(ModelError, match="allow_pickle: true") as info:
        build_model(ModelSpec(name="scene_cnn", num_classes=6, weights=str(path)))
    assert str(path) in str(info.value)
    model = build_model(ModelSpec(name="scene_cnn", num_classes=6, weights=str(path), allow_pickle=True))
    assert _same_weights(model, source)


def test_unknown_layer_lists_valid_layers() -> None:
    with pytest.raises(ModelError, match="layer 'conv9' not found.*valid layers: .*conv3.*conv4"):
        resolve_layers(scene_cnn(6), ["conv9"])
    big = build_model(ModelSpec(name="resnet18", random_init=True))
    with pytest.raises(ModelError) as info:
        resolve_layers(big, ["layer4.1.convx"])
    message = str(info.value)
    assert "layer4.1.conv2" in message and "fc" in message and "layer1.0.conv1" not in message


def test_resolve_layers_returns_modules() -> None:
    model = scene_cnn(6)
    layers = resolve_layers(model, ["conv4", "conv3.0"])
    assert list(layers) == ["conv4", "conv3.0"]
    assert layers["conv4"] is model.conv4 and layers["conv3.0"] is model.conv3[0]


def test_file_digest(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    data = bytes(range(256)) * 9000
    path.write_bytes(data)
    assert file_digest(path) == hashlib.sha256(data).hexdigest()


def test_preprocess() -> None:
    images = np.zeros((2, 4, 5, 3), np.uint8)
    images[1, 2, 3] = (255, 0, 51)
    x = preprocess(images)
    assert x.shape == (2, 3, 4, 5) and x.dtype == torch.float32 and x.is_contiguous()
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    np.testing.assert_allclose(x[1, :, 2, 3].numpy(), (np.array([1.0, 0.0, 0.2]) - mean) / std, rtol=1e-5)
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), -mean / std, rtol=1e-5)
    with pytest.raises(ValueError):
        preprocess(images.astype(np.float32))


def test_model_spec_round_trips_through_rule_params_and_resolves_trained_weights() -> None:
    section = {"name": "scene_cnn", "factory": None, "factory_args": {}, "weights": "train", "layers": ["conv4"]}
    spec = ModelSpec.from_config(section, seed=4, num_classes=6, digest="d")
    assert spec.trained_here and spec.seed == 4 and spec.num_classes == 6 and spec.normalize == "imagenet"
    assert ModelSpec.from_config(spec.as_params()) == spec
    check = spec.resolved()
    assert check.weights is None and check.random_init and not check.trained_here
    trained = spec.resolved("model/classifier.pt")
    assert trained.weights == "model/classifier.pt" and not trained.random_init
    user = ModelSpec(name="resnet18", weights="w.pt")
    assert user.resolved("ignored.pt") is user
    with pytest.raises(ModelError, match="'train' names weights the workflow makes"):
        build_model(spec)


def test_generator_prefix_is_reserved_for_generator_layers() -> None:
    spec = ModelSpec(name="scene_cnn", num_classes=6, random_init=True)
    check_model(spec, ["conv4"])
    with pytest.raises(ModelError, match="model.layers: 'gan.conv4' starts with 'gan.'"):
        check_model(spec, ["conv4", "gan.conv4"])
    assert is_generator_layer(generator_layer("layer4")) and not is_generator_layer("layer4")
