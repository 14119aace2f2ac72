"""The activation stage stores what the model computes: float32 by default, autocast when asked."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchvision
import zarr

from netdissect.datasets import load_image
from netdissect.models import preprocess
from netdissect.stages.activations import activations_chunk
from netdissect.synthetic import write_world

SIZE = 64
IMAGES = 10


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("act") / "world"
    write_world(root, 0, 1, IMAGES, SIZE)
    return root


def _spec() -> dict:
    return {
        "name": "resnet18",
        "factory": None,
        "factory_args": {},
        "weights": None,
        "random_init": True,
        "allow_pickle": False,
        "normalize": "imagenet",
        "seed": 3,
        "num_classes": None,
        "digest": "test",
    }


def _dump(world: Path, out: Path, autocast) -> zarr.Group:
    job = SimpleNamespace(
        input=SimpleNamespace(),
        output=[str(out / "layer3" / "c.zarr"), str(out / "layer4" / "c.zarr")],
        threads=1,
        params=SimpleNamespace(
            start=0,
            stop=IMAGES + 1,
            digest="test",
            source={"kind": "broden", "root": str(world), "split": "val"},
            model=_spec(),
            image_size=(SIZE, SIZE),
            resize=None,
            batch_size=4,
            dtype="float32",
            device="cpu",
            skip_bad_images=False,
            autocast=autocast,
        ),
    )
    activations_chunk(job)
    return {layer: zarr.open_group(str(out / layer / "c.zarr"), mode="r") for layer in ("layer3", "layer4")}


def _reference(world: Path) -> dict[str, np.ndarray]:
    """The layers computed by a plain float32, contiguous forward pass of the same model."""
    torch.manual_seed(3)
    model = torchvision.models.resnet18(weights=None).eval()
    images = np.stack([load_image(p) for p in sorted((world / "images" / "synthetic" / "val").glob("??????.png"))])
    captured = {}
    model.layer3.register_forward_hook(lambda m, i, o: captured.__setitem__("layer3", o))
    model.layer4.register_forward_hook(lambda m, i, o: captured.__setitem__("layer4", o))
    with torch.inference_mode():
        model(preprocess(images))
    return {k: v.numpy() for k, v in captured.items()}


def test_float32_dump_matches_a_plain_forward_and_autocast_is_close_but_recorded(world, tmp_path):
    reference = _reference(world)
    exact = _dump(world, tmp_path / "fp32", None)
    low = _dump(world, tmp_path / "bf16", "bfloat16")
    for layer, ref in reference.items():
        stored = exact[layer]["activations"][:]
        assert stored.shape == ref.shape and exact[layer]["rows"].shape == (IMAGES,)
        np.testing.assert_allclose(stored, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
        rough = low[layer]["activations"][:]
        assert not np.array_equal(rough, stored)  # really computed in bfloat16
        scale = np.abs(ref).max()
        assert np.abs(rough - ref).max() < 0.1 * scale and np.abs(rough - ref).mean() < 0.01 * scale
        assert exact[layer].attrs["provenance"]["config"]["autocast"] is None
        assert low[layer].attrs["provenance"]["config"]["autocast"] == "bfloat16"
