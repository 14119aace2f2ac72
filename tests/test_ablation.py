"""Ablation maths and tails on tiny tensors and the hand-weighted OneUnitNet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from basic_models import OneUnitNet, one_unit_images

from netdissect import ablation
from netdissect.hooks import EditBatch, LayerHooks, UnitEdit
from netdissect.tail import GraphTail, HookedTail, LinearTail, batch_counts, cut, graph_after, sweep_counts

# 2 ablations x 5 images x 3 classes; targets 0, 0, 1, 2, 2
LOGITS = torch.tensor(
    [
        [[3.0, 1, 0], [0, 2, 1], [0, 5, 1], [1, 0, 4], [2, 1, 0]],
        [[0.0, 1, 0], [0, 0, 0], [0, 5, 6], [1, 0, 4], [0, 0, 3]],
    ]
)
TARGETS = torch.tensor([0, 0, 1, 2, 2])


def test_counts_and_metrics_equal_hand_computed_confusion() -> None:
    counts = batch_counts(LOGITS, TARGETS)
    # ablation 0 predicts 0, 1, 1, 2, 0; ablation 1 predicts 1, 0 (tie: lowest index), 2, 2, 2
    confusion = np.zeros((2, 3, 3), np.int64)
    for a, predicted in enumerate(([0, 1, 1, 2, 0], [1, 0, 2, 2, 2])):
        for t, p in zip(TARGETS.tolist(), predicted):
            confusion[a, t, p] += 1
    np.testing.assert_array_equal(counts.true_positive, np.diagonal(confusion, axis1=1, axis2=2))
    np.testing.assert_array_equal(counts.predicted, confusion.sum(1))
    np.testing.assert_array_equal(counts.images, [2, 1, 2])
    # class 0 in ablation 0: TP 1, FN 1, FP 1 (image 4), TN 2 -> (1/2 + 2/3) / 2
    bacc = ablation.balanced_accuracy(counts)
    assert bacc[0, 0] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert bacc[0, 1] == pytest.approx((1 / 1 + 3 / 4) / 2)  # class 1: TP 1, FP 1 (image 1), TN 3
    assert bacc[1, 2] == pytest.approx((2 / 2 + 2 / 3) / 2)  # class 2: TP 2, FP 1 (image 2), TN 2
    np.testing.assert_allclose(ablation.accuracy(counts), [3 / 5, 3 / 5])
    np.testing.assert_allclose(ablation.class_accuracy(counts)[0], [1 / 2, 1, 1 / 2])
    # margins on the images of each class: own logit minus the largest other
    margins = ablation.mean_margin(counts)
    np.testing.assert_allclose(margins[0], [((3 - 1) + (0 - 2)) / 2, 5 - 1, ((4 - 1) + (0 - 2)) / 2])
    np.testing.assert_allclose(margins[1], [((0 - 1) + 0) / 2, 5 - 6, ((4 - 1) + (3 - 0)) / 2])
    halves = batch_counts(LOGITS[:, :2], TARGETS[:2]) + batch_counts(LOGITS[:, 2:], TARGETS[2:])
    np.testing.assert_array_equal(halves.true_positive, counts.true_positive)
    np.testing.assert_array_equal(halves.predicted, counts.predicted)
    np.testing.assert_allclose(halves.margin_sum, counts.margin_sum)


def test_ranking_breaks_ties_by_margin_then_unit() -> None:
    drop = np.array([0.0, 0.2, 0.0, 0.2, 0.0])
    margin = np.array([0.1, 0.0, 0.3, 0.5, 0.1])
    assert ablation.importance_ranking(drop, margin).tolist() == [3, 1, 2, 0, 4]
    assert ablation.iou_ranking(np.array([0.1, 0.3, 0.3, 0.0])).tolist() == [1, 2, 0, 3]


def test_sweep_specs_and_tables() -> None:
    order = np.array([3, 1, 0, 2])
    specs = ablation.sweep_specs({"a": order}, units=4, ks=[1, 2, 4], seeds=2, seed=7, concept_ranking=order[::-1])
    kinds = [(s.kind, s.k, s.units) for s in specs]
    assert kinds[:7] == [
        ("none", 0, ()),
        ("top", 1, (3,)),
        ("all_but_top", 1, (0, 1, 2)),
        ("least", 1, (2,)),
        ("top", 2, (1, 3)),
        ("all_but_top", 2, (0, 2)),
        ("least", 2, (0, 2)),
    ]
    randoms = [s for s in specs if s.kind == "random"]
    assert [(s.k, s.seed) for s in randoms] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert randoms == [s for s in ablation.sweep_specs({}, 4, [1, 2], 2, 7) if s.kind == "random"]
    assert [s.units for s in specs if s.kind == "concept"] == [(2,), (0, 2)]
    counts = batch_counts(LOGITS[[0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]], TARGETS)
    table = ablation.sweep_table(specs, counts, ["a", "b", "c"], ["a", "b"], "val")
    assert len(table) == 2 + 6 + 2 * 4 + 2 * 2  # none and random and concept for both classes, top etc. for a
    assert table["seed"].isna().sum() == len(table) - 8
    sweeps = pd.DataFrame(
        [
            ("a", "none", 0, None, "val", 0.9),
            ("a", "top", 4, None, "val", 0.7),
            ("a", "top", 20, None, "val", 0.5),
            ("a", "all_but_top", 20, None, "val", 0.8),
            ("a", "random", 20, 0, "val", 0.85),
            ("a", "random", 20, 1, "val", 0.75),
        ],
        columns=["class", "kind", "k", "seed", "split", "balanced_acc"],
    )
    row = ablation.paper_table(sweeps).iloc[0]
    assert row["top_4"] == 0.7 and row["top_20"] == 0.5 and row["all_but_top_20"] == 0.8
    assert row["random_20"] == pytest.approx(0.8) and row["top_20_drop_vs_random"] == pytest.approx(4)
    assert ablation.top_counts({"a": order, "b": order[::-1]}, 4, top=1).tolist() == [0, 0, 1, 1]


def _naive(model, images, labels, edits):
    """Counts of a full forward pass per ablation, edited by LayerHooks."""
    parts = []
    for edit in edits:
        with LayerHooks(model, edits={"features": edit}) as hooks:
            parts.append(batch_counts(hooks.run(images)[None], labels))
    return ablation.Counts.concat(parts)


def _features(model, images):
    with LayerHooks(model, capture=["features"], stop_after_capture=True) as hooks:
        hooks.run(images)
    return hooks.captured["features"]


@pytest.mark.parametrize("variant, kind", [("linear", LinearTail), ("graph", GraphTail), ("dynamic", HookedTail)])
def test_tails_equal_full_forward_passes_with_edits(variant, kind) -> None:
    model = OneUnitNet(variant)
    tail = cut(model, "features")
    assert isinstance(tail, kind)
    images, labels = one_unit_images(4)
    edits = [UnitEdit([u], value) for u in range(4) for value in (0.0, 0.3)] + [UnitEdit([0, 1, 3]), UnitEdit(())]
    inputs = images if tail.needs_images else _features(model, images)
    for edit, logits in zip(edits, tail.logits(inputs, edits)):
        with LayerHooks(model, edits={"features": edit}) as hooks:
            torch.testing.assert_close(logits.float(), hooks.run(images))
    naive = _naive(model, images, labels, edits)
    for first, per_pass in ((0, 3), (2, 4), (5, 1)):
        batches = [(inputs[:5], labels[:5]), (inputs[5:], labels[5:])]
        counts = sweep_counts(tail, batches, edits[first:], first, per_pass, 3)
        np.testing.assert_array_equal(counts.true_positive, naive.true_positive[first:])
        np.testing.assert_array_equal(counts.predicted, naive.predicted[first:])
        np.testing.assert_allclose(counts.margin_sum, naive.margin_sum[first:], rtol=1e-6)


def test_one_unit_alone_carries_class_zero() -> None:
    model = OneUnitNet()
    images, labels = one_unit_images(5)
    tail = cut(model, "features")
    edits = [UnitEdit(())] + [UnitEdit([u]) for u in range(4)]
    counts = sweep_counts(tail, [(_features(model, images), labels)], edits, 0, 2, 3)
    table = ablation.single_unit_table(counts.take([0]), counts.take(range(1, 5)), range(4), ["a", "b", "c"], "train")
    assert ablation.rankings(table)["a"][0] == 0
    removed = table[(table["unit"] == 0) & (table["class"] == "a")].iloc[0]
    assert removed["balanced_acc"] == 0.5 and removed["drop"] == 0.5
    assert ablation.balanced_accuracy(counts)[0].tolist() == [1.0, 1.0, 1.0]


def test_edit_batch_replicates_the_layer_output() -> None:
    model = OneUnitNet()
    images, _ = one_unit_images(1)
    with LayerHooks(model, capture=["features"], edits={"features": EditBatch([UnitEdit([0]), UnitEdit([1])])}) as h:
        out = h.run(images)
    assert out.shape == (6, 3) and h.captured["features"].shape == (6, 4, 2, 2)
    assert (h.captured["features"][:3, 0] == 0).all() and (h.captured["features"][3:, 1] == 0).all()


def test_graph_after_refuses_a_bypassed_layer() -> None:
    class Skip(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return (self.a(x) + x).mean((2, 3))

    with pytest.raises(Exception, match="does not pass through"):
        graph_after(Skip(), "a")
    assert isinstance(cut(Skip(), "a"), HookedTail)


def test_describe_counts_the_classes_the_claims_hold_for() -> None:
    table = pd.DataFrame(
        {
            "class": ["a", "b", "c"],
            "unchanged": [0.9, 0.9, 0.9],
            "top_20": [0.5, 0.85, 0.9],
            "all_but_top_20": [0.8, 0.55, 0.7],
            "random_20": [0.8, 0.95, 0.9],  # a: drop 0.4 >= 3 x 0.1; b: random raises it; c: no drop at all
            "chance": [0.5, 0.5, 0.5],
        }
    )
    removal, kept = ablation.describe(table)
    assert "for 2 of 3 classes (a, b)" in removal and "0.750 without the top 20" in removal
    assert "left 2 of 3 classes" in kept and "(a, c; mean 0.683)" in kept
    table.loc[0, "random_20"] = 0.75  # a's top drop (0.4) is now under 3 times the random drop (0.15)
    assert "for 1 of 3 classes (b)" in ablation.describe(table)[0]
    assert "No set sweep" in ablation.describe(table.drop(columns="all_but_top_20"))[0]
