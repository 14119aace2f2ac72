"""Label statistics stage: per chunk, the bootstrap and permutation-null sums of its images at the final
thresholds; per layer, the intervals, label stabilities, p- and q-values (:mod:`netdissect.statistics`)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .. import statistics as S
from ..progress import progress
from ..stores import load_state, open_group, read_rows, save_state, write_csv
from ..tables import concept_vocabulary, read_concepts, read_run_index
from ..tallystore import read_layer_counts, read_layer_iou
from . import StageError, read_batch
from .tally import _labelled_rows, _labels

log = logging.getLogger("netdissect.statistics")
BATCH_IMAGES = 32
SUMS_IMAGES = 128  # images whose counts are weighted by the resamples at once
COLUMNS = ("unit", "iou_low", "iou_high", "label_stability", "p_value", "q_value", "fdr_detector")


def _layer(job):
    """The concepts, their vocabulary and ids, the layer's IoU (as label_units reads it) and thresholds."""
    concepts = read_concepts(job.input.concepts)
    ids = concepts["id"].to_numpy()
    iou, thresholds, _ = read_layer_iou(job.input.tally, ids)
    return concepts, concept_vocabulary(concepts), ids, iou, thresholds


def statistics_chunk(job) -> None:
    """One chunk's Sums for every resample and the null's moments, written as an npz state."""
    p = job.params
    _, vocab, _, iou, thresholds = _layer(job)
    candidates = S.candidate_concepts(iou, p.candidates)
    run_rows = read_run_index(job.input.index)["row"].to_numpy()
    acts_group, seg_group = open_group(job.input.acts), open_group(job.input.segment)
    rows, position = _labelled_rows(acts_group["rows"][:], seg_group["rows"][:], job.input.acts, job.input.segment)
    where_in_run = {int(r): i for i, r in enumerate(run_rows)}
    missing = [int(r) for r in rows if int(r) not in where_in_run]
    if missing:
        raise StageError(f"{job.input.acts}: rows {missing[:5]} are not in the run's index {job.input.index}")
    acts, labels, image_labels = acts_group["activations"], seg_group["labels"], seg_group["image_labels"]
    acts_rows = acts_group["rows"][:]
    weights = S.resample_weights(len(run_rows), p.resamples, p.seed)
    _, cell_pixels = S.grid_cells(labels.shape[-2:], p.grid)
    labelled = np.flatnonzero(position >= 0)
    total, gathered = None, []

    def add_gathered():  # one weighting of many images: its cost is per call, (resamples x counts) products
        nonlocal total
        part = S.chunk_sums(S.ImageCounts.concat(gathered), weights, cell_pixels)
        total = part if total is None else total + part
        gathered.clear()

    batch = read_batch(job, BATCH_IMAGES)
    for start in progress(range(0, len(labelled), batch), what=job.input.acts, unit="batches", log=log.info):
        take = labelled[start : start + batch]
        counts = S.image_counts(
            read_rows(acts, take).astype(np.float32),
            _labels(labels, position[take]),
            _labels(image_labels, position[take]),
            thresholds.astype(np.float32),
            candidates,
            vocab.category,
            vocab.num_categories,
            np.array([where_in_run[int(r)] for r in acts_rows[take]]),
            p.grid,
        )
        gathered.append(counts)
        if len(gathered) * batch >= SUMS_IMAGES:
            add_gathered()
    if gathered:
        add_gathered()
    if total is None:
        raise StageError(f"{job.input.acts} and {job.input.segment} share no labelled images")
    save_state(job.output.sums, total.arrays(), {"candidates": candidates.tolist(), "images": len(labelled)})


def _check_totals(sums: S.Sums, counts, cell_pixels: np.ndarray, path: str) -> None:
    """The chunks' per-image counts must add up to the layer's tally, exactly (same thresholds, same images)."""
    activation = np.rint((sums.mask_total * np.sqrt(np.maximum(cell_pixels, 1))).sum(1)).astype(np.int64)
    if sums.images != counts.images or not np.array_equal(activation, counts.activation):
        raise StageError(
            f"the statistics chunks of {path} count {sums.images} images and {activation.sum()} active pixels, "
            f"the tally {counts.images} and {counts.activation.sum()}: delete the statistics chunks and rerun"
        )


def statistics_layer(job) -> None:
    """The layer's statistics table (one row per unit), its discoveries and figure."""
    from ..figures import statistics_figure  # matplotlib: only this job draws
    from .report import save_figure

    p = job.params
    concepts, vocab, ids, iou, _ = _layer(job)
    parts = [load_state(path) for path in job.input.sums]
    sums = sum((S.Sums.of_arrays(a) for a, _ in parts[1:]), S.Sums.of_arrays(parts[0][0]))
    candidates = np.array(parts[0][1]["candidates"], np.int64)
    counts = read_layer_counts(job.input.tally, ids, vocab.size)
    _, cell_pixels = S.grid_cells(p.label_size, p.grid)
    _check_totals(sums, counts, cell_pixels, job.input.tally)
    best = iou.max(1)
    label = np.where(best > 0, iou.argmax(1), 0)  # the label of units.csv (ties: the lowest id)
    low, high, stability = S.bootstrap_summary(
        S.resample_iou(sums, candidates, vocab.category, p.union), candidates, label, p.level
    )
    mean, var = S.null_moments(sums)
    pvalues = S.p_values(counts.intersection[:, ids].astype(np.float64), mean[:, ids], var[:, ids])
    qvalues = S.benjamini_hochberg(pvalues)
    column = {int(c): j for j, c in enumerate(ids)}
    pick = np.array([column.get(int(c), -1) for c in label])
    has = pick >= 0
    unit_p = np.where(has, pvalues[np.arange(len(pick)), np.maximum(pick, 0)], np.nan)
    unit_q = np.where(has, qvalues[np.arange(len(pick)), np.maximum(pick, 0)], np.nan)
    table = pd.DataFrame(
        {
            "unit": np.arange(len(best)),
            "iou_low": low,
            "iou_high": high,
            "label_stability": stability,
            "p_value": unit_p,
            "q_value": unit_q,
            "fdr_detector": has & (unit_q <= p.fdr_q),
        }
    )
    write_csv(job.output.table, table)
    unit, concept = np.nonzero(qvalues <= p.fdr_q)
    discoveries = pd.DataFrame(
        {
            "unit": unit,
            "concept": concepts["name"].to_numpy()[concept],
            "category": concepts["category"].to_numpy()[concept],
            "iou": iou[unit, ids[concept]],
            "p_value": pvalues[unit, concept],
            "q_value": qvalues[unit, concept],
        }
    ).sort_values(["q_value", "unit", "concept"], kind="stable")
    write_csv(job.output.discoveries, discoveries)
    save_figure(statistics_figure(best, table, p.iou_threshold, p.fdr_q, job.wildcards.layer), job.output.figure)
    log.info(
        "%d of %d units are detectors by IoU > %s, %d at FDR %s; %d unit-concept pairs discovered",
        int((best > p.iou_threshold).sum()),
        len(best),
        p.iou_threshold,
        int(table["fdr_detector"].sum()),
        p.fdr_q,
        len(discoveries),
    )
