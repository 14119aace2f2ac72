"""Gallery images: a unit's top images with the region where it fires above its threshold outlined.

The region is the tally's own definition of a unit's active pixels: the activation map upsampled with
:func:`netdissect.upsample.upsample` to the segmentation's resolution (H, W), strictly above t_u. A thumbnail shows
the image at an integer multiple f of that resolution, so every mask pixel covers an f x f block: the region stays
in full colour with its inner boundary drawn, the rest is dimmed.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from ..upsample import upsample

THUMBNAIL = 96  # thumbnails are at least this many pixels on their longer side (unless the masks are larger)
OUTLINE = np.array([255, 214, 0], np.uint8)  # boundary colour
GAP = 3  # white pixels between the thumbnails of a strip


def active_masks(maps: np.ndarray, thresholds: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Where each map's unit is active: upsampled value > t_u.

    Args:
        maps: (U, m, h, w) maps, m images per unit (float16 stores are read as float32, as the tally does).
        thresholds: (U,) float32 thresholds t_u.
        size: (H, W) the segmentation's resolution.

    Returns:
        (U, m, H, W) bool masks.
    """
    values = upsample(maps.astype(np.float32), size)
    return values > np.asarray(thresholds, np.float32)[:, None, None, None]


def scale_factor(size: tuple[int, int], target: int = THUMBNAIL) -> int:
    """The integer upscaling f of masks of ``size`` that makes a thumbnail at least ``target`` pixels long."""
    return max(1, math.ceil(target / max(size)))


def dimmed(image: np.ndarray) -> np.ndarray:
    """How an image looks outside the region: a third of its brightness."""
    return image // 3


def thumbnail(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An (h, w, 3) uint8 image resized bilinearly to (H, W)."""
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BILINEAR))


def outlined(base: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A thumbnail with a mask's region kept and its inner boundary drawn, the rest dimmed.

    Args:
        base: (f * H, f * W, 3) uint8 thumbnail of the image.
        mask: (H, W) bool region at the segmentation's resolution; each of its pixels covers an f x f block.

    Returns:
        (f * H, f * W, 3) uint8: pixels of the region unchanged (or the outline colour on its boundary), every
        other pixel ``dimmed``.
    """
    factor = base.shape[0] // mask.shape[0]
    region = mask.repeat(factor, 0).repeat(factor, 1)
    padded = np.pad(region, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    out = np.where(region[..., None], base, dimmed(base))
    out[region & ~interior] = OUTLINE
    return out


def strip(tiles: list[np.ndarray], gap: int = GAP) -> np.ndarray:
    """Thumbnails of one size side by side, ``gap`` white pixels apart."""
    height, width = tiles[0].shape[:2]
    out = np.full((height, len(tiles) * (width + gap) - gap, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        out[:, i * (width + gap) : i * (width + gap) + width] = tile
    return out
