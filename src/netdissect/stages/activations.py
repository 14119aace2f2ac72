"""Activations stage: one forward pass over a chunk's images, dumping every requested layer to its own store."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..modelspec import ModelSpec
from ..plan import chunk_records
from ..progress import progress
from ..provenance import record
from ..stores import GroupWriter
from . import StageError
from .images import Skipped, image_batches
from .thresholds import CoarseRound

log = logging.getLogger("netdissect.activations")
FLOAT16_MAX = float(np.finfo(np.float16).max)


def _layer_of(path: str) -> str:
    """Activation stores live at <run>/activations/<layer>/<chunk>.zarr."""
    return Path(path).parent.name


def layer_outputs(output) -> tuple[dict[str, str], dict[str, str]]:
    """A dump job's outputs by layer: its stores (``output.stores``) and round-1 states (``output.coarse``), one
    or a list of each, in the same layer order."""
    stores, states = output.stores, output.coarse
    stores, states = ([stores], [states]) if isinstance(stores, str) else (list(stores), list(states))
    return {_layer_of(path): path for path in stores}, {_layer_of(path): state for path, state in zip(stores, states)}


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


@dataclass(frozen=True)
class Batch:
    """One forward pass's input from a batch source.

    Attributes:
        inputs: the network's input, padded to the fixed batch size (results never depend on chunk size).
        rows: dataset rows of the first ``len(rows)`` inputs; the rest is padding.
    """

    inputs: torch.Tensor
    rows: list[int]


def padded(inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
    """A batch filled up to ``batch_size`` by repeating its last input."""
    pad = batch_size - len(inputs)
    return torch.cat([inputs, inputs[-1:].expand(pad, *inputs.shape[1:])]) if pad else inputs


def image_source(records, p, normalise, skipped: Skipped) -> Iterator[Batch]:
    """Batch source of stored images: decoded in the background, normalised, padded."""
    for images, kept in image_batches(records, p.batch_size, p.image_size, p.resize, p.skip_bad_images, skipped):
        if kept:
            yield Batch(padded(normalise(images), p.batch_size), [r.index for r in kept])


def dump_layers(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    outputs: dict[str, str],
    capacity: int,
    dtype: str,
    autocast: str | None,
    device: torch.device,
    attributes: Callable[[str], dict],
    empty: str,
    coarse: dict[str, str] | None = None,
    label_size: tuple[int, int] | None = None,
) -> int:
    """Run every batch through the model and store the captured layers, one store per layer.

    Args:
        model: the prepared network.
        batches: the batch source.
        outputs: layer -> store path; each store gets ``activations`` (n, C, h, w) and ``rows`` (n,).
        capacity: most rows the source can yield (stores shrink to the rows seen).
        dtype: storage dtype; values are checked (finite, and within float16's range for float16).
        autocast: None, or the torch dtype name to run the forward pass under.
        device: where the model runs.
        attributes: layer -> the store's attributes (provenance), written when it is complete.
        empty: the error message when the source yields no rows (nothing is then written).
        coarse: layer -> path of the threshold's round-1 state, computed from the values as stored (the state a
            threshold job would compute from the store, without reading it again).
        label_size: (H, W) of the label maps (needed with ``coarse``).

    Returns:
        The number of rows stored.
    """
    from ..hooks import LayerHooks

    layers = list(outputs)
    writers = {layer: GroupWriter(path) for layer, path in outputs.items()}
    rounds = {layer: CoarseRound(label_size) for layer in coarse or {}}
    arrays: dict[str, object] = {}
    rows: list[int] = []
    try:
        precision = getattr(torch, autocast) if autocast else None
        autocasting = torch.autocast(device.type, precision, enabled=precision is not None)
        with LayerHooks(model, capture=layers, stop_after_capture=True) as hooks, torch.inference_mode(), autocasting:
            for batch in batches:
                hooks.run(batch.inputs.to(device))
                for layer in layers:
                    values = hooks.captured[layer][: len(batch.rows)].float().cpu().numpy()
                    _check_values(layer, values, batch.rows, dtype)
                    if layer not in arrays:
                        shape = (capacity,) + values.shape[1:]
                        arrays[layer] = writers[layer].create("activations", shape, dtype, len(batch.inputs))
                    stored = values.astype(dtype)
                    arrays[layer][len(rows) : len(rows) + len(batch.rows)] = stored
                    if layer in rounds:
                        rounds[layer].add(stored.astype(np.float32, copy=False))
                rows.extend(batch.rows)
        if not rows:
            raise StageError(empty)
        for layer in layers:
            if len(rows) < capacity:
                arrays[layer].resize((len(rows),) + arrays[layer].shape[1:])
            writers[layer].group.create_array("rows", data=np.array(rows, np.int64))
            attrs = attributes(layer)
            writers[layer].commit(attrs)
            if layer in rounds:
                rounds[layer].save(coarse[layer], attrs["provenance"]["inputs"])
    except BaseException as error:
        for writer in writers.values():
            writer.abort(error)
        raise
    return len(rows)


def activations_chunk(job) -> None:
    """Extract the chunk's activations of every layer named by the job's outputs, in one forward pass."""
    from ..fusion import fold_batch_norms
    from ..models import load_model

    p = job.params
    torch.set_num_threads(max(1, job.threads))
    outputs, coarse = layer_outputs(job.output)
    spec = ModelSpec.from_config(p.model)
    model, device, normalise = load_model(spec, getattr(job.input, "weights", None), p.device)
    folded = fold_batch_norms(model, set(outputs))
    log.info("folded %d batch norms into their convolutions", len(folded))

    records = chunk_records(p.source, p.start, p.stop)
    skipped = Skipped()
    settings = {"dtype": p.dtype, "batch_size": p.batch_size, "image_size": p.image_size, "autocast": p.autocast}

    def attributes(layer: str) -> dict:
        inputs = {"dataset": p.digest, "model": spec.digest, "layer": layer}
        return {"provenance": record("activations", settings, inputs), "skipped": skipped.entries, "layer": layer}

    start = time.time()
    batches = -(-len(records) // p.batch_size)
    what = f"activations of rows {p.start}-{p.stop}"
    source = progress(
        image_source(records, p, normalise, skipped), total=batches, what=what, unit="batches", log=log.info
    )
    empty = f"no readable images in rows {p.start}-{p.stop} of {p.source['root']}"
    stored = dump_layers(
        model, source, outputs, len(records), p.dtype, p.autocast, device, attributes, empty, coarse, p.label_size
    )
    seconds = time.time() - start
    log.info(
        "%d images, layers %s: %.1f s (%.1f images/s)", stored, list(outputs), seconds, stored / max(seconds, 1e-9)
    )
