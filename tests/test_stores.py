"""Atomic outputs, provenance checks and the refusal to mix stores built from different inputs."""

from __future__ import annotations

from types import SimpleNamespace as NS

import numpy as np
import pandas as pd
import pytest

from netdissect.stages import StageError, stage_job
from netdissect.stages import tally as tally_stage
from netdissect.stages import thresholds as thresholds_stage
from netdissect.stores import (
    StoreError,
    atomic_path,
    open_group,
    read_rows,
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


@pytest.mark.parametrize(
    "rows",
    [[], [0], [3, 4, 5, 6], [9, 2, 5, 2], [0, 39], [1, 7, 30], list(range(40))],
    ids=["none", "one", "run", "unordered-repeats", "far-apart", "sparse", "all"],
)
def test_read_rows_equals_numpy_indexing(tmp_path, rows):
    data = np.arange(40 * 3 * 2, dtype=np.uint16).reshape(40, 3, 2)
    write_group(tmp_path / "s.zarr", {"a": data}, {"provenance": {"inputs": {}}}, chunk_rows=6)
    got = read_rows(open_group(tmp_path / "s.zarr")["a"], np.array(rows, np.int64))
    assert got.dtype == data.dtype and got.shape == (len(rows), 3, 2)
    np.testing.assert_array_equal(got, data[np.array(rows, np.int64)])


def test_store_without_provenance_is_not_trusted(tmp_path):
    write_group(tmp_path / "ok.zarr", {"a": np.arange(3)}, {"provenance": {"inputs": {}}})
    assert open_group(tmp_path / "ok.zarr")["a"][:].tolist() == [0, 1, 2]
    import zarr

    half = zarr.open_group(str(tmp_path / "half.zarr"), mode="w")
    half.create_array("a", shape=(3,), dtype="i8")
    with pytest.raises(StoreError, match="incomplete"):
        open_group(tmp_path / "half.zarr")


def make_chunk(folder, dataset_digest, model="m", layer="l", label_rows=None):
    rows = np.arange(4)
    label_rows = rows if label_rows is None else np.asarray(label_rows)
    acts = np.random.default_rng(0).random((4, 2, 3, 3)).astype(np.float16)
    write_group(
        folder / "acts.zarr",
        {"activations": acts, "rows": rows},
        {"provenance": {"inputs": {"dataset": dataset_digest, "model": model, "layer": layer}}},
    )
    labels = np.ones((len(label_rows), 1, 6, 6), np.uint16)
    write_group(
        folder / "seg.zarr",
        {"labels": labels, "image_labels": np.zeros((len(label_rows), 1), np.uint16), "rows": label_rows},
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


def _reduce_job(tmp_path, counts, bracket):
    return NS(
        input=NS(counts=counts, bracket=bracket, concepts=str(tmp_path / "a" / "concepts.csv")),
        output=NS(tally=str(tmp_path / "tally.zarr"), thresholds=str(tmp_path / "thresholds.csv")),
        params=NS(union="all", quantile=0.01),
    )


def _tallied(tmp_path, *chunks):
    """Tally chunk stores for (name, model, layer) chunks; returns their paths."""
    counts = []
    for name, model, layer in chunks:
        folder = tmp_path / name
        make_chunk(folder, "chunk-A", model, layer)
        tally_stage.tally_chunk(tally_job(folder))
        counts.append(str(folder / "counts.zarr"))
    return counts


@pytest.mark.parametrize(
    "differs, chunks",
    [("model", [("a", "m1", "l"), ("b", "m2", "l")]), ("layer", [("a", "m", "l1"), ("b", "m", "l2")])],
)
def test_tally_reduce_refuses_chunks_of_different_models_or_layers(tmp_path, differs, chunks):
    counts = _tallied(tmp_path, *chunks)
    with pytest.raises(StoreError, match=f"{differs} differs") as error:
        tally_stage.tally_reduce(_reduce_job(tmp_path, counts, str(tmp_path / "a" / "bracket.npz")))
    for path, (_, model, layer) in zip(counts, chunks):  # each store is named with its value
        assert f"{path}: {model if differs == 'model' else layer}" in str(error.value)
    assert not (tmp_path / "tally.zarr").exists() and not (tmp_path / "thresholds.csv").exists()


def test_tally_reduce_refuses_chunks_that_do_not_cover_the_images(tmp_path):
    counts = _tallied(tmp_path, ("a", "m", "l"), ("b", "m", "l"))
    bracket = str(tmp_path / "a" / "bracket.npz")  # made for one chunk's 4 * 36 values per unit
    with pytest.raises(StageError, match=f"tally chunks cover 288 values per unit but {bracket} 144"):
        tally_stage.tally_reduce(_reduce_job(tmp_path, counts, bracket))
    assert not (tmp_path / "tally.zarr").exists()


def test_tally_refuses_stores_that_share_no_images(tmp_path):
    make_chunk(tmp_path, "chunk-A", label_rows=[7, 8])
    job = tally_job(tmp_path)
    with pytest.raises(StageError, match=f"{job.input.acts} and {job.input.segment} share no images"):
        tally_stage.tally_chunk(job)
    assert not (tmp_path / "counts.zarr").exists()


def test_threshold_reduce_refuses_states_that_do_not_cover_the_images(tmp_path):
    stores = []
    for i in range(2):
        make_chunk(tmp_path / str(i), "chunk-A")
        stores.append(str(tmp_path / str(i) / "acts.zarr"))
    folder = tmp_path / "states"
    bracket = thresholds_stage.intervals_in_process(stores, folder, 0.01, (6, 6))
    assert bracket.exists()
    job = stage_job(
        {"states": [str(folder / "refine" / "0.npz")], "bracket": str(folder / "sample.npz"), "acts": stores[:1]},
        {"bracket": str(tmp_path / "again.npz")},
        label_size=(6, 6),
    )
    with pytest.raises(StageError, match=f"chunk states cover 144 values per unit but {folder / 'sample.npz'} 288"):
        thresholds_stage.refine_reduce(job)
    assert not (tmp_path / "again.npz").exists()
