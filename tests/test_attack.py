"""PGD and the adversarial analysis on a hand-weighted model: the attack moves the planted units as constructed."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from basic_models import ChannelNet, channel_images

from netdissect import adversarial
from netdissect.attack import pgd
from netdissect.hooks import LayerHooks


def firing(model, x):
    with LayerHooks(model, capture=["features"]) as hooks, torch.no_grad():
        logits = hooks.run(x)
    return logits, hooks.captured["features"].mean((2, 3))


@pytest.mark.parametrize("steps, step_size", [(1, 0.1), (10, 0.025)])  # FGSM, and PGD reaching the budget
def test_targeted_attack_moves_the_planted_units_by_epsilon(steps, step_size):
    model = ChannelNet()
    x = channel_images([(0.6, 0.5, 0.3), (0.7, 0.45, 0.05), (0.55, 0.95, 0.2)])
    target = torch.ones(3, dtype=torch.long)
    clean_logits, clean = firing(model, x)
    assert clean_logits.argmax(1).tolist() == [0, 0, 1]
    attacked = pgd(model, x, target, epsilon=0.1, step_size=step_size, steps=steps)
    assert (attacked - x).abs().max() <= 0.1 + 1e-6 and attacked.min() >= 0 and attacked.max() <= 1
    logits, after = firing(model, attacked)
    change = (after - clean).numpy()
    # unit 0 (the source class's) fires 0.1 less, unit 1 (the target's) 0.1 more but never above 1 (0.95 -> 1),
    # unit 2 fires min(b, 0.1) less (0.05 -> 0)
    np.testing.assert_allclose(change[:, 0], [-0.1, -0.1, -0.1], atol=1e-6)
    np.testing.assert_allclose(change[:, 1], [0.1, 0.1, 0.05], atol=1e-6)
    np.testing.assert_allclose(change[:, 2], [-0.1, -0.05, -0.1], atol=1e-6)
    # success where r - epsilon < g + epsilon: 0.5 < 0.6, but not 0.6 < 0.55
    assert logits.argmax(1).tolist() == [1, 0, 1]


def test_untargeted_attack_and_bad_budget():
    model = ChannelNet()
    x = channel_images([(0.6, 0.5, 0.3)])
    attacked = pgd(model, x, torch.zeros(1, dtype=torch.long), 0.1, 0.1, 1, targeted=False)
    np.testing.assert_allclose(attacked[0, :, 0, 0], [0.5, 0.6, 0.4], atol=1e-6)
    with pytest.raises(ValueError, match="epsilon 1.5 lies outside"):
        pgd(model, x, torch.zeros(1, dtype=torch.long), 1.5, 0.1, 1)


def test_groups_rankings_and_pairs():
    labels = np.array([0, 0, 1, 1, 2, 2])
    predictions = np.array([0, 2, 1, 1, 2, 2])
    probabilities = np.full((6, 3), 1 / 3)
    probabilities[2:4] = [0.2, 0.5, 0.3]  # class 1, never mistaken, is closest to class 2
    assert adversarial.most_confused(labels, predictions, probabilities) == {0: 2, 1: 2, 2: 0}
    firing = np.array([[5, 0, 1], [4, 0, 1], [0, 3, 1], [1, 4, 1], [0, 0, 1], [0, 1, 1]], float)
    order = adversarial.correlation_order(firing, labels, 0)
    assert order.tolist() == [0, 1, 2]  # the constant unit comes last
    single = pd.DataFrame(
        {"unit": [0, 1, 2] * 2, "class": ["a"] * 3 + ["b"] * 3, "margin_drop": [0.1, 0.5, 0.1, 0, 0, 0.2]}
        | {"drop": [0.2, 0, 0.1, 0, 0, 0], "split": "train", "balanced_acc": 0.5}
    )
    assert adversarial.ablation_order(single, "a", 3).tolist() == [1, 0, 2]
    with pytest.raises(ValueError, match="not all 4"):
        adversarial.ablation_order(single, "a", 4)
    groups = adversarial.unit_groups(np.array([0, 1, 2, 3]), np.array([1, 3, 0, 2]), 2)
    assert groups.tolist() == ["source", "both", "other", "target"]


def test_correlation_order_equals_pearson_correlation():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 40)
    firing = rng.standard_normal((40, 6)) * [1, 10, 0.1, 3, 1, 1] + (labels == 1)[:, None] * [0, 5, 0.2, 1, 0, 0]
    firing[:, 4] = 2.5  # constant: last
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        order = adversarial.correlation_order(firing.astype(np.float32), labels, 1)
    r = [np.corrcoef(firing[:, u], labels == 1)[0, 1] for u in (0, 1, 2, 3, 5)]
    assert order.tolist() == [[0, 1, 2, 3, 5][i] for i in np.argsort(r)[::-1]] + [4]
    assert order.tolist()[:3] != [0, 1, 2]  # not the index order
    many = np.where(labels == 2, 0, 1)  # class 1 now has most of the images
    r = [np.corrcoef(firing[:, u], many == 1)[0, 1] for u in (0, 1, 2, 3, 5)]
    expected = [[0, 1, 2, 3, 5][i] for i in np.argsort(r)[::-1]] + [4]
    assert adversarial.correlation_order(firing, many, 1).tolist() == expected and expected[:3] != [0, 1, 2]


def test_unit_table_rows():
    table = adversarial.unit_table("a", "b", np.array([1.0, 2.0]), np.array([1.5, 1.0]), np.array(["source", "other"]))
    assert list(table.columns) == list(adversarial.UNIT_COLUMNS)
    assert table.values.tolist() == [["a", "b", 0, 1.0, 1.5, 0.5, "source"], ["a", "b", 1, 2.0, 1.0, -1.0, "other"]]


def test_ablation_order_breaks_full_ties_by_the_lower_unit():
    single = pd.DataFrame({"unit": [2, 0, 1], "class": "a", "margin_drop": [0.1, 0.1, 0.3], "drop": 0.0})
    assert adversarial.ablation_order(single, "a", 3).tolist() == [1, 0, 2]


def test_describe_counts_pairs_once_and_layers_in_table_order():
    rows = [
        ("layer4", "red", "green", 3, 1 / 3, -0.5, 0.5, 0.0),
        ("layer4", "green", "red", 1, 1.0, 0.0, 0.0, 0.25),
        ("layer4", "blue", "red", 0, np.nan, np.nan, np.nan, np.nan),
        ("layer3", "red", "green", 3, 1 / 3, 0.5, 2.0, -1.0),
        ("layer3", "green", "red", 1, 1.0, -2.0, -1.0, 0.0),
        ("layer3", "blue", "red", 0, np.nan, np.nan, np.nan, np.nan),
    ]
    summary = pd.DataFrame(
        rows,
        columns=[
            c for c in adversarial.SUMMARY_COLUMNS if c not in ("source_units", "target_units", "ranking", "status")
        ],
    )
    summary["ranking"] = ["correlation", "correlation", "", "ablation", "correlation", ""]
    summary["status"] = ["ok", "ok", "skipped: no image", "ok", "ok", "skipped: no image"]
    assert adversarial.describe(summary) == [
        "The attack reached its target class on 50% of 4 correctly classified images (2 source-target pairs).",
        (
            "layer4 (units ranked by correlation): the source class's units fired less in 1 of 2 pairs (mean change "
            "-0.25), the target class's units more in 1 of 2 (mean change +0.25); the other units changed by +0.125 on "
            "average."
        ),
        (
            "layer3 (units ranked by ablation, correlation): the source class's units fired less in 1 of 2 pairs (mean "
            "change -0.75), the target class's units more in 1 of 2 (mean change +0.5); the other units changed by -0.5 "
            "on average."
        ),
        "blue → red: skipped: no image.",
    ]
    assert adversarial.describe(summary[summary["images"] == 0]) == [
        "No pair was attacked: no source class had a correctly classified image."
    ]
