"""Decoding a chunk's images in batches on a background thread, skipping or rejecting bad ones."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..datasets import DatasetError, Record, load_image
from . import StageError

log = logging.getLogger("netdissect.images")


@dataclass
class Skipped:
    """Images left out of a chunk, with the reason (recorded in the chunk's outputs)."""

    entries: list[dict] = field(default_factory=list)

    def add(self, record: Record, reason: str) -> None:
        log.warning("skipping row %d (%s): %s", record.index, record.image, reason)
        self.entries.append({"row": record.index, "image": str(record.image), "reason": reason})


def _decode(records: list[Record], size: tuple[int, int], resize, skip: bool, skipped: Skipped):
    images, kept = [], []
    for record in records:
        try:
            image = load_image(record.image, resize)
        except DatasetError as error:
            if not skip:
                raise StageError(f"{error} (set dataset.skip_bad_images: true to skip bad images)") from error
            skipped.add(record, str(error))
            continue
        if image.shape[:2] != tuple(size):
            message = f"image {record.image} is {image.shape[0]}x{image.shape[1]}, expected {size[0]}x{size[1]}"
            if not skip:
                raise StageError(f"{message}; set dataset.resize to dissect images of different sizes")
            skipped.add(record, message)
            continue
        images.append(image)
        kept.append(record)
    empty = np.zeros((0, size[0], size[1], 3), np.uint8)
    return (np.stack(images) if images else empty), kept


def image_batches(
    records: list[Record], batch_size: int, size: tuple[int, int], resize, skip: bool, skipped: Skipped
) -> Iterator[tuple[np.ndarray, list[Record]]]:
    """Yield (uint8 images (n, H, W, 3), their records) per batch, decoding the next batch in the background.

    Args:
        records: the chunk's records.
        batch_size: records per batch (a batch may come out smaller when images are skipped).
        size: the (H, W) every image must have after resizing.
        resize: (H, W) to resize to, or None.
        skip: skip bad images (recording them in ``skipped``) instead of failing.
        skipped: collects skipped images.
    """
    batches = [records[i : i + batch_size] for i in range(0, len(records), batch_size)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(_decode, batches[0], size, resize, skip, skipped) if batches else None
        for index in range(len(batches)):
            images, kept = pending.result()
            if index + 1 < len(batches):
                pending = pool.submit(_decode, batches[index + 1], size, resize, skip, skipped)
            yield images, kept
