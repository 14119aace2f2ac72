"""Activations stage: one forward pass over a chunk's images, dumping every requested layer to its own store."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ..plan import chunk_records
from ..provenance import record
from ..stores import GroupWriter
from . import StageError
from .images import Skipped, image_batches
from .modelspec import load_model, model_inputs

log = logging.getLogger("netdissect.activations")
FLOAT16_MAX = float(np.finfo(np.float16).max)


def _layer_of(path: str) -> str:
    """Activation stores live at <run>/activations/<layer>/<chunk>.zarr."""
    return Path(path).parent.name


def _check_values(name: str, values: np.ndarray, rows: list[int], dtype: str) -> None:
    """NaN/inf anywhere, or float16 overflow, is an error naming the layer and image."""
    per_image = values.reshape(len(values), -1)
    bad = ~np.isfinite(per_image).all(1)
    if bad.any():
        raise StageError(
            f"layer {name!r} produced NaN or infinite activations for dataset row {rows[int(np.argmax(bad))]}"
        )
    if dtype == "float16":
        big = (np.abs(per_image) > FLOAT16_MAX).any(1)
        if big.any():
            raise StageError(
                f"layer {name!r} has activations beyond the float16 range (+-{FLOAT16_MAX:g}) at dataset row "
                f"{rows[int(np.argmax(big))]}; set activations.dtype: float32"
            )


def activations_chunk(job) -> None:
    """Extract the chunk's activations of every layer named by the job's outputs, in one forward pass."""
    import torch

    p = job.params
    torch.set_num_threads(max(1, job.threads))
    layers = [_layer_of(path) for path in job.output]
    model, device, normalise = load_model(p.model, model_inputs(job), p.device)
    from ..fusion import fold_batch_norms
    from ..hooks import LayerHooks

    folded = fold_batch_norms(model, set(layers))
    log.info("folded %d batch norms into their convolutions", len(folded))

    records = chunk_records(p.source, p.start, p.stop)
    skipped = Skipped()
    writers = {layer: GroupWriter(path) for layer, path in zip(layers, job.output)}
    arrays: dict[str, object] = {}
    rows: list[int] = []
    start = time.time()
    try:
        precision = getattr(torch, p.autocast) if p.autocast else None
        autocast = torch.autocast(device.type, precision, enabled=precision is not None)
        with LayerHooks(model, capture=layers, stop_after_capture=True) as hooks, torch.inference_mode(), autocast:
            for images, kept in image_batches(
                records, p.batch_size, p.image_size, p.resize, p.skip_bad_images, skipped
            ):
                if not kept:
                    continue
                batch = normalise(images)
                pad = p.batch_size - len(batch)  # fixed batch shape: results do not depend on chunk size
                if pad:
                    batch = torch.cat([batch, batch[-1:].expand(pad, *batch.shape[1:])])
                hooks.run(batch.to(device))
                batch_rows = [r.index for r in kept]
                for layer in layers:
                    values = hooks.captured[layer][: len(kept)].float().cpu().numpy()
                    _check_values(layer, values, batch_rows, p.dtype)
                    if layer not in arrays:
                        shape = (len(records),) + values.shape[1:]
                        arrays[layer] = writers[layer].create("activations", shape, p.dtype, p.batch_size)
                    arrays[layer][len(rows) : len(rows) + len(kept)] = values.astype(p.dtype)
                rows.extend(batch_rows)
        if not rows:
            raise StageError(f"no readable images in rows {p.start}-{p.stop} of {p.source['root']}")
        for layer in layers:
            if len(rows) < len(records):
                arrays[layer].resize((len(rows),) + arrays[layer].shape[1:])
            writers[layer].group.create_array("rows", data=np.array(rows, np.int64))
            writers[layer].commit(
                {
                    "provenance": record(
                        "activations",
                        {
                            "dtype": p.dtype,
                            "batch_size": p.batch_size,
                            "image_size": p.image_size,
                            "autocast": p.autocast,
                        },
                        {"dataset": p.digest, "model": p.model["digest"], "layer": layer},
                    ),
                    "skipped": skipped.entries,
                    "layer": layer,
                }
            )
    except BaseException as error:
        for writer in writers.values():
            writer.abort(error)
        raise
    seconds = time.time() - start
    log.info("%d images, layers %s: %.1f s (%.1f images/s)", len(rows), layers, seconds, len(rows) / max(seconds, 1e-9))
