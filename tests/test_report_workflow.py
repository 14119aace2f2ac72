"""The report and the adversarial analysis of a tiny run, end to end: top images against brute force, outlines
against the stores, the pages in headless Chromium, Snakemake's own report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import zarr
from browser import Chromium, find_chromium
from conftest import TINY, Workflow, merged
from PIL import Image

from netdissect.datasets import load_image
from netdissect.report import gallery
from netdissect.upsample import upsample

pytestmark = pytest.mark.workflow
LAYERS = ("conv3", "conv4")
K = 5
CARDS = """(() => {
  const cards = [...document.querySelectorAll('.card')];
  const shown = (c) => { const i = c.querySelector('img'); return i && i.complete && i.naturalWidth > 0; };
  return {cards: cards.length, broken: cards.filter((c) => !shown(c)).map((c) => c.id)};
})()"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    config = {"report": {"top_images": K}, "adversarial": {"activate": True, "images": 4, "steps": 3}}
    wf = Workflow(folder, merged(TINY, config))
    wf.run()
    return wf


def stored(results, layer):
    """Every activation row of a layer, its maps (float32, as the tally reads them) and its thresholds."""
    chunks = sorted((results / "activations" / layer).glob("*.zarr"))
    groups = [zarr.open_group(str(c), mode="r") for c in chunks]
    rows = np.concatenate([g["rows"][:] for g in groups])
    acts = np.concatenate([g["activations"][:].astype(np.float32) for g in groups])
    thresholds = zarr.open_group(str(results / "dissect" / layer / "tally.zarr"), mode="r")["thresholds"][:]
    return rows, acts, thresholds


def block_means(difference: np.ndarray, factor: int) -> np.ndarray:
    """(H, W) mean absolute difference over each mask pixel's factor x factor block of a thumbnail."""
    height, width = difference.shape[0] // factor, difference.shape[1] // factor
    return np.abs(difference).reshape(height, factor, width, factor, 3).mean((1, 3, 4))


def test_top_images_equal_brute_force_and_outlines_equal_the_thresholded_maps(run):
    results = run.results
    label_size = zarr.open_group(str(next((results / "segment").glob("*.zarr"))), mode="r")["labels"].shape[-2:]
    for layer in LAYERS:
        rows, acts, thresholds = stored(results, layer)
        top = pd.read_csv(results / "report" / layer / "top.csv")
        peaks = acts.reshape(*acts.shape[:2], -1).max(-1)
        for unit in range(acts.shape[1]):
            ranked = sorted(zip(-peaks[:, unit], rows))[:K]  # peak descending, ties by the lower row
            mine = top[top["unit"] == unit].sort_values("rank")
            assert list(mine["row"]) == [r for _, r in ranked]
        factor = gallery.scale_factor(label_size)
        side = (factor * label_size[0], factor * label_size[1])
        for unit in (0, 7, acts.shape[1] - 1):
            strip = np.asarray(Image.open(results / "report" / layer / "units" / f"{unit:04d}.jpg").convert("RGB"))
            mine = top[top["unit"] == unit].sort_values("rank")
            for rank, (row, image) in enumerate(zip(mine["row"], mine["image"])):
                tile = strip[:, rank * (side[1] + gallery.GAP) :][:, : side[1]].astype(int)
                value = upsample(acts[list(rows).index(row), unit], label_size)
                mask = value > thresholds[unit]  # the tally's active pixels of this unit on this image
                base = gallery.thumbnail(load_image(image), side)
                assert np.abs(tile - gallery.outlined(base, mask)).mean() < 3  # JPEG's rounding only

                # each mask pixel's block is in full colour where the unit is active, dimmed elsewhere
                kept, dim = (block_means(tile - x, factor) for x in (base, gallery.dimmed(base)))
                decidable = block_means(base - gallery.dimmed(base).astype(int), factor) > 24  # not near black
                assert decidable.mean() > 0.5
                np.testing.assert_array_equal((kept < dim)[decidable], mask[decidable])


def test_report_renders_in_headless_chromium(run):
    executable = find_chromium()
    if executable is None:
        pytest.skip("neither chromium nor apt-get to install Debian's chromium package is available")
    report = run.results / "report"
    with Chromium(executable) as browser:
        browser.open(report / "index.html")
        assert browser.evaluate("document.querySelectorAll('nav a').length") >= 1 + len(LAYERS)
        assert "Adversarial attack" in browser.evaluate("document.body.innerText")
        browser.screenshot(report / "screenshot.png")
        for layer in LAYERS:
            browser.open(report / layer / "index.html")
            units = len(pd.read_csv(run.results / "dissect" / layer / "units.csv"))
            assert browser.evaluate(CARDS) == {"cards": units, "broken": []}
            assert browser.evaluate("document.querySelectorAll('#units tbody tr').length") == units
            browser.evaluate("document.getElementById('filter').value = 'zzz-nothing'")
            browser.evaluate("document.getElementById('filter').dispatchEvent(new Event('input'))")
            assert browser.evaluate("document.querySelectorAll('.card:not(.hidden)').length") == 0
            browser.evaluate("document.querySelector('.cards').scrollIntoView()")
            browser.screenshot(report / layer / "screenshot.png")
        assert browser.problems == []
    assert (report / "screenshot.png").stat().st_size > 10_000


def test_adversarial_outputs_and_snakemakes_own_report(run):
    results = run.results
    summary = pd.read_csv(results / "adversarial" / "summary.csv")
    assert list(summary.columns)[:5] == ["layer", "source", "target", "images", "success_rate"]
    assert {"source_change", "target_change", "other_change", "ranking", "status"} <= set(summary.columns)
    assert set(summary["layer"]) == set(LAYERS) and set(summary["ranking"]) == {"correlation"}
    for layer in LAYERS:
        units = pd.read_csv(results / "adversarial" / layer / "units.csv")
        assert list(units.columns) == ["source", "target", "unit", "clean_mean", "attacked_mean", "change", "group"]
        scale = units[["clean_mean", "attacked_mean"]].abs().to_numpy().max()  # the CSV keeps 9 significant digits
        np.testing.assert_allclose(units["change"], units["attacked_mean"] - units["clean_mean"], atol=1e-8 * scale)
    assert run.dry_run_jobs("report") == {} and run.dry_run_jobs("adversarial") == {}
    run.run("--report", str(run.folder / "workflow-report.zip"))
    assert (run.folder / "workflow-report.zip").stat().st_size > 10_000
