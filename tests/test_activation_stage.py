"""The activation stage stores what the model computes: float32 by default, autocast when asked."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchvision
import zarr

from netdissect.datasets import load_image
from netdissect.layout import generator_layer
from netdissect.models import preprocess
from netdissect.modelspec import ModelSpec
from netdissect.stages import StageError, stage_job
from netdissect.stages.activations import Batch, activations_chunk, dump_layers, padded
from netdissect.stages.thresholds import CoarseRound, coarse_chunk
from netdissect.stores import load_state
from netdissect.synthetic import write_world

SIZE = 64
IMAGES = 10
LABEL_SIZE = (32, 32)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("act") / "world"
    write_world(root, 0, 1, IMAGES, SIZE)
    return root


def _spec() -> dict:
    return ModelSpec(name="resnet18", random_init=True, seed=3, digest="test").as_params()


def _dump(world: Path, out: Path, autocast, dtype: str = "float32", batch_size: int = 4) -> zarr.Group:
    job = SimpleNamespace(
        input=SimpleNamespace(),
        output=SimpleNamespace(
            stores=[str(out / "layer3" / "c.zarr"), str(out / "layer4" / "c.zarr")],
            coarse=[str(out / "coarse" / "layer3.npz"), str(out / "coarse" / "layer4.npz")],
        ),
        threads=1,
        params=SimpleNamespace(
            start=0,
            stop=IMAGES + 1,
            digest="test",
            source={"kind": "broden", "root": str(world), "split": "val"},
            model=_spec(),
            image_size=(SIZE, SIZE),
            resize=None,
            batch_size=batch_size,
            dtype=dtype,
            device="cpu",
            skip_bad_images=False,
            autocast=autocast,
            label_size=LABEL_SIZE,
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


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_round_one_of_the_dump_equals_round_one_read_from_its_store(world, tmp_path, monkeypatch, dtype):
    """The activation job's round-1 states (3-image batches, gathered to 4 or more images per pass, merged every 2
    passes) are the ones a threshold job computes from the stored values in one read batch, array for array."""
    monkeypatch.setattr(CoarseRound, "GATHER", 4)
    monkeypatch.setattr(CoarseRound, "MERGE_EVERY", 2)
    groups = _dump(world, tmp_path, None, dtype, batch_size=3)
    for layer in ("layer3", "layer4"):
        store = str(tmp_path / layer / "c.zarr")
        again = str(tmp_path / f"{layer}-again.npz")
        coarse_chunk(stage_job({"acts": store}, {"state": again}, label_size=LABEL_SIZE, read_batch=IMAGES))
        (dumped, dumped_meta), (read, read_meta) = load_state(tmp_path / "coarse" / f"{layer}.npz"), load_state(again)
        assert sorted(dumped) == sorted(read) and dumped_meta == read_meta
        assert dumped_meta["activations"]["layer"] == layer and groups[layer]["activations"].dtype == dtype
        for name in read:
            np.testing.assert_array_equal(dumped[name], read[name], err_msg=f"{layer} {name}")
        assert read["lower_meta"][0] == IMAGES * LABEL_SIZE[0] * LABEL_SIZE[1]  # every image counted once


def _latent_source(latents: torch.Tensor, batch_size: int):
    """A batch source without images: latent vectors (rows = latent index), as generator dissection feeds them."""
    for start in range(0, len(latents), batch_size):
        chunk = latents[start : start + batch_size]
        yield Batch(padded(chunk, batch_size), list(range(start, start + len(chunk))))


def test_capture_loop_dumps_a_generator_fed_by_latents(tmp_path):
    torch.manual_seed(0)
    generator = torch.nn.Sequential(
        torch.nn.Linear(4, 8 * 2 * 2),
        torch.nn.Unflatten(1, (8, 2, 2)),
        torch.nn.ConvTranspose2d(8, 5, 2, stride=2),
        torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(5, 3, 2, stride=2),
        torch.nn.Tanh(),
    ).eval()
    latents = torch.randn(7, 4)
    outputs = {name: str(tmp_path / generator_layer(name) / "c.zarr") for name in ("2", "3")}
    stored = dump_layers(
        generator,
        _latent_source(latents, 3),
        outputs,
        capacity=7,
        dtype="float32",
        autocast=None,
        device=torch.device("cpu"),
        attributes=lambda layer: {"provenance": {"layer": layer}},
        empty="no latents",
    )
    assert stored == 7
    with torch.inference_mode():
        features = generator[:3](latents)
    for name, expected in (("2", features), ("3", torch.relu(features))):
        group = zarr.open_group(outputs[name], mode="r")
        np.testing.assert_allclose(group["activations"][:], expected.numpy(), rtol=1e-6, atol=1e-6)
        assert group["rows"][:].tolist() == list(range(7))
        assert group.attrs["provenance"] == {"layer": name}
        assert Path(outputs[name]).parent.name == f"gan.{name}"


def test_capture_loop_writes_nothing_when_the_source_is_empty(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1))
    out = tmp_path / "a" / "c.zarr"
    with pytest.raises(StageError, match="nothing to see"):
        dump_layers(
            model, iter(()), {"0": str(out)}, 4, "float16", None, torch.device("cpu"), lambda _: {}, "nothing to see"
        )
    assert not out.exists() and list(out.parent.iterdir()) == []
