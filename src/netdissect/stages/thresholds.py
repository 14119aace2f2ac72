"""Threshold stage: rounds of per-chunk histograms and reduces narrow every unit's top-q level to one small interval.

1. coarse: cell-bound histograms bracket t without per-pixel work (independent of q);
2. sample: values on a sub-grid of the bracketing cells estimate a narrow interval around t;
3. refine: exact counts verify the interval (units it misses are recomputed from the coarse bracket by
   the reduce itself, reading the activation stores) and narrow it to one of 4096 bins.

The tally's count pass keeps the distinct values inside that bin, which give t exactly (stages/tally.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .. import quantile as Q
from ..progress import progress
from ..stores import (
    load_state,
    open_group,
    provenance,
    require_same,
    save_state,
)
from ..upsample import geometry
from . import StageError, read_batch, stage_job

log = logging.getLogger("netdissect.thresholds")
BATCH_IMAGES = 128  # images per in-memory batch inside a chunk
SAMPLE_SLACK = 0.05  # the sampled interval spans ranks k(1 -+ slack) ...
SAMPLE_FLOOR_IMAGES = 0.5  # ... widened by this many images' worth of pixels
SAMPLE_STRIDE = 8  # round 2 evaluates every 8th row and column of a cell


def _batches(store_path: str, images: int):
    """Yield float32 activation batches of a store, ``images`` at a time."""
    group = open_group(store_path)
    array = group["activations"]
    for start in progress(range(0, array.shape[0], images), what=store_path, unit="batches", log=log.info):
        yield array[start : start + images].astype(np.float32)


def _geometry(store_path: str, label_size):
    shape = open_group(store_path)["activations"].shape
    return geometry(shape[2], shape[3], *label_size)


def _pixels(job) -> int:
    return int(job.params.label_size[0]) * int(job.params.label_size[1])


def _pack(hist: Q.Histogram, prefix: str) -> dict[str, np.ndarray]:
    """Arrays of a histogram for a state file, in compact types (units and bins fit 32 bits, counts nearly always)."""
    return {
        f"{prefix}above": hist.above,
        f"{prefix}unit": hist.unit.astype(np.int32),
        f"{prefix}bin": hist.bin.astype(np.uint32),
        f"{prefix}count": hist.count.astype(np.uint32 if hist.count.max(initial=0) < 2**32 else np.int64),
        f"{prefix}meta": np.array([hist.total, hist.nbins], np.int64),
    }


def _unpack(arrays: dict[str, np.ndarray], prefix: str) -> Q.Histogram:
    total, nbins = arrays[f"{prefix}meta"]
    return Q.Histogram(
        int(total),
        arrays[f"{prefix}above"],
        arrays[f"{prefix}unit"].astype(np.int64),
        arrays[f"{prefix}bin"].astype(np.int64),
        arrays[f"{prefix}count"].astype(np.int64),
        int(nbins),
    )


def _chunk_meta(store_path: str) -> dict:
    prov = provenance(open_group(store_path))
    return {"activations": prov["inputs"]}


class CoarseRound:
    """Round 1 of one chunk, fed batch by batch: histograms of cell bounds. The activation job feeds it the values it
    stores, so a chunk's round 1 costs no job of its own; ``coarse_chunk`` feeds it a stored chunk.

    Small batches are gathered to GATHER images first: each histogram pass has a fixed cost in its tables.
    """

    GATHER = BATCH_IMAGES  # images per histogram pass
    MERGE_EVERY = 16  # histograms held before they are added up (bounds memory)

    def __init__(self, label_size, images: int | None = None) -> None:
        self.label_size, self.images = label_size, images or self.GATHER
        self.pending: list[np.ndarray] = []
        self.parts: list[tuple[Q.Histogram, Q.Histogram]] = []

    def add(self, acts: np.ndarray) -> None:
        """One batch of (n, U, h, w) float32 activations, as stored (kept until GATHER images are at hand)."""
        self.pending.append(acts)
        if sum(len(a) for a in self.pending) >= self.images:
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        acts = self.pending[0] if len(self.pending) == 1 else np.concatenate(self.pending)
        self.pending = []
        self.parts.append(Q.coarse_histograms(acts, geometry(acts.shape[2], acts.shape[3], *self.label_size)))
        if len(self.parts) >= self.MERGE_EVERY:
            self.parts = [self._merged()]

    def _merged(self) -> tuple[Q.Histogram, Q.Histogram]:
        return Q.merge([p[0] for p in self.parts]), Q.merge([p[1] for p in self.parts])

    def save(self, path: str, activations: dict) -> None:
        """Write the chunk's state; ``activations`` are the inputs of the store's provenance (model, layer, images)."""
        self._flush()
        lower, upper = self._merged()
        save_state(path, {**_pack(lower, "lower_"), **_pack(upper, "upper_")}, {"activations": activations})


def coarse_chunk(job) -> None:
    """Round 1 for one stored chunk (the workflow runs it inside the activation job, as the values are stored)."""
    images = read_batch(job, BATCH_IMAGES)
    round1 = CoarseRound(job.params.label_size, images)
    for acts in _batches(job.input.acts, images):
        round1.add(acts)
    round1.save(job.output.state, _chunk_meta(job.input.acts)["activations"])


def _load_all(paths: list[str]) -> list[tuple[dict, dict]]:
    """Chunk states, refusing to mix chunks of different models or layers."""
    states = [load_state(p) for p in paths]
    origins = {p: meta["activations"] for p, (_, meta) in zip(paths, states)}
    require_same(origins, "model")
    require_same(origins, "layer")
    return states


def coarse_reduce(job) -> None:
    """Merge round 1 and bracket every unit's threshold."""
    states = _load_all(job.input.states)
    lower = Q.merge([_unpack(a, "lower_") for a, _ in states])
    upper = Q.merge([_unpack(a, "upper_") for a, _ in states])
    k = Q.target_rank(job.params.quantile, lower.total)
    lo, hi = Q.bracket_from_coarse(lower, upper, k)
    images = lower.total // _pixels(job)
    meta = {"k": k, "total": lower.total, "quantile": job.params.quantile, "images": images}
    save_state(job.output.bracket, {"lo": lo, "hi": hi}, meta)


def refine_chunk(job) -> None:
    """Rounds 2-4 for one chunk: counts above the bracket and a histogram inside it (sampled in round 2)."""
    bracket, _ = load_state(job.input.bracket)
    geom = _geometry(job.input.acts, job.params.label_size)
    lo, hi, nbins, stride = bracket["lo"], bracket["hi"], job.params.nbins, job.params.stride
    state = Q.histogram_between(_batches(job.input.acts, read_batch(job, BATCH_IMAGES)), geom, lo, hi, nbins, stride)
    save_state(job.output.state, _pack(state, ""), _chunk_meta(job.input.acts))


def _merged(job) -> tuple[dict, dict, Q.Histogram]:
    bracket, meta = load_state(job.input.bracket)
    state = Q.merge([_unpack(a, "") for a, _ in _load_all(job.input.states)])
    if state.total != meta["total"]:
        raise StageError(f"chunk states cover {state.total} values per unit but {job.input.bracket} {meta['total']}")
    return bracket, meta, state


def sample_reduce(job) -> None:
    """Merge round 2 and choose a narrow interval around each threshold."""
    bracket, meta, state = _merged(job)
    floor = SAMPLE_FLOOR_IMAGES * state.total // max(meta["images"], 1)
    lo, hi = Q.estimated_bracket(state, bracket["lo"], bracket["hi"], meta["k"], SAMPLE_SLACK, floor)
    save_state(job.output.bracket, {"lo": lo, "hi": hi, "coarse_lo": bracket["lo"], "coarse_hi": bracket["hi"]}, meta)


def _rescan(job, units: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> Q.Histogram:
    """Exact 4096-bin histogram of some units over (lo, hi], read from every activation chunk."""
    parts = []
    label_size = job.params.label_size
    for path in job.input.acts:
        batches = (a[:, units] for a in _batches(path, read_batch(job, BATCH_IMAGES)))
        parts.append(Q.histogram_between(batches, _geometry(path, label_size), lo, hi, Q.REFINE_BINS))
    return Q.merge(parts)


def refine_reduce(job) -> None:
    """Merge round 3, verify the sampled intervals (rescanning units they miss) and narrow them to one bin."""
    bracket, meta, state = _merged(job)
    k = meta["k"]
    lo, hi = Q.narrow(state, bracket["lo"], bracket["hi"], k)
    missed = Q.check_bracket(state, k)
    if len(missed):
        log.info("sampled interval missed %d units; rescanning them: %s", len(missed), missed[:20].tolist())
        # the exact counts tell on which side of the sampled interval t lies: rescan only that side
        above = state.above[missed] > k
        sampled_lo, sampled_hi = bracket["lo"][missed], bracket["hi"][missed]
        side_lo = np.where(above, sampled_hi, bracket["coarse_lo"][missed])
        side_hi = np.where(above, bracket["coarse_hi"][missed], sampled_lo)
        rescan = _rescan(job, missed, side_lo, side_hi)
        if len(Q.check_bracket(rescan, k)):
            raise StageError(f"internal error: coarse threshold bracket misses units of {job.input.bracket}")
        lo[missed], hi[missed] = Q.narrow(rescan, side_lo, side_hi, k)
    save_state(job.output.bracket, {"lo": lo, "hi": hi}, meta | {"rescanned": missed})


# Rounds after the first: (name, the round whose bracket it reads, bins, stride, reduce). The workflow's rules
# are generated from this table; intervals_in_process runs it without Snakemake.
ROUNDS = (
    ("sample", "coarse", Q.REFINE_BINS, SAMPLE_STRIDE, sample_reduce),
    ("refine", "sample", Q.REFINE_BINS, 1, refine_reduce),
)


def _run_chunk(task: tuple) -> None:
    function, inputs, outputs, params = task
    function(stage_job(inputs, outputs, **params))


def intervals_in_process(
    acts_paths: list[str],
    folder: Path,
    quantile: float,
    label_size,
    map_chunks=map,
    after_round=None,
    read_batch: int = BATCH_IMAGES,
) -> Path:
    """All rounds for one layer's activation stores, in this process (states go under ``folder``).

    Args:
        acts_paths: the layer's activation chunk stores.
        folder: where per-chunk states and brackets are written.
        quantile: q.
        label_size: (H, W) of the label maps.
        map_chunks: a map function for the chunk stages (e.g. a process pool's map).
        after_round: called with (round name, folder) after each reduce.
        read_batch: images per in-memory batch of the chunk stages and rescans.

    Returns:
        The path of the last round's bracket, the input of the tally's chunks and reduce.
    """
    folder = Path(folder)

    def states(name):
        return [str(folder / name / f"{i}.npz") for i in range(len(acts_paths))]

    def chunks(function, name, bracket=None, **params):
        inputs = {"bracket": bracket} if bracket else {}
        tasks = [(function, {"acts": a, **inputs}, {"state": s}, params) for a, s in zip(acts_paths, states(name))]
        list(map_chunks(_run_chunk, tasks))

    chunks(coarse_chunk, "coarse", label_size=label_size, read_batch=read_batch)
    coarse_reduce(
        stage_job(
            {"states": states("coarse")},
            {"bracket": str(folder / "coarse.npz")},
            quantile=quantile,
            label_size=label_size,
        )
    )
    if after_round:
        after_round("coarse", folder)
    for name, previous, nbins, stride, reduce in ROUNDS:
        bracket = str(folder / f"{previous}.npz")
        chunks(refine_chunk, name, bracket, label_size=label_size, nbins=nbins, stride=stride, read_batch=read_batch)
        inputs = {"states": states(name), "bracket": bracket, "acts": acts_paths}
        reduce(
            stage_job(inputs, {"bracket": str(folder / f"{name}.npz")}, label_size=label_size, read_batch=read_batch)
        )
        if after_round:
            after_round(name, folder)
    return folder / f"{ROUNDS[-1][0]}.npz"
