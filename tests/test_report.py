"""The report's pure parts: mergeable top-k against brute force, gallery outlines against the tally's definition,
the HTML pages' templates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from netdissect import topk
from netdissect.report import gallery, html
from netdissect.upsample import upsample


def brute_force_top(peaks: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, sort every image by (peak descending, row ascending) one by one and keep k."""
    out_rows, out_peaks = [], []
    for u in range(peaks.shape[1]):
        ranked = sorted(zip(-peaks[:, u], rows))[:k]
        out_rows.append([r for _, r in ranked])
        out_peaks.append([-p for p, _ in ranked])
    return np.array(out_peaks, np.float32), np.array(out_rows)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("chunk", [1, 3, 7, 25, 60])
def test_merged_top_k_equals_brute_force_for_any_chunking(seed, chunk):
    rng = np.random.default_rng(seed)
    n, units, k = 60, 5, 8
    maps = rng.integers(0, 6, (n, units, 3, 3)).astype(np.float16)  # few distinct values: many ties
    maps[:, 4] = 0  # a dead unit: every image ties
    rows = np.sort(rng.choice(1000, n, replace=False))
    peaks = topk.peaks(maps)
    np.testing.assert_array_equal(peaks, maps.reshape(n, units, -1).max(-1).astype(np.float32))
    states = [topk.top_k(peaks[a : a + chunk], rows[a : a + chunk], k) for a in range(0, n, chunk)]
    order = rng.permutation(len(states))  # merge order does not matter, nor merging in stages
    half = len(states) // 2
    parts = [topk.merge([states[i] for i in order[:half]], k)] if half else []
    merged = topk.merge(parts + [states[i] for i in order[half:]], k)
    want_peaks, want_rows = brute_force_top(peaks, rows, k)
    np.testing.assert_array_equal(merged.rows, want_rows)
    np.testing.assert_array_equal(merged.peaks, want_peaks)
    assert list(merged.rows[4]) == list(rows[:k])  # ties go to the lowest rows


def test_top_k_of_fewer_images_than_k_and_mismatched_states():
    state = topk.top_k(np.array([[1.0, 2.0], [3.0, 0.0]], np.float32), np.array([5, 9]), 4)
    assert state.rows.tolist() == [[9, 5], [5, 9]]
    with pytest.raises(ValueError, match="different unit counts"):
        topk.merge([state, topk.top_k(np.zeros((2, 3), np.float32), np.array([1, 2]), 4)], 4)


def test_outline_marks_exactly_the_thresholded_upsampled_map():
    rng = np.random.default_rng(1)
    maps = rng.random((3, 2, 4, 4)).astype(np.float16)  # (units, images, h, w) as stored
    thresholds = np.array([0.5, 0.7, 2.0], np.float32)  # unit 2 is never active
    size = (10, 10)
    masks = gallery.active_masks(maps, thresholds, size)
    expected = upsample(maps.astype(np.float32), size) > thresholds[:, None, None, None]
    np.testing.assert_array_equal(masks, expected)
    assert masks[:2].any() and not masks[2].any()
    factor = gallery.scale_factor(size)
    assert factor == 10 and gallery.scale_factor((112, 112)) == 1
    image = rng.integers(60, 256, (16, 16, 3)).astype(np.uint8)  # no pixel is 0, so dimming changes each one
    base = gallery.thumbnail(image, (factor * size[0], factor * size[1]))
    for mask in masks.reshape(-1, *size):
        shown = gallery.outlined(base, mask)
        kept = (shown == base).all(-1) | (shown == gallery.OUTLINE).all(-1)
        assert not (kept & (shown == gallery.dimmed(base)).all(-1)).any()
        blocks = kept.reshape(size[0], factor, size[1], factor)
        assert (blocks.all((1, 3)) == blocks.any((1, 3))).all()  # each mask pixel is one whole block
        np.testing.assert_array_equal(blocks.all((1, 3)), mask)
        outline = (shown == gallery.OUTLINE).all(-1) & ~(base == gallery.OUTLINE).all(-1)
        region = mask.repeat(factor, 0).repeat(factor, 1)
        assert not (outline & ~region).any()  # the outline is drawn inside the region, on its boundary
        if mask.any():
            assert outline.any()


def test_strip_and_templates():
    tiles = [np.full((4, 5, 3), i, np.uint8) for i in range(3)]
    out = gallery.strip(tiles, gap=2)
    assert out.shape == (4, 19, 3) and (out[:, 5:7] == 255).all() and (out[:, 14:] == 2).all()
    table = html.table_of(pd.DataFrame({"a": [1.23456, np.nan], "b": ["<x>", "y"]}), {"a": "{:.2f}"})
    assert table == {"columns": ["a", "b"], "rows": [["1.23", "<x>"], ["", "y"]]}
    unit = {"unit": 0, "label": "<b>", "category": "object", "iou": 0.5, "threshold": 1.0, "detector": True}
    page = html.render(
        "layer.html",
        run="r",
        layer="conv",
        layers=["conv"],
        units=[unit],
        cards=[{**unit, "strip": "units/0000.png", "rows": "1, 2", "height": 4, "width": 9}],
        detectors=1,
        concepts=1,
        iou_threshold=0.04,
        per_concept=[{"category": "object", "label": "<b>", "units": 1}],
        figures=[html.FigureLink("d.png", "d.svg", "detectors")],
        units_csv="../../dissect/conv/units.csv",
        k=2,
        label_size=(2, 2),
    )
    assert "&lt;b&gt;" in page and "<b>" not in page.split("<body>")[1]  # labels are escaped
    assert 'src="units/0000.png"' in page and "http" not in page  # nothing is fetched from a network
