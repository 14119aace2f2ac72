"""The threshold rounds and the tally stage chained over chunk stores: thresholds.csv holds the exact order
statistic, including after a rescan when a sampled interval misses, and over images without a segmentation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from netdissect import quantile as Q
from netdissect.stages import stage_job
from netdissect.stages import tally as tally_stage
from netdissect.stages import thresholds as T
from netdissect.stores import load_state, open_group, save_state, write_csv, write_group
from netdissect.tallystore import chunk_counts
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


def _stores(tmp_path, acts, chunks, skipped):
    """Activation and segmentation chunk stores (segmentations lack the skipped rows) and a concept table."""
    paths = []
    for i, (a, b) in enumerate(chunks):
        inputs = {"dataset": str(i), "model": "m", "layer": "l"}
        rows = np.arange(a, b)
        path = tmp_path / "acts" / f"{i}.zarr"
        write_group(path, {"activations": acts[a:b], "rows": rows}, {"provenance": {"inputs": inputs}})
        labelled = rows[~np.isin(rows, skipped)]
        write_group(
            tmp_path / "seg" / f"{i}.zarr",
            {
                "labels": np.ones((len(labelled), 1, *SIZE), np.uint16),
                "image_labels": np.zeros((len(labelled), 1), np.uint16),
                "rows": labelled,
            },
            {"provenance": {"inputs": {"dataset": str(i), "segmenter": "s"}}},
        )
        paths.append((str(path), str(tmp_path / "seg" / f"{i}.zarr")))
    write_csv(tmp_path / "concepts.csv", pd.DataFrame({"id": [1], "name": ["thing"], "category": ["object"]}))
    return paths


@pytest.mark.parametrize("spoil", [None, "above", "below"])
def test_stage_thresholds_equal_brute_force(tmp_path, spoil):
    rng = np.random.default_rng(7)
    acts = np.maximum(rng.standard_normal((23, 6, 5, 4)), 0).astype(np.float16)
    skipped = [3, 18]  # images without a segmentation still count towards the thresholds
    paths = _stores(tmp_path, acts, ((0, 9), (9, 17), (17, 23)), skipped)
    acts_paths = [a for a, _ in paths]
    bracket = T.intervals_in_process(
        acts_paths, tmp_path / "states", 0.02, SIZE, after_round=spoiler(spoil) if spoil else None
    )
    counts = []
    for i, (a, seg) in enumerate(paths):
        counts.append(str(tmp_path / "tally" / f"{i}.zarr"))
        inputs = {"acts": a, "segment": seg, "bracket": str(bracket), "concepts": str(tmp_path / "concepts.csv")}
        tally_stage.tally_chunk(stage_job(inputs, {"counts": counts[-1]}))
    outputs = {"tally": str(tmp_path / "tally.zarr"), "thresholds": str(tmp_path / "thresholds.csv")}
    inputs = {"counts": counts, "bracket": str(bracket), "concepts": str(tmp_path / "concepts.csv")}
    tally_stage.tally_reduce(stage_job(inputs, outputs, union="all", quantile=0.02))

    table, meta = pd.read_csv(outputs["thresholds"]), load_state(bracket)[1]
    values = upsample(acts.astype(np.float32), SIZE)
    flat = values.transpose(1, 0, 2, 3).reshape(6, -1)
    k = Q.target_rank(0.02, flat.shape[1])
    t = table["threshold"].to_numpy(np.float32)
    np.testing.assert_array_equal(t, -np.sort(-flat, axis=1)[:, k])
    np.testing.assert_array_equal(table["above"], (flat > t[:, None]).sum(1))
    assert len(meta["rescanned"]) == (6 if spoil else 0)
    tally = open_group(outputs["tally"])
    labelled = np.delete(values, skipped, axis=0)  # every labelled pixel carries concept 1
    active = (labelled > t[None, :, None, None]).sum((0, 2, 3))
    np.testing.assert_array_equal(tally["activation"][:], active)
    np.testing.assert_array_equal(tally["intersection"][:][:, 0], active)
    np.testing.assert_array_equal(tally["thresholds"][:], t)
    # each chunk's store, completed at the thresholds, gives that chunk's share (for resampling chunks)
    ids = np.array([1])
    parts = [chunk_counts(open_group(c), t, ids, 2) for c in counts]
    np.testing.assert_array_equal(sum(p.activation for p in parts), active)
    for part, (a, b) in zip(parts, ((0, 9), (9, 17), (17, 23))):
        rows = [r for r in range(a, b) if r not in skipped]
        np.testing.assert_array_equal(part.intersection[:, 1], (values[rows] > t[None, :, None, None]).sum((0, 2, 3)))


def test_state_files_keep_counts_beyond_32_bits():
    """Chunk states store counts in 32 bits when they fit, and in 64 bits otherwise."""
    for count in (7, 2**32 + 5):
        hist = Q.Histogram(10, np.zeros(2, np.int64), np.array([1]), np.array([3]), np.array([count]), 8)
        packed = T._pack(hist, "x_")
        assert packed["x_count"].dtype == (np.uint32 if count < 2**32 else np.int64)
        assert T._unpack(packed, "x_").count.tolist() == [count]
