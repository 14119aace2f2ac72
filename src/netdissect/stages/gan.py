"""GAN stages: train the embedded generator, generate and segment a chunk of images, dump generator layers."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import torch

from ..gan.generators import LatentSampler, layer_grid, load_generator, sampler_of, save_generator, to_uint8
from ..gan.paint import Painter, write_painting
from ..layout import GENERATOR_PREFIX
from ..progress import progress
from ..provenance import record
from ..stores import atomic_path, write_group, write_json
from .activations import Batch, dump_layers, layer_outputs, padded
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
    stores, states = layer_outputs(job.output)
    outputs = {layer.removeprefix(GENERATOR_PREFIX): path for layer, path in stores.items()}
    coarse = {layer.removeprefix(GENERATOR_PREFIX): path for layer, path in states.items()}
    settings = {"dtype": p.dtype, "batch_size": BATCH}

    def attributes(module: str) -> dict:
        layer = GENERATOR_PREFIX + module
        inputs = {"dataset": p.digest, "model": p.generator_digest, "layer": layer}
        return {"provenance": record("activations", settings, inputs), "skipped": [], "layer": layer}

    start = time.time()
    batches = latent_batches(sampler_of(p.gan), p.start, p.stop)
    empty = f"no latents in rows {p.start}-{p.stop}"
    device = torch.device("cpu")
    stored = dump_layers(
        generator, batches, outputs, p.stop - p.start, p.dtype, None, device, attributes, empty, coarse, p.label_size
    )
    log.info("%d latents, layers %s: %.1f s", stored, list(outputs), time.time() - start)


class Renderer:
    """Generate images from latents under layer edits, and label them with the segmenter, in fixed batches."""

    def __init__(self, generator: torch.nn.Module, predict, output_range: str) -> None:
        self.generator, self.predict, self.output_range = generator, predict, output_range

    def __call__(self, latents: torch.Tensor, module: str | None = None, edit=None, masks=None):
        """(uint8 images (N, H, W, 3), label planes (N, P, h, w)) of the latents, the module's units edited.

        Args:
            latents: (N, *latent_shape).
            module: the edited module, with ``edit`` (a UnitEdit) applied to every image, or None.
            edit: the edit.
            masks: optional (N, h, w) masks, one per latent, replacing the edit's mask.
        """
        from ..hooks import LayerHooks

        images, planes = [], []
        for begin in range(0, len(latents), BATCH):
            end = min(begin + BATCH, len(latents))
            with torch.inference_mode():
                if edit is None:
                    out = self.generator(latents[begin:end])
                else:
                    batch_edit = edit if masks is None else replace(edit, mask=masks[begin:end])
                    with LayerHooks(self.generator, edits={module: batch_edit}) as hooks:
                        out = hooks.run(latents[begin:end])
            made = to_uint8(out, self.output_range)
            images.append(made)
            planes.append(self.predict(made)[0])
        return np.concatenate(images), np.concatenate(planes)


def gan_interventions(job) -> None:
    """Remove and insert each chosen concept's units in every generator layer; write the tables and figures."""
    import pandas as pd

    from ..ablation import iou_ranking
    from ..figures import image_grid, insertion_figure
    from ..gan import interventions as iv
    from ..hooks import UnitEdit
    from ..stores import write_csv
    from ..tables import read_concepts, read_thresholds, read_units
    from ..tallystore import read_layer_iou

    p = job.params
    torch.set_num_threads(max(1, job.threads))
    concepts = read_concepts(job.input.concepts)
    names = dict(zip(concepts["id"], concepts["name"]))
    by_name = {n: (int(i), c) for i, n, c in concepts[["id", "name", "category"]].itertuples(index=False)}
    categories = p.pixel_categories or sorted(set(concepts["category"]))
    plane = {c: categories.index(c) if p.pixel_categories else 0 for c in categories}
    render = Renderer(
        load_generator(p.gan, getattr(job.input, "generator", None)), load_segmenter(job), p.gan["output_range"]
    )
    latents = sampler_of(p.gan)(range(p.images))
    base_images, base_planes = render(latents)
    removals, insertions, grids, painting, chosen_by_layer = [], [], [], {}, {}
    pixel_concepts = concepts[concepts["category"].isin(categories)]
    for module, units_csv, tally, thresholds in zip(p.modules, job.input.units, job.input.tally, job.input.thresholds):
        layer = GENERATOR_PREFIX + module
        units = read_units(units_csv)
        iou, _, _ = read_layer_iou(tally, concepts["id"].to_numpy())
        chosen = p.concepts or iv.chosen_concepts(units, set(categories), 3)
        chosen_by_layer[layer] = chosen
        levels = torch.as_tensor(
            read_thresholds(thresholds).sort_values("unit")["threshold"].to_numpy(), dtype=torch.float32
        )
        rankings = {n: iou_ranking(iou[:, i]).tolist() for i, n in zip(pixel_concepts["id"], pixel_concepts["name"])}
        painting[layer] = {"module": module, "levels": levels.tolist(), "ranking": rankings, "k": p.insertion_k}
        for name in chosen:
            cid, category = by_name[name]
            order = iou_ranking(iou[:, cid])
            before = base_planes[:, plane[category]]
            for k in p.ks:
                images, planes = render(latents, module, UnitEdit(order[:k].tolist(), 0.0))
                effect = iv.removal_effect(before, planes[:, plane[category]], cid)
                removals.append(
                    (
                        layer,
                        name,
                        k,
                        effect.fraction_before,
                        effect.fraction_after,
                        effect.other_changed,
                        names.get(effect.top_replacement, "none"),
                    )
                )
            grids.append((f"{layer} {name}: top {k} removed", base_images[:8], images[:8]))
            insertions.extend(
                _insertion(render, latents, module, order[: p.insertion_k], levels, before, plane[category], cid, p)
                .assign(layer=layer, concept=name, k=p.insertion_k)
                .itertuples(index=False)
            )
    removal = pd.DataFrame(
        removals,
        columns=["layer", "concept", "k", "fraction_before", "fraction_after", "other_changed", "top_replacement"],
    )
    write_csv(job.output.removal, removal)
    table = pd.DataFrame(insertions, columns=["context", "added", "success", "layer", "concept", "k"])
    table["context"] = [names.get(c, "none") for c in table["context"]]
    summary = (
        table.groupby(["layer", "concept", "k", "context"], sort=True)
        .agg(locations=("added", "size"), added_pixels_mean=("added", "mean"), success_rate=("success", "mean"))
        .reset_index()
    )
    write_csv(job.output.insertion, summary)
    insertion_figure(summary).savefig(job.output.insertion_figure, dpi=100)
    shown = [image for _, before, after in grids for image in (*before, *after)]
    titles = [title if i == 0 else "" for title, before, _ in grids for i in range(2 * len(before))]
    image_grid(np.stack(shown) if shown else np.zeros((0, 1, 1, 3), np.uint8), 8, titles).savefig(
        job.output.removal_figure, dpi=100
    )
    write_painting(job.output.painting, p.gan, getattr(job.input, "generator", None), painting)
    painter = Painter(render.generator, p.gan, painting)
    layer, concepts_shown = next(iter(chosen_by_layer.items()))
    _gallery(painter, layer, concepts_shown).savefig(job.output.paintings, dpi=100)
    log.info("removal: %d rows; insertion: %d locations", len(removal), len(table))


def _insertion(render, latents, module, units, levels, before, plane: int, cid: int, p):
    """Switch the units on in one cell at a time, for every spread cell of every latent; one row per location."""
    from ..gan import interventions as iv
    from ..hooks import UnitEdit

    grid = layer_grid(render.generator, module, latents[:1])
    cells = iv.spread_cells(grid, p.insertion_grid)
    image = np.repeat(np.arange(len(latents)), len(cells))
    cell = np.tile(np.arange(len(cells)), len(latents))
    masks = torch.from_numpy(iv.cell_masks(cells[cell], grid))
    value = levels[torch.as_tensor(units)]
    _, planes = render(latents[image], module, UnitEdit(units.tolist(), value), masks)
    windows = [iv.cell_window(tuple(cells[c]), grid, before.shape[1:], 1) for c in cell]
    footprints = [iv.cell_window(tuple(cells[c]), grid, before.shape[1:], 0) for c in cell]
    context = before[image]
    cell_pixels = (before.shape[1] // grid[0]) * (before.shape[2] // grid[1])  # success: half a cell added
    added = planes[:, plane] == cid
    return iv.insertion_rows(context == cid, added, context, windows, footprints, max(1, cell_pixels // 2))


def _gallery(painter: Painter, layer: str, concepts: list[str], seeds: int = 4):
    """Each concept painted with the layer's units into the centre half of the images of a few seeds."""
    from ..figures import image_grid

    size = painter.image_size()
    region = np.zeros(size, bool)
    region[size[0] // 4 : 3 * size[0] // 4, size[1] // 4 : 3 * size[1] // 4] = True
    shown, titles = [], []
    for concept in concepts:
        for seed in range(seeds):
            before, after, _ = painter.paint(concept, region, seed, layer=layer)
            shown += [before, after]
            titles += [f"{layer}: {concept} painted in the centre (before, after)" if seed == 0 else "", ""]
    return image_grid(np.stack(shown) if shown else np.zeros((0, 1, 1, 3), np.uint8), 2 * seeds, titles)
