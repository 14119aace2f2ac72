"""Ablation stages: class labels, the layer's output on the ranking and evaluation images, the single-unit sweep
(chunked over units), rankings, set sweeps (chunked over the list of sets), the paper's table and the figures."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch

from .. import ablation
from ..ablationplan import chunk_range
from ..classlabels import class_report, label_table
from ..hooks import LayerHooks, UnitEdit
from ..modelspec import ModelSpec
from ..plan import open_source
from ..provenance import file_digest, record
from ..stores import GroupWriter, atomic_path, open_group, write_csv, write_json
from ..tables import read_concepts, read_units
from . import StageError
from .images import Skipped, image_batches

log = logging.getLogger("netdissect.ablation")


def ablation_labels(job) -> None:
    """The labelled images of the model's classes (``labels.csv``) and per class its images per role (``classes.csv``)."""
    p = job.params
    table, report = label_table(open_source(p.source), list(p.classes), p.labels)
    classes = class_report(table, list(p.classes), dict(p.splits))
    for line in report + [f"class {c!r} {s}" for c, s in zip(classes["class"], classes["status"]) if s != "ok"]:
        log.warning("%s", line)
    write_csv(job.output.labels, table)
    write_csv(job.output.classes, classes)
    log.info("%d labelled images of %d classes", len(table), int((classes["status"] == "ok").sum()))


def _role_images(path: str, split: str | None) -> pd.DataFrame:
    table = pd.read_csv(path, keep_default_na=False)
    return table if split is None else table[table["split"] == split]


def _load(job):
    """The model, its device and input normalisation, and the tail after the job's layer."""
    from ..models import load_model
    from ..tail import cut

    p = job.params
    torch.set_num_threads(max(1, job.threads))
    model, device, normalise = load_model(ModelSpec.from_config(p.model), getattr(job.input, "weights", None), p.device)
    return model, device, normalise, cut(model, job.wildcards.layer)


def _images(job, rows: np.ndarray, normalise, device) -> Iterator[torch.Tensor]:
    """Batches of the normalised images of some dataset rows."""
    p = job.params
    records = open_source(p.source).records()
    chosen = [records[int(r)] for r in rows]
    for images, _ in image_batches(chosen, p.batch_size, tuple(p.image_size), p.resize, False, Skipped()):
        yield normalise(images).to(device)


def ablation_features(job) -> None:
    """The layer's output on one role's images (float32), their targets, and every unit's mean over them.

    A model that cannot be cut after the layer gets only the means and targets: its sweeps start from the images.
    """
    p, layer = job.params, job.wildcards.layer
    model, device, normalise, tail = _load(job)
    images = _role_images(job.input.labels, p.split)
    writer = GroupWriter(job.output.features)
    try:
        store, total, seen = None, None, 0
        with LayerHooks(model, capture=[layer], stop_after_capture=True) as hooks, torch.inference_mode():
            for batch in _images(job, images["row"].to_numpy(), normalise, device):
                hooks.run(batch)
                features = hooks.captured[layer].float().cpu()
                dims = [0] + list(range(2, features.ndim))
                total = features.double().sum(dims) + (0 if total is None else total)
                if not tail.needs_images:
                    if store is None:
                        shape = (len(images),) + tuple(features.shape[1:])
                        store = writer.create("features", shape, "float32", p.batch_size)
                    store[seen : seen + len(features)] = features.contiguous().numpy()
                seen += len(features)
        positions = int(np.prod(features.shape[2:]))
        writer.group.create_array("mean", data=(total / (seen * positions)).numpy())
        writer.group.create_array("rows", data=images["row"].to_numpy(np.int64))
        writer.group.create_array("targets", data=images["output"].to_numpy(np.int64))
        settings = {"split": p.split, "batch_size": p.batch_size, "tail": tail.kind}
        inputs = {"model": ModelSpec.from_config(p.model).digest, "layer": layer}
        writer.commit({"provenance": record("ablation_features", settings, inputs), "tail": tail.kind})
    except BaseException as error:
        writer.abort(error)
        raise
    log.info("%s: %d images of split %s, tail %s", layer, seen, p.split, tail.kind)


class _Features:
    """A role's stored features (or its images, for a tail that needs them), in the stage's batches."""

    def __init__(self, job, path: str, tail, normalise, device) -> None:
        self.job, self.group, self.tail = job, open_group(path), tail
        self.normalise, self.device = normalise, device
        self.targets = torch.from_numpy(self.group["targets"][:])
        self.mean = self.group["mean"][:]

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        size = self.job.params.batch_size
        if self.tail.needs_images:
            source = _images(self.job, self.group["rows"][:], self.normalise, self.device)
        else:
            array = self.group["features"]
            source = (torch.from_numpy(array[i : i + size]).to(self.device) for i in range(0, array.shape[0], size))
        for start, inputs in zip(range(0, len(self.targets), size), source):
            yield inputs, self.targets[start : start + size]

    def edit(self, units, value: str) -> UnitEdit:
        """The removal of some units: set to zero, or to their mean over the ranking images."""
        units = list(units)
        return UnitEdit(units, torch.from_numpy(self.mean[units]).float() if value == "mean" else 0.0)


def _split_name(split: str | None) -> str:
    return "all" if split is None else split


def ablation_units(job) -> None:
    """One chunk of the single-unit sweep on the ranking images: every unit of the chunk removed alone."""
    from ..tail import batch_sweep

    p = job.params
    _, device, normalise, tail = _load(job)
    data = _Features(job, job.input.features, tail, normalise, device)
    units = range(*chunk_range(job.wildcards.part, len(data.mean)))
    edits = [data.edit([u], p.value) for u in units]
    classes = len(p.classes)
    base, ablated = ablation.Counts.zeros(1, classes), ablation.Counts.zeros(len(edits), classes)
    for inputs, targets in data.batches():
        base = base + batch_sweep(tail, inputs, targets, [UnitEdit(())], 0, 1, classes)
        ablated = ablated + batch_sweep(tail, inputs, targets, edits, units.start, p.per_pass, classes)
    write_csv(job.output.units, ablation.single_unit_table(base, ablated, units, p.classes, _split_name(p.split)))
    log.info("%s: units %d-%d removed one by one (%s tail)", job.wildcards.layer, units.start, units.stop, tail.kind)


def ablation_single(job) -> None:
    """The whole single-unit sweep, and per class the units from most to least important."""
    table = pd.concat([pd.read_csv(path, keep_default_na=False) for path in job.input.units], ignore_index=True)
    write_csv(job.output.single_unit, table)
    rows = []
    for name, order in ablation.rankings(table).items():
        by_unit = table[table["class"] == name].set_index("unit")
        for rank, unit in enumerate(order):
            rows.append((name, rank, unit, by_unit.at[unit, "drop"], by_unit.at[unit, "margin_drop"]))
    write_csv(job.output.ranking, pd.DataFrame(rows, columns=["class", "rank", "unit", "drop", "margin_drop"]))


def _concept_ranking(job) -> np.ndarray | None:
    """Units by IoU with the configured concept (from the layer's tally), or None."""
    concept = job.params.concept
    if concept is None:
        return None
    from ..tallystore import read_layer_iou

    concepts = read_concepts(job.input.concepts)
    ids = concepts.loc[concepts["name"] == concept, "id"].to_numpy()
    if not len(ids):
        raise StageError(f"config key 'ablation.concept': {concept!r} is not a concept of {job.input.concepts}")
    iou, _, _ = read_layer_iou(job.input.tally, concepts["id"].to_numpy())
    return ablation.iou_ranking(iou[:, ids[0]])


def swept_classes(classes_csv: str, chosen) -> list[str]:
    """The classes to sweep: those with images in both roles' splits, restricted to the configured ones."""
    table = pd.read_csv(classes_csv, keep_default_na=False)
    ok = list(table.loc[table["status"] == "ok", "class"])
    return [c for c in ok if chosen is None or c in chosen]


def ablation_sweep(job) -> None:
    """One chunk of the set sweeps on the evaluation images (the list of sets: ablation.sweep_specs)."""
    from ..tail import sweep_counts

    p = job.params
    _, device, normalise, tail = _load(job)
    ranking = _Features(job, job.input.ranking, tail, normalise, device)
    data = _Features(job, job.input.features, tail, normalise, device)
    swept = swept_classes(job.input.classes, p.swept)
    orders = ablation.rankings(pd.read_csv(job.input.single_unit, keep_default_na=False))
    specs = ablation.sweep_specs(
        {c: orders[c] for c in swept}, len(data.mean), p.ks, p.random_seeds, p.seed, _concept_ranking(job)
    )
    start, stop = chunk_range(job.wildcards.part, len(specs))
    edits = [ranking.edit(spec.units, p.value) for spec in specs[start:stop]]
    counts = sweep_counts(tail, data.batches(), edits, start, p.per_pass, len(p.classes))
    table = ablation.sweep_table(specs[start:stop], counts, p.classes, swept, _split_name(p.split))
    write_csv(job.output.sweeps, table)
    log.info("%s: set ablations %d-%d of %d (%s tail)", job.wildcards.layer, start, stop, len(specs), tail.kind)


def ablation_sweeps(job) -> None:
    """All set sweeps of a layer, and the paper's table per swept class."""
    table = pd.concat([pd.read_csv(path, keep_default_na=False) for path in job.input.sweeps], ignore_index=True)
    table["seed"] = pd.to_numeric(table["seed"]).astype("Int64")
    write_csv(job.output.sweeps, table)
    paper = ablation.paper_table(table)
    write_csv(job.output.table, paper)
    log.info("%s:\n%s", job.wildcards.layer, paper.to_string(index=False, float_format="%.3f"))


def ablation_report(job) -> None:
    """Per unit the classes it is among the top-4 for, against its best IoU (table and figure); the sweep figure."""
    from ..figures import importance_figure, sweeps_figure

    layer = job.wildcards.layer
    units = read_units(job.input.units)
    orders = ablation.rankings(pd.read_csv(job.input.single_unit, keep_default_na=False))
    importance = units[["unit", "label", "category", "iou", "detector"]].copy()
    importance.insert(1, "top_classes", ablation.top_counts(orders, len(units)))
    write_csv(job.output.importance, importance)
    figures = (
        (job.output.sweeps_figure, sweeps_figure(pd.read_csv(job.input.sweeps, keep_default_na=False), layer)),
        (job.output.importance_figure, importance_figure(importance, layer, ablation.TOP_IMPORTANT)),
    )
    for path, figure in figures:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=110)
    p = job.params
    inputs = {"weights": p.weights_digest, "labels": file_digest(job.input.labels), "layer": layer}
    write_json(job.output.provenance, record("ablation", {**p.config, "classes": list(p.classes)}, inputs))
