"""Bad configuration stops the run before any job, with one message naming the key and what is allowed."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT, merged

from netdissect.config import ConfigError, validate

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def check(override: dict) -> str:
    with pytest.raises(ConfigError) as error:
        validate(merged(DEFAULT, override), SCHEMA)
    return str(error.value)


def test_default_config_is_valid():
    assert validate(DEFAULT, SCHEMA)["quantile"] == 0.01


@pytest.mark.parametrize(
    "override, expected",
    [
        ({"quantile": 0.7}, "'quantile'"),
        ({"quantile": 0}, "'quantile'"),
        ({"iou_threshold": 1.5}, "'iou_threshold'"),
        ({"chunk_size": 0}, "'chunk_size'"),
        ({"chunk_size": "big"}, "'chunk_size'"),
        ({"sise": 3}, "unknown config key 'sise'"),
        (
            {"dataset": {"sise": 3}},
            "unknown config key 'sise' in 'dataset'; allowed: kind, resize, root, size, skip_bad_images, split",
        ),
        ({"dataset": {"kind": "brodn"}}, "'dataset.kind': 'brodn' is not one of: synthetic, broden, imagefolder"),
        (
            {"dataset": {"kind": "broden", "root": "/nonexistent/broden"}},
            "'dataset.root': folder '/nonexistent/broden' does not exist",
        ),
        ({"dataset": {"kind": "broden"}}, "'dataset.root' must name the broden folder"),
        (
            {"segmenter": {"kind": "magic"}},
            "'segmenter.kind': 'magic' is not one of: dataset, trained, torchvision, factory",
        ),
        (
            {"segmenter": {"kind": "torchvision", "name": "fcn_resnet9"}},
            "'segmenter.name': 'fcn_resnet9' is not one of",
        ),
        ({"model": {"weights": None}}, "set model.random_init: true"),
        ({"model": {"weights": "/nonexistent/w.pt"}}, "'model.weights': file '/nonexistent/w.pt' does not exist"),
        ({"model": {"factory": "x.py:f"}}, "set exactly one of them"),
        ({"model": {"layers": []}}, "'model.layers'"),
        ({"activations": {"dtype": "int8"}}, "'activations.dtype': 'int8' is not one of: float16, float32"),
        ({"activations": {"threads": 0}}, "'activations.threads'"),
        ({"activations": {"autocast": "int8"}}, "'activations.autocast': 'int8' is not one of"),
        ({"union": "some"}, "'union': 'some' is not one of: all, category"),
        ({"adversarial": {"epsilon": 1.5}}, "'adversarial.epsilon'"),
        ({"adversarial": {"epsilon": -0.1}}, "'adversarial.epsilon'"),
        ({"adversarial": {"pairs": [["lake-s"]]}}, "'adversarial.pairs'"),
        ({"report": {"top_images": 0}}, "'report.top_images'"),
    ],
)
def test_bad_values_name_the_key(override, expected):
    assert expected in check(override)


def test_nested_command_line_strings_are_parsed():
    config = merged(
        DEFAULT, {"classifier": {"epochs": "2", "lr": "0.5"}, "dataset": {"resize": "[32, 48]", "size": "null"}}
    )
    checked = validate(config, SCHEMA)
    assert checked["classifier"]["epochs"] == 2 and checked["classifier"]["lr"] == 0.5
    assert checked["dataset"]["resize"] == [32, 48] and checked["dataset"]["size"] is None
    assert validate(merged(DEFAULT, {"run": "2024"}), SCHEMA)["run"] == "2024"
    nulled = merged(DEFAULT, {"model": {"weights": "null", "random_init": "true"}})
    assert validate(nulled, SCHEMA)["model"]["weights"] is None


@pytest.mark.workflow
@pytest.mark.parametrize(
    "override, expected",
    [
        (
            {"model": {"layers": ["conv3", "conv9"]}},
            "layer 'conv9' not found (did you mean conv4, conv3, conv2?); valid layers: conv1,",
        ),
        ({"model": {"name": "resnet1800", "random_init": True}}, "resnet1800"),
        ({"quantile": 2}, "'quantile'"),
    ],
)
def test_snakemake_stops_before_any_job(workflow_factory, override, expected):
    """Each bad input stops a dry run with its message and no results folder."""
    wf = workflow_factory(override)
    proc = wf.run("-n", check=False)
    assert proc.returncode != 0
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (wf.folder / "results").exists()


@pytest.mark.workflow
def test_weights_that_do_not_fit_the_architecture_stop_the_run(workflow_factory, tmp_path):
    import torch

    from netdissect.architectures import scene_cnn

    weights = tmp_path / "three_classes.pt"
    torch.save(scene_cnn(num_classes=3).state_dict(), weights)
    wf = workflow_factory({"model": {"weights": str(weights)}})
    proc = wf.run("-n", check=False)
    assert proc.returncode != 0 and str(weights) in proc.stderr and "fc.weight" in proc.stderr
    assert "Traceback" not in proc.stderr
