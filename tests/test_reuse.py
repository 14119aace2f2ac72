"""Reruns reuse the shared world and trained networks (results/cache); long jobs log their progress."""

from __future__ import annotations

import pytest

from netdissect.layout import RunLayout

pytestmark = pytest.mark.workflow
SHARED = {"synthesize", "train_classifier", "train_segmenter"}
CHUNK = "0000000-0000020"


def test_a_new_run_reuses_the_world_and_the_training_and_every_job_logs_progress(workflow_factory, monkeypatch):
    monkeypatch.setenv("NETDISSECT_PROGRESS_SECONDS", "0")  # a line after every step, however short the job
    wf = workflow_factory({"segmenter": {"kind": "trained"}, "dataset": {"size": 20}, "model": {"layers": ["conv4"]}})
    out = RunLayout.of_run(wf.config["run"])  # targets relative to the working folder
    proc = wf.run("train_segmenter", out.activations("conv4", CHUNK), out.segmentation(CHUNK))

    cache = wf.folder / "results" / "cache"
    classifier_log = next(cache.glob("classifier-*/train_classifier.log")).read_text()
    assert "training: 1/3 steps (33%)" in classifier_log and "training: 3/3 steps (100%)" in classifier_log
    assert "epoch 1/1: loss" in classifier_log and "left" in classifier_log
    assert "training: 3/3 steps" in next(cache.glob("segmenter-*/train_segmenter.log")).read_text()
    assert "world: 146/146 images (100%)" in next(cache.glob("world-*/synthesize.log")).read_text()
    activations = (wf.results / "logs" / "activations" / f"{CHUNK}.log").read_text()
    assert "activations of rows 0-20: 3/3 batches (100%)" in activations
    assert "segmenting rows 0-20: 1/1 batches" in (wf.results / "logs" / "segment" / f"{CHUNK}.log").read_text()
    assert "training: 3/3 steps" in proc.stderr  # the console shows them too

    base = wf.config
    wf.set_config({**base, "run": "other", "model": {"layers": ["conv3"]}, "quantile": 0.02})
    assert not SHARED & set(wf.dry_run_jobs())
    wf.set_config({**base, "run": "longer", "classifier": {**base["classifier"], "epochs": 2}})
    assert SHARED & set(wf.dry_run_jobs()) == {"train_classifier"}
