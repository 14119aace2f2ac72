"""Painting with a dissected generator: switch a concept's units on (or off) inside a region of the feature map.

The region is a box or a mask in image pixels; the edited cells are those of the layer's grid whose footprint on
the image it touches. Units are the concept's top-k by IoU, set to their level from the dissection (or to zero).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..hooks import LayerHooks, UnitEdit
from ..layout import RunLayout
from .generators import GeneratorError, LatentSampler, layer_grid, load_generator, to_uint8


def write_painting(path: str, section: dict, generator_file: str | None, layers: dict[str, dict]) -> None:
    """What ``netdissect paint`` needs from a run: the generator, and per layer its units' levels and rankings.

    Args:
        path: the file, ``results/<run>/gan/painting.json``.
        section: the generator's config values (``netdissect.gan.plan.generator_section``).
        generator_file: the embedded generator's weights, or None; stored relative to the file's folder.
        layers: layer -> ``{"module", "levels": [per unit], "ranking": {concept: [units by IoU]}, "k"}``.
    """
    folder = Path(path).parent
    relative = os.path.relpath(generator_file, folder) if generator_file else None
    Path(path).write_text(json.dumps({"gan": section, "generator_file": relative, "layers": layers}, indent=1))


@dataclass(frozen=True)
class Painter:
    """A run's generator with the levels and rankings of its dissected layers."""

    generator: torch.nn.Module
    section: dict
    layers: dict[str, dict]

    @classmethod
    def of_run(cls, run: str | Path) -> Painter:
        """The painter of a finished run folder, ``results/<run>``."""
        file = Path(RunLayout(str(run)).gan_painting())
        if not file.is_file():
            raise GeneratorError(f"{file} not found: run the GAN dissection first (snakemake gan)")
        saved = json.loads(file.read_text())
        trained = str(file.parent / saved["generator_file"]) if saved["generator_file"] else None
        return cls(load_generator(saved["gan"], trained), saved["gan"], saved["layers"])

    def layer_for(self, concept: str, layer: str | None) -> str:
        """The given layer, or the first dissected layer that ranks units for the concept."""
        if layer is not None:
            if layer not in self.layers:
                raise GeneratorError(f"--layer {layer!r}: dissected generator layers are {', '.join(self.layers)}")
            if concept not in self.layers[layer]["ranking"]:
                raise GeneratorError(f"--concept {concept!r}: not a concept of layer {layer}")
            return layer
        for name, data in self.layers.items():
            if concept in data["ranking"]:
                return name
        known = sorted({c for data in self.layers.values() for c in data["ranking"]})
        raise GeneratorError(f"--concept {concept!r}: not a concept of the dissection (known: {', '.join(known)})")

    def image_size(self) -> tuple[int, int]:
        """The (H, W) of the generated images."""
        with torch.inference_mode():
            return tuple(self.generator(LatentSampler(0, tuple(self.section["latent_shape"]))([0])).shape[2:])

    def paint(
        self, concept: str, region: np.ndarray, seed: int, remove: bool = False, layer: str | None = None, k=None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Paint (or, with ``remove``, erase) a concept in the region of the image of latent ``seed``.

        Args:
            concept: the concept's name.
            region: bool (H, W) image-pixel mask of where to paint.
            seed: the latent is the first one of this seed.
            remove: set the units to zero instead of their level.
            layer: the generator layer to edit (default: the first that knows the concept).
            k: units to edit (default: the run's ``gan.insertion_k``).

        Returns:
            uint8 images (H, W, 3) before and after, and the edited cells, bool (h, w).
        """
        layer = self.layer_for(concept, layer)
        data = self.layers[layer]
        latent = LatentSampler(seed, tuple(self.section["latent_shape"]))([0])
        with torch.inference_mode():
            before = self.generator(latent)
        if region.shape != tuple(before.shape[2:]):
            h, w = before.shape[2:]
            raise GeneratorError(f"the region is {region.shape[0]}x{region.shape[1]}, the images are {h}x{w}")
        cells = region_cells(region, layer_grid(self.generator, data["module"], latent))
        if not cells.any():
            raise GeneratorError("the region is empty: it covers no pixel of the image")
        units = data["ranking"][concept][: k or data["k"]]
        value = 0.0 if remove else torch.tensor([data["levels"][u] for u in units], dtype=torch.float32)
        edit = UnitEdit(units, value, torch.from_numpy(cells))
        with LayerHooks(self.generator, edits={data["module"]: edit}) as hooks, torch.inference_mode():
            after = hooks.run(latent)
        output_range = self.section["output_range"]
        return to_uint8(before, output_range)[0], to_uint8(after, output_range)[0], cells


def region_cells(region: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """bool (h, w): the grid cells whose footprint on the image touches the region (H, W); sides must divide."""
    (height, width), (h, w) = region.shape, grid
    if height % h or width % w:
        raise GeneratorError(f"a {height}x{width} image does not split into the layer's {h}x{w} cells")
    return region.reshape(h, height // h, w, width // w).any((1, 3))


def box_region(box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """bool (H, W) mask of the box x0 y0 x1 y1 (pixels, x1 and y1 excluded), which must lie inside the image."""
    x0, y0, x1, y1 = box
    height, width = size
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise GeneratorError(
            f"--box {x0} {y0} {x1} {y1} is not a box inside the {width}x{height} image "
            f"(need 0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height})"
        )
    region = np.zeros(size, bool)
    region[y0:y1, x0:x1] = True
    return region
