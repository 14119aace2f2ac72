"""The threshold stage functions chained over chunk stores, including the rescan when a sampled interval misses."""

from __future__ import annotations

from types import SimpleNamespace as NS

import numpy as np
import pandas as pd
import pytest

from netdissect import quantile as Q
from netdissect.stages import thresholds as T
from netdissect.stores import load_state, save_state, write_group
from netdissect.upsample import upsample

SIZE = (24, 20)


def job(inputs, outputs, **params):
    return NS(input=NS(**inputs), output=NS(**outputs), params=NS(**params))


def run_rounds(tmp_path, acts_paths, quantile, spoil_sample=False):
    def states(name):
        return [str(tmp_path / name / f"{i}.npz") for i in range(len(acts_paths))]

    for a, s in zip(acts_paths, states("coarse")):
        T.coarse_chunk(job({"acts": a}, {"state": s}, label_size=SIZE))
    T.coarse_reduce(
        job({"states": states("coarse")}, {"bracket": str(tmp_path / "coarse.npz")}, quantile=quantile, label_size=SIZE)
    )
    rounds = (
        ("sample", "coarse", 4096, 4, T.sample_reduce),
        ("refine", "sample", 4096, 1, T.refine_reduce),
        ("exact", "refine", 0, 1, T.exact_reduce),
    )
    for name, previous, nbins, stride, reduce in rounds:
        bracket = str(tmp_path / f"{previous}.npz")
        for a, s in zip(acts_paths, states(name)):
            T.refine_chunk(
                job({"acts": a, "bracket": bracket}, {"state": s}, label_size=SIZE, nbins=nbins, stride=stride)
            )
        out = (
            {"table": str(tmp_path / "thresholds.csv")}
            if name == "exact"
            else {"bracket": str(tmp_path / f"{name}.npz")}
        )
        reduce(job({"states": states(name), "bracket": bracket, "acts": acts_paths}, out, label_size=SIZE))
        if name == "sample" and spoil_sample:
            arrays, meta = load_state(tmp_path / "sample.npz")
            arrays["lo"], arrays["hi"] = arrays["coarse_hi"] - 1e-3, arrays["coarse_hi"]  # an interval that misses t
            save_state(tmp_path / "sample.npz", arrays, meta)
    return pd.read_csv(tmp_path / "thresholds.csv"), load_state(tmp_path / "refine.npz")[1]


@pytest.mark.parametrize("spoil", [False, True])
def test_stage_thresholds_equal_brute_force(tmp_path, spoil):
    rng = np.random.default_rng(7)
    acts = np.maximum(rng.standard_normal((23, 6, 5, 4)), 0).astype(np.float16)
    paths = []
    for i, (a, b) in enumerate(((0, 9), (9, 17), (17, 23))):
        path = tmp_path / "acts" / f"{i}.zarr"
        write_group(
            path,
            {"activations": acts[a:b], "rows": np.arange(a, b)},
            {"provenance": {"inputs": {"dataset": str(i), "model": "m", "layer": "l"}}},
        )
        paths.append(str(path))
    table, meta = run_rounds(tmp_path, paths, 0.02, spoil)
    values = upsample(acts.astype(np.float32), SIZE).transpose(1, 0, 2, 3).reshape(6, -1)
    k = Q.target_rank(0.02, values.shape[1])
    np.testing.assert_array_equal(table["threshold"].to_numpy(np.float32), -np.sort(-values, axis=1)[:, k])
    np.testing.assert_array_equal(table["above"], (values > table["threshold"].to_numpy(np.float32)[:, None]).sum(1))
    assert (len(meta["rescanned"]) == 6) == spoil
