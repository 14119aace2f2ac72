"""Atomic outputs, provenance checks and the refusal to mix stores built from different inputs."""

from __future__ import annotations

from types import SimpleNamespace as NS

import numpy as np
import pandas as pd
import pytest

from netdissect.stages import tally as tally_stage
from netdissect.stores import (
    StoreError,
    atomic_path,
    open_group,
    save_state,
    write_csv,
    write_group,
)


def test_failed_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out.zarr"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "part").write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_store_without_provenance_is_not_trusted(tmp_path):
    write_group(tmp_path / "ok.zarr", {"a": np.arange(3)}, {"provenance": {"inputs": {}}})
    assert open_group(tmp_path / "ok.zarr")["a"][:].tolist() == [0, 1, 2]
    import zarr

    half = zarr.open_group(str(tmp_path / "half.zarr"), mode="w")
    half.create_array("a", shape=(3,), dtype="i8")
    with pytest.raises(StoreError, match="incomplete"):
        open_group(tmp_path / "half.zarr")


def make_chunk(folder, dataset_digest, model="m"):
    rows = np.arange(4)
    acts = np.random.default_rng(0).random((4, 2, 3, 3)).astype(np.float16)
    write_group(
        folder / "acts.zarr",
        {"activations": acts, "rows": rows},
        {"provenance": {"inputs": {"dataset": dataset_digest, "model": model, "layer": "l"}}},
    )
    labels = np.ones((4, 1, 6, 6), np.uint16)
    write_group(
        folder / "seg.zarr",
        {"labels": labels, "image_labels": np.zeros((4, 1), np.uint16), "rows": rows},
        {"provenance": {"inputs": {"dataset": "chunk-A", "segmenter": "s"}}},
    )
    write_csv(folder / "concepts.csv", pd.DataFrame({"id": [1], "name": ["x"], "category": ["object"]}))
    level = np.full(2, 0.5, np.float32)
    save_state(folder / "bracket.npz", {"lo": level, "hi": level}, {"k": 1, "total": 4 * 36, "quantile": 0.01})


def tally_job(folder):
    return NS(
        input=NS(
            acts=str(folder / "acts.zarr"),
            segment=str(folder / "seg.zarr"),
            bracket=str(folder / "bracket.npz"),
            concepts=str(folder / "concepts.csv"),
        ),
        output=NS(counts=str(folder / "counts.zarr")),
        params=NS(),
    )


def test_tally_refuses_activations_and_labels_of_different_images(tmp_path):
    make_chunk(tmp_path, "chunk-B")
    with pytest.raises(StoreError, match="different inputs"):
        tally_stage.tally_chunk(tally_job(tmp_path))
    assert not (tmp_path / "counts.zarr").exists()


def test_tally_reduce_refuses_chunks_of_different_models(tmp_path):
    counts = []
    for name, model in (("a", "m1"), ("b", "m2")):
        folder = tmp_path / name
        make_chunk(folder, "chunk-A", model)
        tally_stage.tally_chunk(tally_job(folder))
        counts.append(str(folder / "counts.zarr"))
    job = NS(
        input=NS(
            counts=counts, bracket=str(tmp_path / "a" / "bracket.npz"), concepts=str(tmp_path / "a" / "concepts.csv")
        ),
        output=NS(tally=str(tmp_path / "tally.zarr"), thresholds=str(tmp_path / "thresholds.csv")),
        params=NS(union="all", quantile=0.01),
    )
    with pytest.raises(StoreError, match="model differs"):
        tally_stage.tally_reduce(job)
