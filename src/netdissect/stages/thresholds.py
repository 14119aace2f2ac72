"""Threshold stage: three rounds of per-chunk histograms and reduces give every unit's exact top-q level.

Round 1 (coarse) histograms do not depend on q, so changing ``quantile`` reruns from the first reduce on.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .. import quantile as Q
from ..provenance import record
from ..stores import load_state, open_group, provenance, require_same, save_state, write_csv
from ..upsample import geometry
from . import StageError

log = logging.getLogger("netdissect.thresholds")
BATCH_IMAGES = 64  # images per in-memory batch inside a chunk


def _batches(store_path: str):
    """Yield float32 activation batches of a store, and the store's provenance."""
    group = open_group(store_path)
    array = group["activations"]
    for start in range(0, array.shape[0], BATCH_IMAGES):
        yield array[start : start + BATCH_IMAGES].astype(np.float32)


def _geometry(store_path: str, label_size):
    shape = open_group(store_path)["activations"].shape
    return geometry(shape[2], shape[3], *label_size)


def _pack(hist: Q.Histogram, prefix: str) -> dict[str, np.ndarray]:
    return {
        f"{prefix}above": hist.above,
        f"{prefix}unit": hist.unit,
        f"{prefix}bin": hist.bin,
        f"{prefix}count": hist.count,
        f"{prefix}meta": np.array([hist.total, hist.nbins], np.int64),
    }


def _unpack(arrays: dict[str, np.ndarray], prefix: str) -> Q.Histogram:
    total, nbins = arrays[f"{prefix}meta"]
    return Q.Histogram(
        int(total),
        arrays[f"{prefix}above"],
        arrays[f"{prefix}unit"],
        arrays[f"{prefix}bin"],
        arrays[f"{prefix}count"],
        int(nbins),
    )


def _chunk_meta(store_path: str) -> dict:
    prov = provenance(open_group(store_path))
    return {"activations": prov["inputs"]}


def coarse_chunk(job) -> None:
    """Round 1 for one chunk: histograms of cell bounds."""
    geom = _geometry(job.input.acts, job.params.label_size)
    parts = [Q.coarse_histograms(acts, geom) for acts in _batches(job.input.acts)]
    lower = Q.merge([p[0] for p in parts])
    upper = Q.merge([p[1] for p in parts])
    save_state(job.output.state, {**_pack(lower, "lower_"), **_pack(upper, "upper_")}, _chunk_meta(job.input.acts))


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
    save_state(job.output.bracket, {"lo": lo, "hi": hi}, {"k": k, "total": lower.total, "quantile": job.params.quantile})


def refine_chunk(job) -> None:
    """Rounds 2 and 3 for one chunk: exact counts above the bracket and a histogram inside it."""
    bracket, _ = load_state(job.input.bracket)
    geom = _geometry(job.input.acts, job.params.label_size)
    nbins = job.params.nbins
    parts = [Q.histogram_between(a, geom, bracket["lo"], bracket["hi"], nbins) for a in _batches(job.input.acts)]
    save_state(job.output.state, _pack(Q.merge(parts), ""), _chunk_meta(job.input.acts))


def _narrowed(job) -> tuple[np.ndarray, np.ndarray, dict, Q.Histogram]:
    bracket, meta = load_state(job.input.bracket)
    state = Q.merge([_unpack(a, "") for a, _ in _load_all(job.input.states)])
    if state.total != meta["total"]:
        raise StageError(f"chunk states cover {state.total} values per unit but the bracket {job.input.bracket} {meta['total']}")
    bad = Q.check_bracket(state, meta["k"])
    if len(bad):
        raise StageError(f"internal error: threshold bracket misses units {bad[:10].tolist()}")
    lo, hi = Q.narrow(state, bracket["lo"], bracket["hi"], meta["k"])
    return lo, hi, meta, state


def refine_reduce(job) -> None:
    """Merge round 2 and narrow each bracket to one bin."""
    lo, hi, meta, _ = _narrowed(job)
    save_state(job.output.bracket, {"lo": lo, "hi": hi}, {k: meta[k] for k in ("k", "total", "quantile")})


def exact_reduce(job) -> None:
    """Merge round 3: the exact thresholds, written as a table."""
    _, t, meta, state = _narrowed(job)
    table = pd.DataFrame(
        {
            "unit": np.arange(len(t)),
            "threshold": t.astype(np.float32),
            "above": state.above + _count_above_in_bins(state, t),
            "total": meta["total"],
        }
    )
    write_csv(job.output.table, table)
    log.info("thresholds of %d units at q=%s (k=%d of %d values)", len(t), meta["quantile"], meta["k"], meta["total"])


def _count_above_in_bins(state: Q.Histogram, t: np.ndarray) -> np.ndarray:
    """Values inside the exact round's interval that are strictly above t."""
    above = state.bin > Q.float_keys(t)[state.unit]
    return np.bincount(state.unit[above], weights=state.count[above], minlength=len(t)).astype(np.int64)
