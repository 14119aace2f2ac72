"""Write the synthetic world to disk in the Broden dataset format.

Layout under ``root``::

    images/synthetic/<split>/<index:06d>.png             RGB image
    images/synthetic/<split>/<index:06d>_<category>.png  label PNG, id = R + 256 G
    index.csv  label.csv  c_<category>.csv

The folder is built next to ``root`` and moved into place when complete.
"""

import csv
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ..progress import progress
from .render import Sample, render_sample
from .vocabulary import (
    CATEGORIES,
    CONCEPTS,
    IMAGE_CATEGORIES,
    PIXEL_CATEGORIES,
    category_concepts,
)

INDEX_HEADER = ["image", "split", "ih", "iw", "sh", "sw", *PIXEL_CATEGORIES, *IMAGE_CATEGORIES]


class _Stats:
    """Per-concept image counts and labelled pixels over the world (integers: the sum is the same in any order)."""

    def __init__(self) -> None:
        """Start with zero counts for every concept."""
        n = len(CONCEPTS) + 1
        self.frequency = np.zeros(n, np.int64)
        self.pixels = np.zeros(n, np.int64)
        self.plane_pixels = 1

    def add(self, pixels: np.ndarray, image_concepts: tuple[int, int], plane_pixels: int) -> None:
        """Count the concepts of one sample.

        Args:
            pixels: int (P, n) pixels of every concept in each of the sample's label planes.
            image_concepts: its scene and texture ids (0: none).
            plane_pixels: pixels of one label plane.
        """
        self.frequency += (pixels > 0).sum(0)
        self.pixels += pixels.sum(0)
        self.plane_pixels = plane_pixels
        for concept in image_concepts:
            self.frequency[concept] += 1
        self.frequency[0] = 0

    def mean_coverage(self, concept: int) -> float:
        """Mean image fraction covered by a concept over the images holding it.

        Args:
            concept: concept id.

        Returns:
            The mean fraction (0 for image-level concepts and absent ones).
        """
        count = self.frequency[concept]
        return float(self.pixels[concept] / self.plane_pixels / count) if count else 0.0


def _label_png(plane: np.ndarray) -> Image.Image:
    """Encode a label plane as an RGB image with id = R + 256 * G."""
    rgb = np.zeros((*plane.shape, 3), np.uint8)
    rgb[..., 0] = plane & 0xFF
    rgb[..., 1] = plane >> 8
    return Image.fromarray(rgb, "RGB")


def _write_sample(images: Path, stem: str, sample: Sample) -> dict[str, str]:
    """Write a sample's PNGs.

    Args:
        images: the world's ``images`` folder.
        stem: image path relative to ``images``, without ``.png``.
        sample: rendered sample.

    Returns:
        Index cells of the pixel categories (relative label paths, or empty).
    """
    Image.fromarray(sample.image, "RGB").save(images / f"{stem}.png", compress_level=1)
    cells = {}
    for cat in PIXEL_CATEGORIES:
        plane = sample.planes[cat]
        cells[cat] = f"{stem}_{cat}.png" if plane.any() else ""
        if cells[cat]:
            _label_png(plane).save(images / cells[cat], compress_level=1)
    return cells


def _write_row(task: tuple[Path, int, int, int, int]) -> tuple[list, np.ndarray, tuple[int, int], int]:
    """Render one row and write its PNGs.

    Args:
        task: (the world's ``images`` folder, seed, row, image size, number of training rows).

    Returns:
        The row of index.csv, the per-plane concept pixel counts, the image-level concepts and the plane size.
    """
    images, seed, index, size, train_images = task
    split = "train" if index < train_images else "val"
    stem = f"synthetic/{split}/{index:06d}"
    sample = render_sample(seed, index, size)
    cells = _write_sample(images, stem, sample)
    sh, sw = sample.planes["color"].shape
    row = [f"{stem}.png", split, size, size, sh, sw, *(cells[cat] for cat in PIXEL_CATEGORIES)]
    row += [sample.scene, sample.texture or ""]
    pixels = np.stack([np.bincount(plane.ravel(), minlength=len(CONCEPTS) + 1) for plane in sample.planes.values()])
    return row, pixels, (sample.scene, sample.texture), sh * sw


def _write_images(
    folder: Path, seed: int, train_images: int, val_images: int, size: int, workers: int, log: Callable
) -> _Stats:
    """Render every row, write its PNGs and index.csv.

    Args:
        folder: world folder being built.
        seed: world seed.
        train_images: number of training rows.
        val_images: number of validation rows.
        size: image size in pixels.
        workers: processes rendering rows (rows come back in order, so the files never depend on it).
        log: receives progress lines.

    Returns:
        Concept statistics of the world.
    """
    images = folder / "images"
    for split in ("train", "val"):
        (images / "synthetic" / split).mkdir(parents=True)
    stats = _Stats()
    rows = train_images + val_images
    tasks = [(images, seed, index, size, train_images) for index in range(rows)]
    with open(folder / "index.csv", "w", newline="") as f, ProcessPoolExecutor(workers) as pool:
        writer = csv.writer(f)
        writer.writerow(INDEX_HEADER)
        written = pool.map(_write_row, tasks, chunksize=32) if workers > 1 else map(_write_row, tasks)
        for row, pixels, image_concepts, plane_pixels in progress(
            written, total=rows, what="world", unit="images", log=log
        ):
            writer.writerow(row)
            stats.add(pixels, image_concepts, plane_pixels)
    return stats


def _write_labels(folder: Path, stats: _Stats) -> None:
    """Write label.csv and one c_<category>.csv per category.

    Args:
        folder: world folder being built.
        stats: concept statistics of the world.
    """
    with open(folder / "label.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["number", "name", "category", "frequency", "coverage", "syns"])
        for c in CONCEPTS:
            freq = int(stats.frequency[c.id])
            coverage = f"{stats.mean_coverage(c.id):.6f}"
            writer.writerow([c.id, c.label, f"{c.category}({freq})", freq, coverage, ""])
    for category in CATEGORIES:
        with open(folder / f"c_{category}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["code", "number", "name", "frequency", "coverage"])
            for code, c in enumerate(category_concepts(category), 1):
                writer.writerow([code, c.id, c.label, int(stats.frequency[c.id]), f"{stats.mean_coverage(c.id):.6f}"])


def write_world(
    root: Path,
    seed: int,
    train_images: int,
    val_images: int,
    image_size: int,
    workers: int = 1,
    log: Callable[[str], object] = print,
) -> None:
    """Generate the synthetic world and write it atomically as a Broden folder.

    Row ``i`` (train rows first, then val rows) is ``render_sample(seed, i,
    image_size)``. Coverage in the label tables is the mean image fraction a
    concept covers over the images that contain it.

    Args:
        root: destination folder; must not exist yet.
        seed: world seed.
        train_images: number of training images.
        val_images: number of validation images.
        image_size: image width and height in pixels (even).
        workers: processes rendering rows; the files are the same for any number.
        log: receives progress lines (images written, total, time left).

    Raises:
        FileExistsError: if ``root`` already exists.
    """
    root = Path(root)
    if root.exists():
        raise FileExistsError(root)
    if image_size % 2:
        raise ValueError(f"image_size must be even, got {image_size}")
    tmp = root.parent / f"{root.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        stats = _write_images(tmp, seed, train_images, val_images, image_size, workers, log)
        _write_labels(tmp, stats)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
