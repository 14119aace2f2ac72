"""Data stage: write the synthetic world, and the index of the images a run dissects."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from ..datasets import check_files
from ..plan import describe_missing, describe_selection, open_source, split_counts
from ..synthetic import write_world
from ..tables import write_run_index
from . import StageError

log = logging.getLogger("netdissect.data")


def synthesize(job) -> None:
    """Write the synthetic world (a Broden-format folder) with its train and val splits."""
    p = job.params
    start = time.time()
    write_world(Path(job.output.world), p.seed, p.train_images, p.val_images, p.image_size, job.threads, log.info)
    log.info("wrote %d images in %.1f s", p.train_images + p.val_images, time.time() - start)


def data_index(job) -> None:
    """Write the index of the selected images (row, image, split), after checking that every file exists."""
    p = job.params
    records = open_source(p.source).records(p.source["split"], p.size)
    problems = check_files(records)
    if problems and not p.skip_bad_images:
        raise StageError(describe_missing(problems))
    table = pd.DataFrame(
        {
            "row": [r.index for r in records],
            "image": [str(r.image) for r in records],
            "split": [r.split for r in records],
        }
    )
    write_run_index(job.output.index, table)
    selection = {"images": len(records), "splits": split_counts(r.split for r in records)}
    split = p.source["split"] or "all"
    log.info("%s selected (split: %s), %d with missing files", describe_selection(selection), split, len(problems))
