"""Adversarial stage: targeted PGD from correctly classified images of a source class to a target class, and every
dissected layer's units' mean activation on the clean and the attacked images."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from .. import adversarial as analysis
from ..attack import pgd
from ..classlabels import split_images
from ..figures import adversarial_figure
from ..hooks import LayerHooks
from ..models import load_model, normalization, preprocess
from ..modelspec import ModelSpec
from ..plan import open_source
from ..stores import write_csv
from .images import Skipped, image_batches
from .report import save_figure

log = logging.getLogger("netdissect.adversarial")
BATCH = 64


def _normalizer(spec: ModelSpec, device: torch.device):
    """[0, 1] images -> the model's input (its normalisation, differentiable, channels-last)."""
    mean, std = (torch.tensor(v, device=device).view(1, 3, 1, 1) for v in normalization(spec))
    return lambda x: ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def _firing(model, normalize, images: torch.Tensor, layers: list[str]) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """Logits and every layer's (n, U) unit means (each activation map's mean) of [0, 1] images, in batches."""
    logits, firing = [], {layer: [] for layer in layers}
    with LayerHooks(model, capture=layers) as hooks, torch.no_grad():
        for batch in images.split(BATCH):
            logits.append(hooks.run(normalize(batch)))
            for layer in layers:
                firing[layer].append(hooks.captured[layer].float().mean((2, 3)).cpu().numpy())
    return torch.cat(logits), {layer: np.concatenate(v) for layer, v in firing.items()}


class UnitOrders:
    """Units by importance for a class, per layer: the ablation's single-unit table where the stage ran on the
    layer, otherwise the correlation of the units' firing with the class on the clean images."""

    def __init__(self, job, clean: dict[str, np.ndarray], labels: np.ndarray, names: list[str]) -> None:
        paths = list(getattr(job.input, "ablation", []))
        self.tables = {
            layer: pd.read_csv(path, keep_default_na=False) for layer, path in zip(job.params.ablation_layers, paths)
        }
        self.clean, self.labels, self.names = clean, labels, names
        self._orders: dict[tuple[str, int], np.ndarray] = {}

    def source(self, layer: str) -> str:
        return "ablation" if layer in self.tables else "correlation"

    def __call__(self, layer: str, cls: int) -> np.ndarray:
        if (layer, cls) not in self._orders:
            units = self.clean[layer].shape[1]
            self._orders[layer, cls] = (
                analysis.ablation_order(self.tables[layer], self.names[cls], units)
                if layer in self.tables
                else analysis.correlation_order(self.clean[layer], self.labels, cls)
            )
        return self._orders[layer, cls]


def _evaluation_images(job, device: torch.device) -> tuple[torch.Tensor, np.ndarray]:
    """The split's labelled images (``labels.csv``) as [0, 1] tensors and their classes (positions in the class
    list)."""
    p = job.params
    table = split_images(pd.read_csv(job.input.labels, keep_default_na=False), p.split, "adversarial.split")
    records = open_source(p.source).records()
    chosen = [records[int(r)] for r in table["row"]]
    batches = image_batches(chosen, p.batch_size, tuple(p.image_size), p.resize, False, Skipped())
    pixels = np.concatenate([images for images, _ in batches])
    return preprocess(pixels, (0.0,) * 3, (1.0,) * 3).to(device), table["output"].to_numpy(np.int64)


def adversarial(job) -> None:
    """Attack each (source, target) pair and write every layer's units table, the summary and its figure."""
    p, layers, names = job.params, list(job.params.layers), list(job.params.class_names)
    torch.manual_seed(p.seed)
    torch.set_num_threads(max(1, getattr(job, "threads", 1)))
    spec = ModelSpec.from_config(p.model)
    model, device, _ = load_model(spec, getattr(job.input, "weights", None), p.device)
    model.requires_grad_(False)
    normalize = _normalizer(spec, device)
    images, labels = _evaluation_images(job, device)
    logits, clean = _firing(model, normalize, images, layers)
    probabilities = torch.softmax(logits, 1).cpu().numpy()
    predictions = probabilities.argmax(1)
    log.info("clean accuracy on %d %s images: %.3f", len(labels), p.split, float((predictions == labels).mean()))
    if p.pairs:
        pairs = [(names.index(s), names.index(t)) for s, t in p.pairs]
    else:
        pairs = sorted(analysis.most_confused(labels, predictions, probabilities).items())
    order = UnitOrders(job, clean, labels, names)
    chosen = {pair: np.flatnonzero((labels == pair[0]) & (predictions == pair[0]))[: p.images] for pair in pairs}
    rows = np.concatenate([chosen[pair] for pair in pairs])
    goal = torch.as_tensor(np.concatenate([np.full(len(chosen[pair]), pair[1]) for pair in pairs]), device=device)
    if len(rows):  # one batch for every pair (eval mode: each image's attack is independent of the others')
        attacked = pgd(lambda x: model(normalize(x)), images[rows], goal, p.epsilon, p.step_size, p.steps)
        attacked_logits, attacked_firing = _firing(model, normalize, attacked, layers)
        reached = (attacked_logits.argmax(1) == goal).cpu().numpy()
    unit_tables: dict[str, list[pd.DataFrame]] = {layer: [] for layer in layers}
    summary, start = [], 0
    for source, target in pairs:
        mine = slice(start, start + len(chosen[source, target]))
        start = mine.stop
        pair = {"source": names[source], "target": names[target], "images": mine.stop - mine.start}
        if not pair["images"]:
            status = f"no correctly classified {p.split} image of class {names[source]!r}"
            log.warning("skipping %s -> %s: %s", names[source], names[target], status)
            summary += [
                {**pair, "layer": x, "ranking": order.source(x), "status": f"skipped: {status}"} for x in layers
            ]
            continue
        success = float(reached[mine].mean())
        log.info("%s -> %s: %d images, success rate %.3f", names[source], names[target], pair["images"], success)
        for layer in layers:
            groups = analysis.unit_groups(order(layer, source), order(layer, target), p.units)
            before, after = clean[layer][chosen[source, target]].mean(0), attacked_firing[layer][mine].mean(0)
            table = analysis.unit_table(pair["source"], pair["target"], before, after, groups)
            unit_tables[layer].append(table)
            summary.append(
                {
                    **pair,
                    "layer": layer,
                    "success_rate": success,
                    **analysis.group_changes(table),
                    "source_units": " ".join(map(str, np.flatnonzero(groups == "source"))),
                    "target_units": " ".join(map(str, np.flatnonzero(groups == "target"))),
                    "ranking": order.source(layer),
                    "status": "ok",
                }
            )
    for layer, path in zip(layers, job.output.units):
        tables = unit_tables[layer]
        write_csv(path, pd.concat(tables) if tables else pd.DataFrame(columns=list(analysis.UNIT_COLUMNS)))
    table = pd.DataFrame(summary, columns=list(analysis.SUMMARY_COLUMNS))
    write_csv(job.output.summary, table)
    save_figure(adversarial_figure(table), job.output.figure)
    for line in analysis.describe(table):
        log.info("%s", line)
