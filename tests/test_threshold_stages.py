"""The threshold rounds and the tally stage chained over chunk stores: thresholds.csv holds the exact order
statistic, including after a rescan when a sampled interval misses, and over images without a segmentation."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from netdissect import quantile as Q
from netdissect import statistics as S
from netdissect.stages import stage_job
from netdissect.stages import statistics as statistics_stage
from netdissect.stages import tally as tally_stage
from netdissect.stages import thresholds as T
from netdissect.stores import load_state, open_group, save_state, write_csv, write_group
from netdissect.tables import concept_vocabulary
from netdissect.tallystore import chunk_counts, read_layer_iou
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


def _tally_chunks(tmp_path, paths, bracket, **params) -> list[str]:
    """The tally stage's chunk job over every (activation, segmentation) store pair; the chunk stores' paths."""
    counts = []
    for i, (a, seg) in enumerate(paths):
        counts.append(str(tmp_path / "tally" / f"{i}.zarr"))
        inputs = {"acts": a, "segment": seg, "bracket": str(bracket), "concepts": str(tmp_path / "concepts.csv")}
        tally_stage.tally_chunk(stage_job(inputs, {"counts": counts[-1]}, **params))
    return counts


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
    counts = _tally_chunks(tmp_path, paths, bracket)
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


CONCEPTS = pd.DataFrame(
    {
        "id": [1, 2, 3, 4, 5, 6],
        "name": ["wall", "door", "red", "blue", "street", "park"],
        "category": ["object", "object", "color", "color", "scene", "scene"],
    }
)


def _labelled_stores(tmp_path, acts, chunks, skipped, rng):
    """Activation and segmentation stores with two pixel categories (one plane each) and one image-level one;
    some labelled images lack all object pixels, others all colour pixels, others both."""
    n = len(acts)
    labels = np.zeros((n, 2, *SIZE), np.uint16)
    labels[:, 0] = rng.choice([0, 1, 2], (n, *SIZE), p=[0.5, 0.3, 0.2])
    labels[:, 1] = rng.choice([0, 3, 4], (n, *SIZE), p=[0.6, 0.3, 0.1])
    labels[::3, 0] = 0  # no object in images 0, 3, 6, ...
    labels[1::4, 1] = 0  # no colour in images 1, 5, 9, ...
    scenes = rng.choice([0, 5, 6], (n, 1)).astype(np.uint16)
    paths = []
    for i, (a, b) in enumerate(chunks):
        rows = np.arange(a, b)
        keep = rows[~np.isin(rows, skipped)]
        inputs = {"dataset": str(i), "model": "m", "layer": "l"}
        acts_path, seg_path = tmp_path / "acts" / f"{i}.zarr", tmp_path / "seg" / f"{i}.zarr"
        write_group(acts_path, {"activations": acts[a:b], "rows": rows}, {"provenance": {"inputs": inputs}})
        arrays = {"labels": labels[keep], "image_labels": scenes[keep], "rows": keep}
        write_group(seg_path, arrays, {"provenance": {"inputs": {"dataset": str(i), "segmenter": "s"}}})
        paths.append((str(acts_path), str(seg_path)))
    write_csv(tmp_path / "concepts.csv", CONCEPTS)
    return paths, labels, scenes


def _oracle(values, labels, scenes, skipped, quantile):
    """Thresholds, counts above them and both unions' IoU, image by image, from the upsampled values."""
    n, units = values.shape[:2]
    total = n * SIZE[0] * SIZE[1]
    k = int(Fraction(str(quantile)) * total)  # floor(q M) with q exactly as written
    flat = values.transpose(1, 0, 2, 3).reshape(units, -1)
    t = -np.sort(-flat, axis=1)[:, k]
    iou = {"all": np.zeros((units, 6)), "category": np.zeros((units, 6))}
    images = [x for x in range(n) if x not in skipped]
    for j, (cid, category) in enumerate(zip(CONCEPTS["id"], CONCEPTS["category"])):
        same = CONCEPTS.loc[CONCEPTS["category"] == category, "id"].to_numpy()
        for u in range(units):
            inter = union_all = union_category = 0
            for x in images:
                active = values[x, u] > t[u]
                if category == "scene":
                    concept, carries = np.full(SIZE, scenes[x, 0] == cid), np.isin(scenes[x, 0], same)
                else:
                    plane = labels[x, 0 if category == "object" else 1]
                    concept, carries = plane == cid, np.isin(plane, same).any()
                inter += (active & concept).sum()
                union_all += active.sum() + concept.sum()
                union_category += (active.sum() if carries else 0) + concept.sum()
            for name, union in (("all", union_all), ("category", union_category)):
                iou[name][u, j] = inter / (union - inter) if union > inter else 0.0
    return t, (flat > t[:, None]).sum(1), iou


@pytest.mark.parametrize("seed", range(6))
def test_thresholds_counts_and_both_unions_equal_an_image_by_image_oracle(tmp_path, seed):
    """Several read batches per chunk, ties around t (activations on a coarse grid), several concepts in two
    pixel categories and an image-level one, images lacking a category, images without a segmentation."""
    rng = np.random.default_rng(seed)
    acts = np.round(np.maximum(rng.standard_normal((22, 5, 4, 3)), 0) * 2) / 2
    acts = acts.astype(np.float16)
    quantile = (0.03, 0.05, 0.1)[seed % 3]
    skipped = [2, 15]
    chunks = ((0, 10), (10, 22))
    paths, labels, scenes = _labelled_stores(tmp_path, acts, chunks, skipped, rng)
    acts_paths = [a for a, _ in paths]
    bracket = T.intervals_in_process(acts_paths, tmp_path / "states", quantile, SIZE, read_batch=3)
    counts = _tally_chunks(tmp_path, paths, bracket, read_batch=4)
    values = upsample(acts.astype(np.float32), SIZE)
    t, above, expected = _oracle(values, labels, scenes, skipped, quantile)
    assert any((values[:, u] == t[u]).sum() > 1 for u in range(5))  # ties at t
    for union in ("all", "category"):
        out = tmp_path / union
        outputs = {"tally": str(out / "tally.zarr"), "thresholds": str(out / "thresholds.csv")}
        inputs = {"counts": counts, "bracket": str(bracket), "concepts": str(tmp_path / "concepts.csv")}
        tally_stage.tally_reduce(stage_job(inputs, outputs, union=union, quantile=quantile))
        table = pd.read_csv(outputs["thresholds"])
        np.testing.assert_array_equal(table["threshold"].to_numpy(np.float32), t.astype(np.float32))
        np.testing.assert_array_equal(table["above"], above)
        np.testing.assert_allclose(open_group(outputs["tally"])["iou"][:], expected[union], rtol=1e-6, atol=1e-7)
        units = str(out / "units.csv")
        label_inputs = {"tally": outputs["tally"], "concepts": str(tmp_path / "concepts.csv")}
        params = {"iou_threshold": 0.04, "config": {}, "weights_digest": "w", "dataset_digest": "d"}
        tally_stage.label_units(stage_job(label_inputs, {"units": units, "provenance": str(out / "p.json")}, **params))
        labelled = pd.read_csv(units, keep_default_na=False)
        best = expected[union].max(1)
        names = [
            CONCEPTS["name"][np.flatnonzero(row == row.max())[0]] if row.max() > 0 else "" for row in expected[union]
        ]
        assert list(labelled["label"]) == names
        np.testing.assert_allclose(labelled["iou"], best, rtol=1e-6)
    assert not np.allclose(expected["all"], expected["category"])  # the fixture tells the unions apart


def test_statistics_chunk_sums_equal_one_call_over_its_labelled_images(tmp_path, monkeypatch):
    """The statistics stage reads a chunk in batches and weights gathered batches at once: its sums equal those of
    one call over all the chunk's labelled images, whatever the batch and gathering sizes."""
    rng = np.random.default_rng(3)
    acts = np.maximum(rng.standard_normal((22, 5, 4, 3)), 0).astype(np.float16)
    skipped = [2, 15]
    chunks = ((0, 10), (10, 22))
    paths, labels, scenes = _labelled_stores(tmp_path, acts, chunks, skipped, rng)
    bracket = T.intervals_in_process([a for a, _ in paths], tmp_path / "states", 0.05, SIZE)
    concepts = str(tmp_path / "concepts.csv")
    counts = _tally_chunks(tmp_path, paths, bracket)
    tally = str(tmp_path / "tally.zarr")
    inputs = {"counts": counts, "bracket": str(bracket), "concepts": concepts}
    tally_stage.tally_reduce(
        stage_job(inputs, {"tally": tally, "thresholds": str(tmp_path / "t.csv")}, union="all", quantile=0.05)
    )
    index = tmp_path / "index.csv"
    write_csv(index, pd.DataFrame({"row": np.arange(22), "image": [f"{r}.png" for r in range(22)], "split": "val"}))
    vocab = concept_vocabulary(CONCEPTS)
    iou, thresholds, _ = read_layer_iou(tally, CONCEPTS["id"].to_numpy())
    candidates = S.candidate_concepts(iou, 3)
    weights = S.resample_weights(22, 7, 0)
    cell_pixels = S.grid_cells(SIZE, 2)[1]
    monkeypatch.setattr(statistics_stage, "SUMS_IMAGES", 4)  # weight every second batch of 3 images
    for i, (a, seg) in enumerate(paths):
        out = str(tmp_path / f"sums{i}.npz")
        job_inputs = {"acts": a, "segment": seg, "tally": tally, "concepts": concepts, "index": str(index)}
        params = {"seed": 0, "resamples": 7, "candidates": 3, "grid": 2, "read_batch": 3}
        statistics_stage.statistics_chunk(stage_job(job_inputs, {"sums": out}, **params))
        rows = np.array([r for r in range(*chunks[i]) if r not in skipped])
        image = S.image_counts(
            acts[rows].astype(np.float32),
            labels[rows],
            scenes[rows],
            thresholds.astype(np.float32),
            candidates,
            vocab.category,
            vocab.num_categories,
            rows,
            2,
        )
        expected = S.chunk_sums(image, weights, cell_pixels)
        got = S.Sums.of_arrays(load_state(out)[0])
        assert got.images == len(rows) == expected.images
        for name in ("intersection", "activation", "activation_in_category", "label"):
            np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))
        for name in ("mask_total", "mask_moment", "label_total", "label_moment"):
            np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=1e-12)
