"""A user's own config file over the defaults, through snakemake: every image of a Broden-format folder unless a
split is chosen, a factory network replacing the default one, and one error when the user sets both."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import torchvision
import zarr
from conftest import Workflow
from test_inputs import FACTORY_SEGMENTER
from test_planted import PLANTED_MODEL, write_broden

pytestmark = pytest.mark.workflow

# the planted model of test_planted, built by a factory that leaves a mark when it is called
FACTORY = (
    PLANTED_MODEL
    + """

def build():
    import pathlib

    pathlib.Path(__file__).with_suffix(".built").touch()
    return Planted()
"""
)


def user_workflow(tmp_path, config: dict) -> Workflow:
    """A working folder whose --configfile holds only ``config`` (no tiny test defaults)."""
    folder = tmp_path / "wf"
    folder.mkdir()
    return Workflow(folder, config)


@pytest.fixture
def broden(tmp_path):
    root = tmp_path / "broden"
    write_broden(root)  # 24 images: 18 train, 6 val
    return root


@pytest.fixture
def factory(tmp_path):
    code = tmp_path / "net.py"
    code.write_text(FACTORY)
    return code


def test_broden_folder_dissects_every_image_by_default(tmp_path, broden):
    torch.manual_seed(0)
    weights = tmp_path / "resnet18.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    wf = user_workflow(
        tmp_path,
        {
            "dataset": {"kind": "broden", "root": str(broden)},
            "model": {"name": "resnet18", "weights": str(weights), "layers": ["layer1"]},
            "segmenter": {"kind": "dataset"},
        },
    )
    proc = wf.run()
    assert "dissecting 24 images (train 18, val 6)" in proc.stderr
    rows = len(pd.read_csv(broden / "index.csv"))
    tally = zarr.open_group(str(wf.results / "dissect" / "layer1" / "tally.zarr"), mode="r")
    assert tally.attrs["images"] == rows == 24
    (store,) = (wf.results / "segment").glob("*.zarr")
    assert list(zarr.open_group(str(store), mode="r")["rows"][:]) == list(range(rows))
    provenance = json.loads((wf.results / "provenance.json").read_text())
    assert provenance["dataset"] == {"images": 24, "splits": {"train": 18, "val": 6}}
    assert "24 images (train 18, val 6) selected (split: all)" in (wf.results / "logs" / "data_index.log").read_text()
    assert not (wf.results / "model").exists()  # no classifier trained: the user's weights replace 'train'


def test_factory_model_replaces_the_default_network(tmp_path, broden, factory):
    wf = user_workflow(
        tmp_path,
        {
            "dataset": {"kind": "broden", "root": str(broden)},
            "model": {"factory": f"{factory}:build", "layers": ["units"]},
            "segmenter": {"kind": "dataset"},
        },
    )
    jobs = wf.dry_run_jobs()
    assert factory.with_suffix(".built").exists()  # planning built the factory's network to check its layers
    assert jobs["activations"] == 1 and "train_classifier" not in jobs and "train_segmenter" not in jobs


def test_image_folder_with_factory_segmenter_keys_only(tmp_path, factory):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        torchvision.transforms.functional.to_pil_image(torch.rand(3, 16, 16)).save(folder / f"{i}.png")
    segmenter = tmp_path / "seg.py"
    segmenter.write_text(FACTORY_SEGMENTER)
    concepts = tmp_path / "concepts.csv"
    concepts.write_text("name,category\ndark,lightness\nbright,lightness\n")
    wf = user_workflow(
        tmp_path,
        {
            "dataset": {"kind": "imagefolder", "root": str(folder)},
            "model": {"factory": f"{factory}:build", "layers": ["units"]},
            "segmenter": {"factory": f"{segmenter}:bright", "concepts": str(concepts)},
        },
    )
    jobs = wf.dry_run_jobs()
    assert jobs["segment_chunk"] == 1 and "train_segmenter" not in jobs


def test_name_and_factory_both_set_by_the_user_is_one_error(tmp_path, broden, factory):
    config = {
        "dataset": {"kind": "broden", "root": str(broden)},
        "model": {"name": "resnet18", "factory": f"{factory}:build", "layers": ["units"]},
        "segmenter": {"kind": "dataset"},
    }
    wf = user_workflow(tmp_path, config)
    proc = wf.run("-n", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert (
        f"netdissect: config keys 'model.name' (set in {wf.config_path}) and 'model.factory' "
        f"(set in {wf.config_path}) exclude each other" in proc.stderr
    )
    del config["model"]["factory"]
    wf.set_config(config)
    proc = wf.run("-n", "--config", f"model={{factory: {factory}:build}}", check=False)
    assert proc.returncode != 0
    assert f"'model.name' (set in {wf.config_path}) and 'model.factory' (set in --config)" in proc.stderr
    assert not (wf.folder / "results").exists()
