"""Ablation maths and tails on tiny tensors and the hand-weighted OneUnitNet."""

from __future__ import annotations

import warnings

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


def test_metrics_of_a_class_without_images_are_nan_without_warnings() -> None:
    counts = batch_counts(LOGITS, torch.tensor([0, 0, 1, 1, 1]))  # class 2: no images
    counts.predicted[:, 2] = 0  # and never predicted: no negatives predicted as it either
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = [ablation.balanced_accuracy(counts), ablation.class_accuracy(counts), ablation.mean_margin(counts)]
    for values in metrics:
        assert np.isnan(values[:, 2]).all() and not np.isnan(values[:, :2]).any()
    empty = ablation.Counts.zeros(2, 3)
    assert [a.dtype for a in (empty.true_positive, empty.predicted, empty.images, empty.margin_sum)] == [
        np.int64,
        np.int64,
        np.int64,
        np.float64,
    ]
    assert empty.true_positive.shape == (2, 3) and empty.images.shape == (3,)
    none = counts.take([])
    assert none.true_positive.shape == (0, 3) and none.margin_sum.shape == (0, 3)
    np.testing.assert_array_equal(counts.take((1, 0)).predicted, counts.predicted[::-1])
    alone = ablation.Counts.concat([counts])
    np.testing.assert_array_equal(alone.images, counts.images)
    np.testing.assert_array_equal(alone.true_positive, counts.true_positive)


def test_single_unit_table_leaves_out_classes_without_images() -> None:
    targets = torch.tensor([0, 0, 2, 2, 2])  # class 1 has no image; class 0 two
    base = batch_counts(LOGITS[:1], targets)
    ablated = batch_counts(LOGITS[[1, 0]], targets)
    table = ablation.single_unit_table(base, ablated, [5, 3], ["x", "y", "z"], "val")
    assert list(table.columns) == ["unit", "class", "split", "balanced_acc", "drop", "margin_drop"]
    assert table[["unit", "class", "split"]].values.tolist() == [[5, "x", "val"], [5, "z", "val"], [3, "x", "val"]] + [
        [3, "z", "val"]
    ]
    bacc, base_bacc = ablation.balanced_accuracy(ablated), ablation.balanced_accuracy(base)[0]
    np.testing.assert_allclose(table["balanced_acc"], bacc[:, [0, 2]].ravel())
    np.testing.assert_allclose(table["drop"], (base_bacc[[0, 2]] - bacc[:, [0, 2]]).ravel())
    # unit 5 (ablation 1): class x's mean margin goes from (2 - 2) / 2 to (-1 + 0) / 2, z's from (-4 + 3 - 2) / 3
    # to (1 + 3 + 3) / 3; unit 3 (ablation 0) is the base
    np.testing.assert_allclose(table["margin_drop"], [0.5, -1 - 7 / 3, 0, 0])
    one = ablation.single_unit_table(
        batch_counts(LOGITS[:1, :3], targets[:3]), batch_counts(LOGITS[1:, :3], targets[:3]), [0], list("xyz"), "val"
    )
    assert one["class"].tolist() == ["x", "z"]  # z has one image: kept
    none = ablation.single_unit_table(base, ablation.Counts.zeros(0, 3), [], list("xyz"), "val")
    assert none.empty and none["unit"].dtype == np.int64 and none["class"].dtype == object


def test_rankings_and_paper_table_keep_the_classes_in_table_order() -> None:
    single = pd.DataFrame(
        {"unit": [1, 0, 0, 1], "class": ["b", "b", "a", "a"], "drop": [0.0, 0.1, 0.0, 0.0]}
        | {"margin_drop": [0.0, 0.0, 0.1, 0.2]}
    )
    ranked = ablation.rankings(single)
    assert list(ranked) == ["b", "a"] and ranked["b"].tolist() == [0, 1] and ranked["a"].tolist() == [1, 0]
    rows = []
    for name, base, random_acc in (("b", 0.9, 0.9), ("a", 0.8, 0.85)):  # no random drop, then a random gain
        rows += [(name, "none", 0, None, base), (name, "top", 1, None, 0.5), (name, "top", 2, None, 0.4)]
        rows += [(name, "top", 3, None, 0.3), (name, "all_but_top", 3, None, 0.6), (name, "random", 3, 0, random_acc)]
    sweeps = pd.DataFrame(rows, columns=["class", "kind", "k", "seed", "balanced_acc"])
    table = ablation.paper_table(sweeps, ks=(1, 3, 2))
    assert list(table.columns) == ["class", "unchanged", "top_1", "top_3", "top_2"] + [
        "all_but_top_2",
        "random_2",
        "top_2_drop_vs_random",
        "chance",
    ]
    assert table["class"].tolist() == ["b", "a"] and table["chance"].tolist() == [0.5, 0.5]
    assert np.isnan(table["random_2"]).all()  # no random-2 rows: NaN, and its ratio too
    table = ablation.paper_table(sweeps, ks=(1, 2, 3))
    assert table["top_3_drop_vs_random"].tolist() == [float("inf"), float("inf")]  # random drops of 0 and -0.05


def test_sweep_specs_skip_k_outside_the_layer_and_draw_distinct_units() -> None:
    specs = ablation.sweep_specs(
        {"a": np.arange(5)}, units=5, ks=[0, 4, 5, 4], seeds=30, seed=1, concept_ranking=[4, 3]
    )
    assert {s.k for s in specs if s.kind != "none"} == {4} and specs[0] == ablation.SweepSpec("none", 0, ())
    randoms = [s for s in specs if s.kind == "random"]
    assert len(randoms) == 30 and all(len(set(s.units)) == 4 and set(s.units) <= set(range(5)) for s in randoms)
    assert len({s.units for s in randoms}) > 1
    assert [(s.k, s.units) for s in specs if s.kind == "concept"] == [(4, (3, 4))]
    counts = batch_counts(LOGITS[[0] * len(specs)], TARGETS)
    counts.true_positive[-1, 1] = 0  # the concept spec misses class b's image: TPR 0, TNR 2 / 4
    table = ablation.sweep_table(specs, counts, ["a", "b", "c"], ["b", "c"], "val")
    last = table.iloc[-2:]
    assert last["class"].tolist() == ["b", "c"] and last["balanced_acc"].tolist()[0] == 0.25
    assert table["seed"].dtype == "Int64" and list(table.columns) == list(ablation.SWEEP_COLUMNS)
    top = ablation.top_counts({"a": np.array([2, 0, 1]), "b": np.array([2, 1, 0])}, 3, top=2)
    assert top.tolist() == [1, 1, 2] and top.dtype == np.int64


def test_describe_in_full_with_exact_boundaries() -> None:
    table = pd.DataFrame(
        {
            "class": ["a", "b"],
            "unchanged": [1.0, 1.0],
            "top_4": [0.5, 0.5],
            "top_20": [0.25, 0.875],  # a: a drop of 0.75, exactly 3 x its random drop
            "all_but_top_20": [0.6, 0.5],  # a: exactly 0.1 above chance
            "random_20": [0.75, 0.75],
            "chance": [0.5, 0.5],
        }
    )
    assert ablation.describe(table) == [
        (
            "Removing the 20 units most important to a class lowered its balanced accuracy at least 3 times more than "
            "20 random units for 1 of 2 classes (a); mean over classes 1.000 unchanged, 0.562 without the top 20, "
            "0.750 without 20 random units."
        ),
        (
            "Keeping only the top 20 units (all others removed) left 1 of 2 classes at least 0.1 above chance (a; mean "
            "0.550)."
        ),
    ]
    none = ablation.describe(table.iloc[1:])
    assert "for 0 of 1 classes (none);" in none[0] and "left 0 of 1 classes at least 0.1 above chance (none;" in none[1]
    assert ablation.describe(table.drop(columns="all_but_top_20")) == [
        "No set sweep removed enough units for the table (every k in ablation.ks reaches the unit count)."
    ]
    assert ablation.describe(table.iloc[:0])[0].startswith("No set sweep")
