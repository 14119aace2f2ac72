"""The whole workflow through snakemake on tiny configurations: results, brute-force agreement, reruns."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import zarr

from netdissect.cli import main
from netdissect.upsample import upsample

pytestmark = pytest.mark.workflow
RANDOM_MODEL = {"model": {"weights": None, "random_init": True}}


def read_store(path, name):
    return zarr.open_group(str(path), mode="r")[name][:]


def brute_force_layer(results, layer, quantile):
    """Thresholds and IoU of a layer recomputed from its stores by full upsampling and sorting."""
    chunks = sorted((results / "activations" / layer).glob("*.zarr"))
    acts = np.concatenate([read_store(c, "activations").astype(np.float32) for c in chunks])
    segs = [results / "segment" / c.name for c in chunks]
    labels = [read_store(s, "labels") for s in segs]
    planes = max(x.shape[1] for x in labels)
    labels = np.concatenate([np.pad(x, ((0, 0), (0, planes - x.shape[1]), (0, 0), (0, 0))) for x in labels])
    image_labels = [read_store(s, "image_labels") for s in segs]
    width = max(x.shape[1] for x in image_labels)
    image_labels = np.concatenate([np.pad(x, ((0, 0), (0, width - x.shape[1]))) for x in image_labels])
    up = upsample(acts, labels.shape[-2:])
    values = up.transpose(1, 0, 2, 3).reshape(acts.shape[1], -1)
    k = round(quantile * values.shape[1] * 1e6) // 1_000_000
    t = -np.sort(-values, axis=1)[:, k]
    active = up > t[None, :, None, None]
    concepts = pd.read_csv(results / "concepts.csv", keep_default_na=False)
    iou = np.zeros((acts.shape[1], len(concepts)))
    for j, cid in enumerate(concepts["id"]):
        mask = (labels == cid).any(1) | (image_labels == cid).any(1)[:, None, None]
        inter = (active & mask[:, None]).sum((0, 2, 3))
        union = active.sum((0, 2, 3)) + mask.sum() - inter
        iou[:, j] = np.where(union > 0, inter / np.maximum(union, 1), 0)
    return t, iou


def test_tiny_run_matches_brute_force_and_reruns_nothing(workflow_factory, capsys):
    wf = workflow_factory()
    wf.run()
    results = wf.results
    concepts = pd.read_csv(results / "concepts.csv", keep_default_na=False)
    assert list(concepts.columns) == ["id", "name", "category"]
    for layer in ("conv3", "conv4"):
        units = pd.read_csv(results / "dissect" / layer / "units.csv", keep_default_na=False)
        assert {"unit", "label", "category", "iou", "threshold", "detector"} <= set(units.columns)
        t, iou = brute_force_layer(results, layer, 0.01)
        np.testing.assert_array_equal(units["threshold"].to_numpy(np.float32), t.astype(np.float32))
        stored = read_store(results / "dissect" / layer / "tally.zarr", "iou")
        np.testing.assert_allclose(stored, iou, rtol=1e-6, atol=1e-7)
        best = iou.argmax(1)
        named = np.where(iou.max(1) > 0, concepts["name"].to_numpy()[best], "")
        assert list(units["label"]) == list(named)
        assert (results / "dissect" / layer / "detectors.png").stat().st_size > 1000
        prov = json.loads((results / "dissect" / layer / "provenance.json").read_text())
        assert prov["config"]["quantile"] == 0.01 and prov["config"]["iou_threshold"] == 0.04
        assert {"torch", "numpy", "zarr", "netdissect"} <= set(prov["versions"])
        assert prov["inputs"]["layer"] == layer and prov["inputs"]["weights"] and prov["inputs"]["dataset_index"]
    assert (results / "summary.csv").exists()
    assert wf.dry_run_jobs() == {}
    assert main(["summary", str(results)]) == 0
    printed = capsys.readouterr().out
    for layer in ("conv3", "conv4"):
        units = pd.read_csv(results / "dissect" / layer / "units.csv", keep_default_na=False)
        assert f"{layer}: {int(units['detector'].sum())} of {len(units)} units are detectors" in printed


def test_results_identical_for_chunk_sizes_and_cores(workflow_factory):
    tables = []
    for name, chunk_size, cores in (("a", 50, 1), ("b", 17, 2)):
        statistics = {"statistics": {"activate": True, "resamples": 50}}  # its columns join units.csv
        wf = workflow_factory({**RANDOM_MODEL, **statistics, "chunk_size": chunk_size}, name=name)
        wf.run(cores=cores)
        assert "label_stability" in pd.read_csv(wf.results / "dissect" / "conv4" / "units.csv").columns
        tables.append(
            {
                layer: (wf.results / "dissect" / layer / "units.csv").read_bytes()
                + read_store(wf.results / "dissect" / layer / "tally.zarr", "intersection").tobytes()
                for layer in ("conv3", "conv4")
            }
        )
    assert tables[0] == tables[1]


def test_incremental_reruns(workflow_factory):
    wf = workflow_factory(
        {**RANDOM_MODEL, "dataset": {"size": 40}, "model": {**RANDOM_MODEL["model"], "layers": ["conv3"]}}
    )
    wf.run()
    base = wf.config

    wf.set_config({**base, "iou_threshold": 0.1})
    labels = {"label_units": 1, "layer_figure": 1, "summary": 1}
    pages = {"layer_report": 1, "report_index": 1}  # the top images are not searched again
    assert wf.dry_run_jobs() == labels | pages | {"all": 1}
    assert wf.dry_run_jobs("dissect") == labels | {"dissect": 1}

    wf.set_config({**base, "union": "category"})
    assert wf.dry_run_jobs() == {"tally": 1} | labels | pages | {"all": 1}

    wf.set_config({**base, "report": {"top_images": 3}})
    assert wf.dry_run_jobs() == {"top_images_chunk": 2} | pages | {"all": 1}

    wf.set_config({**base, "quantile": 0.02})
    jobs = wf.dry_run_jobs()
    assert jobs["threshold_coarse"] == 1 and jobs["tally_chunk"] == 2 and jobs["threshold_refine_chunk"] == 2
    assert not {"activations", "activations_layer", "segment_chunk"} & set(jobs)  # round 1 is not q-dependent

    wf.set_config({**base, "model": {**base["model"], "layers": ["conv3", "conv2"]}})
    jobs = wf.dry_run_jobs()
    assert jobs["activations"] == 2 and jobs["tally"] == 1 and jobs["label_units"] == 1
    assert "segment_chunk" not in jobs and "activations_layer" not in jobs

    wf.set_config({**base, "dataset": {**base["dataset"], "size": 50}})  # rows 40-49 form a new chunk
    jobs = wf.dry_run_jobs()
    assert jobs["activations"] == 1 and jobs["segment_chunk"] == 1 and jobs["threshold_coarse"] == 1


def test_trained_classifier_and_segmenter_report_their_quality(workflow_factory):
    wf = workflow_factory({"segmenter": {"kind": "trained", "epochs": 1}, "model": {"layers": ["conv4"]}})
    wf.run()
    training = json.loads(next((wf.folder / "results" / "cache").glob("classifier-*/training.json")).read_text())
    assert 0 <= training["val_accuracy"] <= 1 and len(training["classes"]) == 6
    quality = json.loads((wf.results / "segmenter" / "quality.json").read_text())
    assert set(quality["categories"]) == {"color", "object", "part", "material"}
    assert 0 < quality["pixel_accuracy"] <= 1 and 0 <= quality["mean_iou"] <= 1 and quality["images"] == 50
    units = pd.read_csv(wf.results / "dissect" / "conv4" / "units.csv", keep_default_na=False)
    assert len(units) == 128
