"""Generators as the dissection sees them: seeded latents, images in [0, 1], and the checks a loaded one must pass.

A generator is any torch module mapping a latent batch (N, *latent_shape) to images (N, 3, H, W) with values in
[-1, 1] or [0, 1] (``output_range``). Latent row i is drawn from its own seeded stream, so it is the same on every
run, in every chunk job, whatever the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import NetdissectError

RANGES = {"signed": (-1.0, 1.0), "unit": (0.0, 1.0)}  # gan.output_range values
_LATENT_STREAM = 104729  # seed word that keeps latent streams apart from every other seeded draw


class GeneratorError(NetdissectError):
    """A generator, its latents or an intervention on it does not fit (the message names the key)."""


@dataclass(frozen=True)
class LatentSampler:
    """Standard normal latents, one seeded stream per row.

    Attributes:
        seed: the run's latent seed.
        shape: shape of one latent (without the batch dimension).
    """

    seed: int
    shape: tuple[int, ...]

    def __call__(self, rows: Sequence[int]) -> torch.Tensor:
        """Latents (len(rows), *shape) of the given dataset rows."""
        out = torch.empty((len(rows),) + self.shape)
        for i, row in enumerate(rows):
            stream = torch.Generator().manual_seed(
                int(np.random.SeedSequence([self.seed, _LATENT_STREAM, row]).generate_state(1)[0])
            )
            out[i] = torch.randn(self.shape, generator=stream)
        return out


def to_unit(images: torch.Tensor, output_range: str) -> torch.Tensor:
    """A generator's output mapped to [0, 1] (clamped)."""
    low, high = RANGES[output_range]
    return ((images - low) / (high - low)).clamp(0, 1)


def to_uint8(images: torch.Tensor, output_range: str) -> np.ndarray:
    """A generator's output (N, 3, H, W) as uint8 images (N, H, W, 3), the dataset images' format."""
    unit = to_unit(images.detach().float().cpu(), output_range)
    return (unit * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def check_generator(
    generator: nn.Module, sampler: LatentSampler, output_range: str, size: tuple[int, int] | None, rows: int = 3
) -> tuple[int, int]:
    """Check a generator on a few latents before any chunk job runs.

    Args:
        generator: the module, in eval mode.
        sampler: its latent sampler; the generator must make the same images twice from its latents.
        output_range: ``signed`` ([-1, 1]) or ``unit`` ([0, 1]); values beyond it by more than 1e-3 are an error.
        size: the (H, W) the images must have, or None for any.
        rows: how many latents to try.

    Returns:
        The (H, W) of the generated images.
    """
    latents = sampler(range(rows))
    with torch.inference_mode():
        try:
            images, again = generator(latents), generator(latents)
        except Exception as exc:
            raise GeneratorError(
                f"gan.latent_shape {list(sampler.shape)}: the generator fails on latents of shape "
                f"{tuple(latents.shape)}: {exc!r}"
            ) from exc
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[:2] != (rows, 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise GeneratorError(f"gan.factory: the generator returned {shape} for {rows} latents, not ({rows}, 3, H, W)")
    found = tuple(images.shape[2:])
    if size is not None and found != tuple(size):
        raise GeneratorError(f"gan.factory: the generator makes {found[0]}x{found[1]} images, not {size[0]}x{size[1]}")
    if not torch.equal(images, again):
        raise GeneratorError(
            "gan.factory: the generator makes different images from the same latents (random "
            "layers in eval mode?); its images must be a function of the latent"
        )
    low, high = RANGES[output_range]
    if not torch.isfinite(images).all() or images.min() < low - 1e-3 or images.max() > high + 1e-3:
        raise GeneratorError(
            f"gan.output_range {output_range!r} is [{low:g}, {high:g}], but the generator's values span "
            f"[{float(images.min()):.3g}, {float(images.max()):.3g}]"
        )
    return found


def save_generator(generator: nn.Module, path) -> None:
    """Save the embedded generator: its constructor arguments and weights."""
    torch.save({"arch": generator.arch, "state": generator.state_dict()}, path)


def load_generator(section: dict, trained: str | None) -> nn.Module:
    """The generator of a run's ``gan`` section, in eval mode.

    Args:
        section: the config's ``gan`` section (``factory``, ``factory_args``, ``weights``, ``allow_pickle``).
        trained: the embedded generator's file (when ``factory`` is null).
    """
    from ..architectures import Generator
    from ..models import build_factory, load_weights

    if section["factory"] is None:
        saved = torch.load(trained, map_location="cpu", weights_only=True)
        generator = Generator(**saved["arch"])
        generator.load_state_dict(saved["state"])
    else:
        generator = build_factory(section["factory"], section["factory_args"], key="gan.factory")
        if section["weights"] is not None:
            load_weights(generator, section["weights"], allow_pickle=section["allow_pickle"])
    return generator.eval()


def sampler_of(section: dict) -> LatentSampler:
    """The latent sampler of a run's ``gan`` section."""
    return LatentSampler(int(section["seed"]), tuple(section["latent_shape"]))


def check_gan(section: dict, modules: list[str], image_size: tuple[int, int], known_concepts: list[str] | None) -> None:
    """Check a run's generator before any job: its layers exist, its images fit, its concepts are known.

    Args:
        section: the config's ``gan`` section.
        modules: the generator modules to dissect.
        image_size: the (H, W) the generated images must have.
        known_concepts: the concept names the segmenter can emit (None: not known before labelling).
    """
    from ..architectures import Generator
    from ..models import ModelError, resolve_layers

    if section["factory"] is None:
        torch.manual_seed(0)
        generator = Generator(section["latent_shape"][0], section["width"], image_size[0]).eval()
    else:
        generator = load_generator(section, None)
    try:
        resolve_layers(generator, modules)
    except ModelError as error:
        raise GeneratorError(f"config key 'gan.layers': {error}") from error
    check_generator(generator, sampler_of(section), section["output_range"], image_size)
    unknown = [c for c in section["concepts"] or [] if known_concepts is not None and c not in known_concepts]
    if unknown:
        raise GeneratorError(
            f"config key 'gan.concepts': the segmenter knows no concept {unknown[0]!r} "
            f"(it knows {', '.join(known_concepts[:30])}{' ...' if len(known_concepts) > 30 else ''})"
        )


def layer_grid(generator: nn.Module, module: str, latent: torch.Tensor) -> tuple[int, int]:
    """The (h, w) of a generator module's output, from one pass that stops there."""
    from ..hooks import LayerHooks

    with LayerHooks(generator, capture=[module], stop_after_capture=True) as hooks, torch.inference_mode():
        hooks.run(latent)
    return tuple(hooks.captured[module].shape[2:])
