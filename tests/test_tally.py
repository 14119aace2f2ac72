import numpy as np
import pandas as pd
import pytest

from netdissect import quantile as Q
from netdissect.iou import iou_matrix, label_units
from netdissect.tally import Counts, Pending, Vocabulary, tally_chunk
from netdissect.upsample import upsample

CATEGORY = np.array([-1, 0, 0, 1, 1, 2, 2, 2])  # ids 1-2 cat 0, 3-4 cat 1 (pixel); 5-7 cat 2 (image-level)
VOCAB = Vocabulary(CATEGORY, 3)


def make_chunk(rng, n, units=4, h=3, w=5, H=17, W=23, planes=2):
    acts = rng.standard_normal((n, units, h, w)).astype(np.float32)
    labels = rng.integers(0, 5, (n, planes, H, W)).astype(np.uint16)
    labels[:, 1][labels[:, 1] == labels[:, 0]] = 0
    labels[:, 0][rng.random((n, H, W)) < 0.3] = 0
    image_labels = np.stack([rng.choice([0, 5, 6], n), rng.choice([0, 7], n)], 1).astype(np.uint16)
    return acts, labels, image_labels


def brute_force(acts, labels, image_labels, t):
    n, units = acts.shape[:2]
    H, W = labels.shape[-2:]
    active = upsample(acts, (H, W)) > t[None, :, None, None]
    size = len(CATEGORY)
    inter = np.zeros((units, size), int)
    label = np.zeros(size, int)
    has = np.zeros((n, 3), bool)
    for c in range(1, size):
        s = (labels == c).any(1) | (image_labels == c).any(1)[:, None, None]
        inter[:, c] = (active & s[:, None]).sum((0, 2, 3))
        label[c] = s.sum()
        has[:, CATEGORY[c]] |= s.any((1, 2))
    act_img = active.sum((2, 3))
    return inter, act_img.sum(0), act_img.T @ has, label


@pytest.mark.parametrize("seed", range(4))
def test_counts_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    acts, labels, image_labels = make_chunk(rng, 6)
    values = upsample(acts, labels.shape[-2:]).transpose(1, 0, 2, 3).reshape(acts.shape[1], -1)
    t = np.quantile(values, [0.5, 0.9, 0.99, 0.2], axis=1).diagonal().astype(np.float32)
    counts, pending = tally_chunk(acts, labels, image_labels, t, t, VOCAB, batch=7)
    assert len(pending.unit) == 0 and (pending.above == counts.activation).all()
    inter, act, act_cat, label = brute_force(acts, labels, image_labels, t)
    np.testing.assert_array_equal(counts.intersection, inter)
    np.testing.assert_array_equal(counts.activation, act)
    np.testing.assert_array_equal(counts.activation_in_category, act_cat)
    np.testing.assert_array_equal(counts.label, label)
    assert counts.images == 6 and counts.pixels == 17 * 23
    for name in ("intersection", "activation", "activation_in_category", "label", "images_in_category"):
        assert getattr(counts, name).dtype == np.int64, name
    # thresholds are read as float32: a float64 just below a pixel value is that value, so the pixel is not active
    t = values[np.arange(4), [5, 50, 500, 100]]
    just_below = t.astype(np.float64) - 1e-12
    exact, _ = tally_chunk(acts, labels, image_labels, just_below, just_below, VOCAB, batch=7)
    np.testing.assert_array_equal(exact.activation, brute_force(acts, labels, image_labels, t)[1])


def test_counts_add_up_over_chunks():
    rng = np.random.default_rng(9)
    acts, labels, image_labels = make_chunk(rng, 9)
    t = np.full(4, 0.3, np.float32)
    whole = tally_chunk(acts, labels, image_labels, t, t, VOCAB)[0]
    parts = [
        tally_chunk(acts[a:b], labels[a:b], image_labels[a:b], t, t, VOCAB)[0] for a, b in [(0, 2), (2, 7), (7, 9)]
    ]
    merged = parts[2] + parts[0] + parts[1]
    for name in ("intersection", "activation", "activation_in_category", "label", "images_in_category"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(whole, name))


def test_pending_values_fix_t_and_complete_the_counts():
    """Counting against intervals (lo, hi] around t, then resolving the pending values, equals counting at t;
    unlabelled images count towards t only."""
    rng = np.random.default_rng(11)
    acts, labels, image_labels = make_chunk(rng, 10, units=5)
    acts[:, 1] = np.maximum(acts[:, 1] - 2.2, 0)  # ReLU unit with t = 0: all-zero cells are pending
    acts[:, 2] = np.round(acts[:, 2])  # ties at t
    acts[:, 4] = -np.maximum(acts[:, 4] + 1.5, 0)  # all-zero cells are pending, above t < 0: their labels count
    acts[1, 4, :2, :3] = acts[2, 4, 1:, 3:] = 0  # (image 2 has no segmentation)
    labelled = np.ones(10, bool)
    labelled[[2, 7]] = False
    labels[~labelled], image_labels[~labelled] = 0, 0
    values = upsample(acts, labels.shape[-2:]).transpose(1, 0, 2, 3).reshape(5, -1)
    k = Q.target_rank(0.1, values.shape[1])
    ranked = -np.sort(-values, axis=1)
    t = ranked[:, k]
    assert t[1] == 0 and (values[2] == t[2]).sum() > 1 and t[4] < 0 < (values[4] == 0).sum()
    hi = np.maximum(ranked[:, k - 40], t).astype(np.float32)
    hi[4] = 0  # the all-zero cells of unit 4 lie inside its interval
    lo = np.array([t[0] - 0.05, -0.5, t[2] - 0.5, t[3] - 1e-3, -3.0], np.float32)
    lo = np.minimum(lo, np.nextafter(t, np.float32(-np.inf)))
    parts = [
        tally_chunk(acts[a:b], labels[a:b], image_labels[a:b], lo, hi, VOCAB, labelled[a:b], batch=5)
        for a, b in [(0, 3), (3, 8), (8, 10)]
    ]
    pending = Pending.concat([p for _, p in parts])
    assert len(pending.unit) > 0 and pending.values == values.shape[1]
    found = Q.threshold_in_interval(pending.values_histogram(), k)
    np.testing.assert_array_equal(found, t)
    np.testing.assert_array_equal(pending.values_above(found), (values > t[:, None]).sum(1))
    counts = parts[0][0] + parts[1][0] + parts[2][0] + pending.active(found, VOCAB.size, values.shape[1] // 10)
    inter, act, act_cat, label = brute_force(acts[labelled], labels[labelled], image_labels[labelled], t)
    np.testing.assert_array_equal(counts.intersection, inter)
    np.testing.assert_array_equal(counts.activation, act)
    np.testing.assert_array_equal(counts.activation_in_category, act_cat)
    np.testing.assert_array_equal(counts.label, label)
    assert counts.images == 8
    resolved = pending.active(found, VOCAB.size, values.shape[1] // 10)
    for name in ("intersection", "activation", "activation_in_category", "label", "images_in_category"):
        assert getattr(resolved, name).dtype == np.int64, name
    assert pending.values_above(found).dtype == np.int64
    with pytest.raises(ValueError, match="misses units"):
        Q.threshold_in_interval(pending.values_histogram(), k + 10**6)


def test_iou_and_labels():
    rng = np.random.default_rng(5)
    acts, labels, image_labels = make_chunk(rng, 5)
    t = np.full(4, 0.5, np.float32)
    counts = tally_chunk(acts, labels, image_labels, t, t, VOCAB)[0]
    inter, act, act_cat, label = brute_force(acts, labels, image_labels, t)
    iou_all = iou_matrix(counts, VOCAB, "all")
    np.testing.assert_allclose(iou_all[:, 1:], inter[:, 1:] / (act[:, None] + label[None, 1:] - inter[:, 1:]))
    iou_cat = iou_matrix(counts, VOCAB, "category")
    union = act_cat[:, CATEGORY[1:]] + label[None, 1:] - inter[:, 1:]
    np.testing.assert_allclose(iou_cat[:, 1:], inter[:, 1:] / union)
    concepts = pd.DataFrame(
        {"id": range(1, 8), "name": list("abcdefg"), "category": ["x", "x", "y", "y", "z", "z", "z"]}
    )
    table = label_units(iou_all, concepts, t, 0.04)
    best = iou_all[:, 1:].argmax(1)
    assert list(table["label"]) == [concepts["name"][b] for b in best]
    assert list(table["category"]) == [concepts["category"][b] for b in best]
    np.testing.assert_allclose(table["iou"], iou_all[:, 1:].max(1))
    np.testing.assert_allclose(table["x_iou"], iou_all[:, 1:3].max(1))
    assert (table["detector"] == (table["iou"] > 0.04)).all()


def test_dead_unit_gets_zero_iou_and_no_label():
    acts = np.zeros((2, 1, 3, 3), np.float32)
    labels = np.ones((2, 1, 6, 6), np.uint16)
    zero = np.zeros(1, np.float32)
    counts = tally_chunk(acts, labels, np.zeros((2, 1), np.uint16), zero, zero, VOCAB)[0]
    assert counts.activation[0] == 0
    iou = iou_matrix(counts, VOCAB)
    assert (iou == 0).all()
    concepts = pd.DataFrame({"id": range(1, 8), "name": list("abcdefg"), "category": list("xxyyzzz")})
    table = label_units(iou, concepts, np.zeros(1), 0.04)
    assert table["label"][0] == "" and not table["detector"][0]


def test_label_ties_go_to_the_lowest_concept_id_overall_and_per_category():
    # concepts listed out of id order: ties must still go to the lowest id, not to the first row
    concepts = pd.DataFrame({"id": [4, 2, 3, 1], "name": ["d", "b", "c", "a"], "category": ["x", "x", "y", "y"]})
    iou = np.zeros((3, 5))
    iou[0, [2, 4]] = 0.2  # tie inside category x: b (id 2) beats d (id 4)
    iou[1, [1, 2, 3, 4]] = 0.1  # four-way tie: a (id 1) overall; b in x, a in y
    iou[2, 3] = 0.05
    table = label_units(iou, concepts, np.zeros(3), 0.04)
    assert list(table["label"]) == ["b", "a", "c"]
    assert list(table["category"]) == ["x", "y", "y"]
    assert list(table["x_label"]) == ["b", "b", ""] and list(table["y_label"]) == ["", "a", "c"]
    np.testing.assert_array_equal(table["x_iou"], [0.2, 0.1, 0.0])


@pytest.mark.parametrize("seed", range(3))
def test_counts_over_several_histogram_and_bound_blocks_equal_brute_force(seed):
    """Tiny blocks: label histograms a few images at a time, cell bounds a few maps at a time."""
    rng = np.random.default_rng(20 + seed)
    acts, labels, image_labels = make_chunk(rng, 7)
    t = np.full(4, 0.4, np.float32)
    inter, act, act_cat, label = brute_force(acts, labels, image_labels, t)
    for histogram_block, bounds_block in ((500, 3), (1, 1), (10**9, 10**9)):
        counts, _ = tally_chunk(
            acts, labels, image_labels, t, t, VOCAB, histogram_block=histogram_block, bounds_block=bounds_block
        )
        np.testing.assert_array_equal(counts.intersection, inter)
        np.testing.assert_array_equal(counts.activation, act)
        np.testing.assert_array_equal(counts.activation_in_category, act_cat)
        np.testing.assert_array_equal(counts.label, label)


def test_counts_of_different_pixel_sizes_do_not_add():
    rng = np.random.default_rng(1)
    a, la, ia = make_chunk(rng, 2)
    b, lb, ib = make_chunk(rng, 2, H=9, W=11)
    t = np.zeros(4, np.float32)
    small, big = tally_chunk(b, lb, ib, t, t, VOCAB)[0], tally_chunk(a, la, ia, t, t, VOCAB)[0]
    with pytest.raises(ValueError, match=f"cannot add counts at {17 * 23} and {9 * 11} pixels per image"):
        big + small


def test_unknown_union_is_refused():
    rng = np.random.default_rng(2)
    acts, labels, image_labels = make_chunk(rng, 2)
    t = np.zeros(4, np.float32)
    counts = tally_chunk(acts, labels, image_labels, t, t, VOCAB)[0]
    with pytest.raises(ValueError, match=r"union must be one of \('all', 'category'\), not 'some'"):
        iou_matrix(counts, VOCAB, "some")


def test_unit_table_columns_and_edge_cases():
    """Exact column names, long category names, the detector rule's strict '>', an IoU with a union of one pixel,
    and empty label and category where a unit's IoU is 0 everywhere."""
    concepts = pd.DataFrame(
        {"id": [1, 2, 3], "name": ["sky", "tree", "brick"], "category": ["object", "object", "material"]}
    )
    vocab = Vocabulary(np.array([-1, 0, 0, 1]), 2)
    # unit 0: one active pixel, the only pixel of 'tree' (union 1, IoU 1); unit 1: IoU 0.25 with 'sky' exactly;
    # unit 2: nothing active
    counts = Counts(
        intersection=np.array([[0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]]),
        activation=np.array([1, 2, 0]),
        activation_in_category=np.array([[1, 1], [2, 2], [0, 0]]),
        label=np.array([0, 3, 1, 0]),
        images_in_category=np.array([1, 1]),
        images=1,
        pixels=1,
    )
    iou = iou_matrix(counts, vocab)
    np.testing.assert_array_equal(iou[:, 1:], [[0, 1, 0], [0.25, 0, 0], [0, 0, 0]])
    table = label_units(iou, concepts, np.array([0.5, 1.5, 2.5], np.float32), 0.25)
    assert list(table.columns) == [
        "unit",
        "label",
        "category",
        "iou",
        "threshold",
        "detector",
        "object_label",
        "object_iou",
        "material_label",
        "material_iou",
    ]
    assert list(table["label"]) == ["tree", "sky", ""] and list(table["category"]) == ["object", "object", ""]
    assert list(table["material_label"]) == ["", "", ""]
    assert list(table["detector"]) == [True, False, False]  # 0.25 is not above iou_threshold 0.25
    np.testing.assert_array_equal(table["threshold"], [0.5, 1.5, 2.5])


def test_a_chunk_with_no_cell_near_its_thresholds_has_nothing_pending():
    acts = np.ones((2, 3, 3, 5), np.float32)  # every cell wholly above 0.5
    labels = np.ones((2, 1, 17, 23), np.uint16)
    t = np.full(3, 0.5, np.float32)
    counts, pending = tally_chunk(acts, labels, np.zeros((2, 1), np.uint16), t, t, VOCAB)
    assert len(pending.unit) == 0 and pending.above.tolist() == counts.activation.tolist() == [2 * 17 * 23] * 3
    np.testing.assert_array_equal(counts.intersection[:, 1], [2 * 17 * 23] * 3)
