"""The threshold stage functions chained over chunk stores, including the rescan when a sampled interval misses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from netdissect import quantile as Q
from netdissect.stages import thresholds as T
from netdissect.stores import load_state, save_state, write_group
from netdissect.upsample import upsample

SIZE = (24, 20)


def spoiler(side):
    """Replace the sampled interval by one above (or below) every threshold."""

    def spoil(name, folder):
        if name == "sample":
            arrays, meta = load_state(folder / "sample.npz")
            if side == "above":
                arrays["lo"], arrays["hi"] = arrays["coarse_hi"] - 1e-3, arrays["coarse_hi"]
            else:
                arrays["lo"], arrays["hi"] = arrays["coarse_lo"], arrays["coarse_lo"] + 1e-3
            save_state(folder / "sample.npz", arrays, meta)

    return spoil


@pytest.mark.parametrize("spoil", [None, "above", "below"])
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
    path = T.thresholds_in_process(
        paths, tmp_path / "states", 0.02, SIZE, after_round=spoiler(spoil) if spoil else None
    )
    table, meta = pd.read_csv(path), load_state(tmp_path / "states" / "refine.npz")[1]
    values = upsample(acts.astype(np.float32), SIZE).transpose(1, 0, 2, 3).reshape(6, -1)
    k = Q.target_rank(0.02, values.shape[1])
    np.testing.assert_array_equal(table["threshold"].to_numpy(np.float32), -np.sort(-values, axis=1)[:, k])
    np.testing.assert_array_equal(table["above"], (values > table["threshold"].to_numpy(np.float32)[:, None]).sum(1))
    assert len(meta["rescanned"]) == (6 if spoil else 0)
