"""GAN dissection: seeded latents, generator checks, the intervention measures, and a planted generator dissected,
edited and measured end to end (tests/test_gan.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from netdissect.architectures import Discriminator, Generator
from netdissect.gan import interventions as iv
from netdissect.gan.generators import GeneratorError, LatentSampler, check_gan, to_uint8
from netdissect.gan.training import train_gan
from netdissect.training import Schedule

# A planted generator: latent (N, 16) -> layer "paint" (N, 2, 4, 4): unit 0 is 1 on the cells whose latent entry
# is above 1, unit 1 on those below -1 -> layer "render": 32x32 image in [0, 1], gray, with each cell of unit 0
# red and each other cell of unit 1 blue (8x8 pixels per cell). So unit 0 paints "red" exactly where it is on.
PLANTED_GENERATOR = """
import torch
from torch import nn
from torch.nn import functional as F


class Paint(nn.Module):
    def forward(self, z):
        grid = z.reshape(len(z), 1, 4, 4)
        return torch.cat([(grid > 1).float(), (grid < -1).float()], 1)


class Render(nn.Module):
    def forward(self, f):
        up = F.interpolate(f, scale_factor=8.0, mode="nearest")
        red, blue = up[:, :1] > 0.5, (up[:, 1:] > 0.5) & (up[:, :1] <= 0.5)
        gray = torch.full((len(f), 3, 32, 32), 0.5)
        gray = torch.where(red, torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1), gray)
        return torch.where(blue, torch.tensor([0, 0, 1.0]).view(1, 3, 1, 1), gray)


class Planted(nn.Module):
    def __init__(self):
        super().__init__()
        self.paint, self.render = Paint(), Render()

    def forward(self, z):
        return self.render(self.paint(z))


def planted():
    return Planted()


class Signed(Planted):
    def forward(self, z):
        return super().forward(z) * 2 - 1


def signed():
    return Signed()


class Noisy(nn.Module):
    def forward(self, z):
        return Planted()(z) * 0 + torch.rand(len(z), 3, 32, 32)


def noisy():
    return Noisy()


def flat():
    return nn.Sequential(nn.Flatten())
"""

# A colour segmenter: red, blue and gray pixels (ImageNet-normalised input) as concepts 2, 3 and 1.
COLOUR_SEGMENTER = """
import torch
from torch import nn

MEAN, STD = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class Colours(nn.Module):
    def forward(self, x):
        r, g, b = (x * STD + MEAN).unbind(1)
        return torch.stack([torch.full_like(r, -9.0), torch.full_like(r, 0.2), r - g - b, b - r - g], 1)


def colours():
    return Colours()
"""


def test_latents_depend_on_seed_and_row_only():
    sampler = LatentSampler(3, (4, 2))
    whole = sampler(range(10))
    assert whole.shape == (10, 4, 2)
    assert torch.equal(torch.cat([sampler(range(4)), sampler(range(4, 10))]), whole)
    assert torch.equal(sampler([7, 2]), whole[[7, 2]])
    assert not torch.equal(LatentSampler(4, (4, 2))(range(10)), whole)
    assert abs(float(LatentSampler(0, (64,))(range(200)).std()) - 1) < 0.05


def test_generator_and_discriminator_shapes():
    gen = Generator(latent_dim=8, width=4, size=32).eval()
    images = gen(torch.randn(3, 8))
    assert images.shape == (3, 3, 32, 32) and images.abs().max() <= 1
    assert [n for n, _ in gen.named_children()] == ["layer1", "layer2", "layer3", "output"]
    assert Discriminator(width=4, size=32)(images).shape == (3,)
    with pytest.raises(ValueError, match="power of two"):
        Generator(size=48)


def test_training_is_deterministic_for_a_seed():
    images = np.random.default_rng(0).integers(0, 255, (12, 16, 16, 3), dtype=np.uint8)
    schedule = Schedule(epochs=1, batch_size=4, lr=2e-4, seed=5, threads=1)
    runs = [train_gan(images, schedule, 8, 4, log=lambda line: None) for _ in range(2)]
    for a, b in zip(runs[0][0].state_dict().values(), runs[1][0].state_dict().values()):
        assert torch.equal(a, b)
    assert set(runs[0][1]) == {"d_loss", "g_loss", "d_accuracy", "seconds"}


def test_uint8_conversion_of_both_ranges():
    signed = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1)
    assert to_uint8(signed, "signed").tolist() == [[[[0, 128, 255]]]]
    assert to_uint8(signed, "unit").tolist() == [[[[0, 0, 255]]]]


def test_removal_effect_by_hand():
    before = np.array([[[5, 5, 1], [2, 2, 2]]])
    after = np.array([[[3, 5, 1], [2, 4, 2]]])
    effect = iv.removal_effect(before, after, 5)
    assert effect.fraction_before == 2 / 6 and effect.fraction_after == 1 / 6
    assert effect.other_changed == 1 / 4  # of the 4 pixels that were not 5, one changed
    assert effect.top_replacement == 3
    assert iv.removal_effect(before, before, 5).top_replacement == 0


def test_windows_cells_and_insertion_rows():
    assert iv.cell_window((0, 3), (4, 4), (8, 8), 1) == (slice(0, 4), slice(4, 8))
    assert iv.cell_window((2, 1), (4, 4), (8, 8), 0) == (slice(4, 6), slice(2, 4))
    with pytest.raises(ValueError, match="do not split"):
        iv.cell_window((0, 0), (3, 3), (8, 8), 0)
    assert iv.spread_cells((3, 5), 2).tolist() == [[0, 0], [0, 4], [2, 0], [2, 4]]
    assert len(iv.spread_cells((4, 4), 8)) == 16
    masks = iv.cell_masks(np.array([[0, 1], [2, 2]]), (3, 3))
    assert masks.sum() == 2 and masks[0, 0, 1] and masks[1, 2, 2]
    context = np.array([[[1, 1], [1, 2]], [[2, 2], [2, 1]]])
    before = context == 7
    after = np.zeros_like(before)
    after[0, :, 0] = True
    window, cells = [(slice(0, 2), slice(0, 2))] * 2, [(slice(1, 2), slice(1, 2))] * 2
    rows = iv.insertion_rows(before, after, context, window, cells, 2)
    assert rows["context"].tolist() == [2, 1] and rows["added"].tolist() == [2, 0]
    assert rows["success"].tolist() == [True, False]


def test_interventions_edge_cases():
    before = np.array([[[5, 5], [5, 1]]])
    effect = iv.removal_effect(before, np.array([[[5, 5], [5, 2]]]), 5)
    assert effect.other_changed == 1.0 and effect.top_replacement == 0  # the one other pixel changed
    assert iv.removal_effect(np.full((1, 2, 2), 5), np.zeros((1, 2, 2), int), 5).other_changed == 0
    with pytest.raises(ValueError, match=r"label maps before \(1, 2, 2\) and after \(1, 2, 3\) differ in shape"):
        iv.removal_effect(before, np.zeros((1, 2, 3), int), 5)
    # a 4x2 grid on 8x6 maps: cells of 2x3 pixels, windows clipped at every border
    maps = np.zeros((8, 6))
    assert maps[iv.cell_window((1, 0), (4, 2), (8, 6), 1)].shape == (6, 6)
    assert iv.cell_window((3, 1), (4, 2), (8, 6), 2) == (slice(2, 8), slice(0, 6))
    assert iv.cell_window((2, 1), (4, 2), (8, 6), 0) == (slice(4, 6), slice(3, 6))
    for size in ((8, 7), (9, 6)):
        with pytest.raises(ValueError, match=rf"label maps of {size[0]}x{size[1]} do not split into a 4x2 grid"):
            iv.cell_window((0, 0), (4, 2), size, 0)
    assert iv.spread_cells((5, 1), 2).tolist() == [[0, 0], [4, 0]] and iv.spread_cells((5, 1), 2).dtype.kind == "i"
    assert iv.spread_cells((4, 7), 3).tolist() == [[r, c] for r in (0, 2, 3) for c in (0, 3, 6)]
    assert iv.cell_masks(np.array([[1, 0]]), (2, 3)).dtype == bool
    window = [(slice(0, 2), slice(0, 2))]
    was = np.array([[[True, True], [False, False]]])
    now = np.array([[[True, False], [True, True]]])
    rows = iv.insertion_rows(was, now, np.ones((1, 2, 2), int), window, window, 1)
    assert rows["added"].tolist() == [1] and rows["success"].tolist() == [True]  # 3 after, 2 before
    ties = pd.DataFrame({"label": ["b", "a"], "category": "object", "iou": 0.3, "detector": True})
    assert iv.chosen_concepts(ties, {"object"}, 2) == ["a", "b"]


def test_chosen_concepts_by_detector_count_then_iou_then_name():
    units = pd.DataFrame(
        {
            "label": ["tree", "sky", "sky", "door", "tree", "red-c", "road"],
            "category": ["object", "object", "object", "object", "object", "color", "object"],
            "iou": [0.3, 0.2, 0.1, 0.3, 0.05, 0.9, 0.3],
            "detector": [True, True, True, True, True, True, False],
        }
    )
    assert iv.chosen_concepts(units, {"object"}, 3) == ["tree", "sky", "door"]
    assert iv.chosen_concepts(units, {"object", "color"}, 2) == ["tree", "sky"]
    assert iv.chosen_concepts(units.assign(detector=False), {"object"}, 3) == []


def _section(code, factory: str, **values) -> dict:
    section = {
        "factory": f"{code}:{factory}",
        "factory_args": {},
        "weights": None,
        "allow_pickle": False,
        "latent_shape": [16],
        "output_range": "unit",
        "seed": 0,
        "width": 8,
        "concepts": None,
    }
    return section | values


def test_check_gan_names_the_key_at_fault(tmp_path):
    code = tmp_path / "gen.py"
    code.write_text(PLANTED_GENERATOR)
    names = ["gray", "red", "blue"]
    check_gan(_section(code, "planted"), ["paint"], (32, 32), names)
    with pytest.raises(GeneratorError, match=r"gan.layers.*'pain'.*did you mean paint"):
        check_gan(_section(code, "planted"), ["pain"], (32, 32), names)
    with pytest.raises(GeneratorError, match=r"gan.output_range 'unit' is \[0, 1\].*span \[-1, 1\]"):
        check_gan(_section(code, "signed"), ["paint"], (32, 32), names)
    check_gan(_section(code, "signed", output_range="signed"), ["paint"], (32, 32), names)
    with pytest.raises(GeneratorError, match=r"makes 32x32 images, not 64x64"):
        check_gan(_section(code, "planted"), ["paint"], (64, 64), names)
    with pytest.raises(GeneratorError, match=r"different images from the same latents"):
        check_gan(_section(code, "noisy"), [], (32, 32), names)
    with pytest.raises(GeneratorError, match=r"returned \(3, 16\) for 3 latents"):
        check_gan(_section(code, "flat"), [], (32, 32), names)
    with pytest.raises(GeneratorError, match=r"gan.latent_shape \[5\]: the generator fails"):
        check_gan(_section(code, "planted", latent_shape=[5]), ["paint"], (32, 32), names)
    with pytest.raises(GeneratorError, match=r"gan.concepts.*'unicorn'.*gray, red, blue"):
        check_gan(_section(code, "planted", concepts=["red", "unicorn"]), ["paint"], (32, 32), names)


def _planted_config(tmp_path, chunk_size: int) -> dict:
    code = tmp_path / "gen.py"
    code.write_text(PLANTED_GENERATOR)
    segmenter = tmp_path / "seg.py"
    segmenter.write_text(COLOUR_SEGMENTER)
    concepts = tmp_path / "concepts.csv"
    concepts.write_text("name,category\ngray,color\nred,color\nblue,color\n")
    return {
        "segmenter": {"kind": "factory", "factory": f"{segmenter}:colours", "concepts": str(concepts)},
        "quantile": 0.1,
        "gan": {
            "activate": True,
            "factory": f"{code}:planted",
            "latent_shape": [16],
            "output_range": "unit",
            "layers": ["paint"],
            "concepts": None,
            "images": 40,  # one 40-image chunk reads two latent batches (32 + 8): a lost batch changes its tables
            "ks": [1, 2],
            "insertion_k": 1,
            "intervention_images": 6,
            "insertion_grid": 8,
        },
        "chunk_size": chunk_size,
    }


@pytest.mark.workflow
def test_planted_generator_is_dissected_removed_and_inserted(workflow_factory, tmp_path):
    wf = workflow_factory(_planted_config(tmp_path, chunk_size=15))
    wf.run("gan")
    units = pd.read_csv(wf.results / "dissect" / "gan.paint" / "units.csv", keep_default_na=False)
    assert units.loc[0, "label"] == "red" and units.loc[1, "label"] == "blue"
    assert units.loc[0, "iou"] > 0.4 and units.loc[0, "detector"]  # q = 0.1 covers most of the 16% red cells

    removal = pd.read_csv(wf.results / "gan" / "removal.csv", keep_default_na=False)
    red = removal[removal["concept"] == "red"].set_index("k")
    assert red.loc[1, "fraction_before"] > 0.05
    assert red.loc[1, "fraction_after"] == 0 and red.loc[1, "other_changed"] == 0  # unit 0 alone paints red
    assert red.loc[1, "top_replacement"] == "gray"

    # Insertion: unit 0 switched on (to its t_u, 0.625 > 0.5) in one cell makes that cell's 4x4 label pixels red:
    # 16 added wherever the cell was not red already, none where it was.
    insertion = pd.read_csv(wf.results / "gan" / "insertion.csv", keep_default_na=False)
    red = insertion[insertion["concept"] == "red"].set_index("context")
    assert red["locations"].sum() == 6 * 16
    assert red.loc["gray", "success_rate"] == 1 and red.loc["gray", "added_pixels_mean"] == 16
    assert red.loc["blue", "success_rate"] == 1 and red.loc["blue", "added_pixels_mean"] == 16
    assert red.loc["red", "success_rate"] == 0 and red.loc["red", "added_pixels_mean"] == 0
    assert (wf.results / "gan" / "insertion.png").stat().st_size > 0

    # The same results for another chunking of the generated images (chunks of 15, 15 and 10 images against one
    # of 40), and a rerun does nothing.
    other = workflow_factory(_planted_config(tmp_path, chunk_size=40), name="other")
    other.run("gan")
    for name in ("dissect/gan.paint/units.csv", "gan/removal.csv", "gan/insertion.csv"):
        assert (wf.results / name).read_bytes() == (other.results / name).read_bytes(), name
    rerun = wf.run("gan")
    assert "Nothing to be done" in rerun.stdout + rerun.stderr
    _check_painting(wf.results, tmp_path)


def _check_painting(run, tmp_path):
    """netdissect paint on the planted run: red appears in exactly the cells the box touches, nothing else changes;
    --remove erases every red cell it covers; bad boxes and concepts are named."""
    from PIL import Image

    from netdissect.cli import main

    out = tmp_path / "paint.png"
    box = ["--box", "9", "17", "15", "23"]  # inside cell (row 2, column 1): pixels 16-23 x 8-15
    assert main(["paint", "--run", str(run), "--concept", "red", *box, "--seed", "3", "-o", str(out)]) == 0
    image = np.asarray(Image.open(out))
    before, after = image[:, :32], image[:, 36:]
    inside = np.zeros((32, 32), bool)
    inside[16:24, 8:16] = True
    assert (after[inside] == [255, 0, 0]).all()
    assert (before[~inside] == after[~inside]).all()
    mask, masked = tmp_path / "mask.png", tmp_path / "masked.png"
    Image.fromarray(inside.astype(np.uint8) * 255).save(mask)
    args = ["--concept", "red", "--mask", str(mask), "--seed", "3", "-o", str(masked)]
    assert main(["paint", "--run", str(run), *args]) == 0
    assert (np.asarray(Image.open(masked)) == image).all()  # the mask of that cell paints what the box did

    assert (
        main(
            ["paint", "--run", str(run), "--concept", "red", "--box", "0", "0", "32", "32", "--remove", "-o", str(out)]
        )
        == 0
    )
    image = np.asarray(Image.open(out))
    assert (image[:, :32] == [255, 0, 0]).all(-1).any() and not (image[:, 36:] == [255, 0, 0]).all(-1).any()

    from netdissect.gan.generators import GeneratorError
    from netdissect.gan.paint import Painter, box_region

    with pytest.raises(GeneratorError, match=r"--box 0 0 40 8 is not a box inside the 32x32 image"):
        box_region((0, 0, 40, 8), (32, 32))
    with pytest.raises(GeneratorError, match=r"--concept 'tree'.*known: blue, gray, red"):
        Painter.of_run(run).paint("tree", inside, 0)


@pytest.mark.workflow
def test_embedded_generator_is_trained_once_and_cached(workflow_factory):
    gan = {"activate": True, "epochs": 1, "width": 4, "images": 40, "intervention_images": 4, "insertion_grid": 2}
    wf = workflow_factory({"segmenter": {"kind": "trained"}, "gan": gan | {"concepts": ["sky"], "ks": [1]}})
    wf.run("gan")
    assert (wf.results / "gan" / "removal.csv").read_text().startswith("layer,concept,k,")
    samples = list((wf.folder / "results" / "cache").glob("generator-*/samples.png"))
    assert len(samples) == 1
    wf.set_config(wf.config | {"gan": wf.config["gan"] | {"concepts": ["tree"], "ks": [1, 2], "layers": ["layer2"]}})
    jobs = wf.dry_run_jobs("gan")
    assert "train_generator" not in jobs and "generate_chunk" not in jobs  # the images do not depend on the layers
    assert jobs["gan_activations"] == 2 and jobs["gan_interventions"] == 1
    wf.set_config(wf.config | {"gan": wf.config["gan"] | {"epochs": 2}})
    assert wf.dry_run_jobs("gan")["train_generator"] == 1


def test_gan_default_applies_only_where_a_generator_can_be_had_and_labelled(tmp_path):
    from pathlib import Path

    from netdissect.config import ConfigError, load_yaml, resolve_exclusive
    from netdissect.gan.plan import gan_plan

    defaults = load_yaml(Path(__file__).resolve().parents[1] / "config" / "config.yaml")

    def resolved(user: dict) -> dict:
        return resolve_exclusive(defaults, [("f", user)])

    assert resolved({})["gan"]["activate"]
    folder = {"dataset": {"kind": "imagefolder", "root": str(tmp_path)}}
    assert not resolved(folder)["gan"]["activate"]  # no generator to train there: the default is dropped
    assert not resolved({"segmenter": {"kind": "dataset"}})["gan"]["activate"]  # nothing to label images with
    assert resolved(folder | {"gan": {"factory": "gen.py:make"}, "segmenter": {"name": "fcn_resnet50"}})["gan"][
        "activate"
    ]
    with pytest.raises(ConfigError, match=r"'gan.factory': null trains the embedded generator.*'imagefolder'"):
        gan_plan(resolved(folder | {"gan": {"activate": True}, "segmenter": {"name": "fcn_resnet50"}}), (64, 64))
    with pytest.raises(ConfigError, match=r"'gan.activate': generated images have no labels"):
        gan_plan(resolved({"gan": {"activate": True}, "segmenter": {"kind": "dataset"}}), (64, 64))
    plan = gan_plan(resolved({"chunk_size": 300}), (64, 64))
    assert [c.name for c in plan.chunks] == [
        "gan-0000000-0000300",
        "gan-0000300-0000600",
        "gan-0000600-0000900",
        "gan-0000900-0001000",
    ]
    assert plan.layers == ("gan.layer3",) and plan.trained_here
    assert gan_plan(resolved({"gan": {"epochs": 3}}), (64, 64)).digest != plan.digest
    assert gan_plan(resolved({"gan": {"ks": [1]}}), (64, 64)).digest == plan.digest
