"""GAN stages: train the embedded generator, generate and segment a chunk of images, dump generator layers."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import numpy as np
import torch

from ..gan.generators import LatentSampler, load_generator, sampler_of, save_generator, to_uint8
from ..layout import GENERATOR_PREFIX
from ..progress import progress
from ..provenance import record
from ..stores import atomic_path, write_group, write_json
from .activations import Batch, _layer_of, dump_layers, padded
from .segment import load_segmenter, stack_planes, write_labels

log = logging.getLogger("netdissect.gan")
BATCH = 32  # latents per forward pass (fixed: results never depend on the chunk size)


def train_generator(job) -> None:
    """Train the embedded generator on the synthetic world's train split; save it, its metrics and samples."""
    from ..figures import image_grid
    from ..gan.training import train_gan
    from ..training import Schedule
    from .training import _images, _split

    p = job.params
    images = _images(_split(p.source, "train"), p.resize)
    schedule = Schedule(p.epochs, p.batch_size, p.lr, p.seed, threads=max(1, job.threads))
    generator, metrics = train_gan(images, schedule, p.latent_dim, p.width, log=log.info)
    with atomic_path(job.output.generator) as tmp:
        save_generator(generator, tmp)
    write_json(job.output.metrics, metrics)
    with torch.inference_mode():
        samples = to_uint8(generator(LatentSampler(p.seed, (p.latent_dim,))(range(32))), "signed")
    image_grid(samples, 8).savefig(job.output.samples, dpi=100)


def latent_batches(sampler: LatentSampler, start: int, stop: int) -> Iterator[Batch]:
    """Latents of rows [start, stop) in fixed-size batches (the last padded)."""
    for begin in range(start, stop, BATCH):
        rows = list(range(begin, min(begin + BATCH, stop)))
        yield Batch(padded(sampler(rows), BATCH), rows)


def generate_chunk(job) -> None:
    """Generate a chunk's images from their latents, store them, and label them with the segmenter."""
    p = job.params
    torch.set_num_threads(max(1, job.threads))
    generator = load_generator(p.gan, getattr(job.input, "generator", None))
    predict = load_segmenter(job)
    images, planes, image_ids = [], [], []
    batches = latent_batches(sampler_of(p.gan), p.start, p.stop)
    total = -(-(p.stop - p.start) // BATCH)
    for batch in progress(
        batches, total=total, what=f"generating rows {p.start}-{p.stop}", unit="batches", log=log.info
    ):
        with torch.inference_mode():
            made = to_uint8(generator(batch.inputs)[: len(batch.rows)], p.gan["output_range"])
        pl, ids = predict(made)
        images.append(made)
        planes.extend(pl)
        image_ids.extend(ids)
    rows = np.arange(p.start, p.stop, dtype=np.int64)
    inputs = {"generator": p.generator_digest, "latents": p.digest}
    attrs = {"provenance": record("generate", {"output_range": p.gan["output_range"]}, inputs)}
    write_group(job.output.images, {"images": np.concatenate(images), "rows": rows}, attrs, chunk_rows=BATCH)
    write_labels(job, stack_planes(planes, p.label_size), image_ids, rows.tolist(), None, [])
    log.info("generated and labelled %d images", len(rows))


def gan_activations(job) -> None:
    """Dump the chunk's generator layers (stores named gan.<module>) in one pass over its latents."""
    p = job.params
    torch.set_num_threads(max(1, job.threads))
    generator = load_generator(p.gan, getattr(job.input, "generator", None))
    outputs = {_layer_of(path).removeprefix(GENERATOR_PREFIX): path for path in job.output}
    settings = {"dtype": p.dtype, "batch_size": BATCH}

    def attributes(module: str) -> dict:
        layer = GENERATOR_PREFIX + module
        inputs = {"dataset": p.digest, "model": p.generator_digest, "layer": layer}
        return {"provenance": record("activations", settings, inputs), "skipped": [], "layer": layer}

    start = time.time()
    batches = latent_batches(sampler_of(p.gan), p.start, p.stop)
    empty = f"no latents in rows {p.start}-{p.stop}"
    device = torch.device("cpu")
    stored = dump_layers(generator, batches, outputs, p.stop - p.start, p.dtype, None, device, attributes, empty)
    log.info("%d latents, layers %s: %.1f s", stored, list(outputs), time.time() - start)
