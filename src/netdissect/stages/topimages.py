"""Top images stage: one chunk's top-k images per unit by peak activation (a light chunk job: numpy and zarr only,
no plotting or templates)."""

from __future__ import annotations

import numpy as np

from .. import topk
from ..provenance import record
from ..stores import open_group, provenance, save_state

READ_BATCH = 64  # images per read of an activation store


def top_images_chunk(job) -> None:
    """The top-k images per unit of one chunk's activation store, by peak activation."""
    group = open_group(job.input.acts)
    acts, rows = group["activations"], group["rows"][:]
    batches = [topk.peaks(acts[i : i + READ_BATCH]) for i in range(0, acts.shape[0], READ_BATCH)]
    state = topk.top_k(np.concatenate(batches), rows, job.params.k)
    prov = record("top_images", {"k": job.params.k}, provenance(group)["inputs"])
    save_state(job.output.top, {"peaks": state.peaks, "rows": state.rows}, {"provenance": prov})
