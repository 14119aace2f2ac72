"""Label uncertainty: per-image counts against the spine's tally, the permutation null's moments against every
permutation, the bootstrap's coverage by simulation, a planted unit against a unit without a concept."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_tally import CATEGORY, VOCAB, make_chunk

from netdissect import statistics as S
from netdissect.iou import iou_matrix
from netdissect.tally import tally_chunk
from netdissect.upsample import upsample


def thresholds_of(acts, size, quantiles=(0.5, 0.9, 0.99, 0.2)):
    values = upsample(acts, size).transpose(1, 0, 2, 3).reshape(acts.shape[1], -1)
    return np.quantile(values, quantiles, axis=1).diagonal().astype(np.float32)


def counts_of(acts, labels, image_labels, t, candidates, grid=3):
    return S.image_counts(
        acts, labels, image_labels, t, candidates, CATEGORY, VOCAB.num_categories, np.arange(len(acts)), grid
    )


@pytest.mark.parametrize("seed", range(3))
def test_per_image_counts_add_up_to_the_tally(seed):
    rng = np.random.default_rng(seed)
    acts, labels, image_labels = make_chunk(rng, 5)
    acts[:, 3, :2] = 0  # all-zero cells, active under unit 3's negative threshold
    t = thresholds_of(acts, labels.shape[-2:])
    t[3] = -0.5
    candidates = np.tile(np.arange(1, 8), (4, 1))
    counts = counts_of(acts, labels, image_labels, t, candidates)
    for x in range(5):  # each image alone, by the spine's tally at the final thresholds
        one, _ = tally_chunk(acts[x : x + 1], labels[x : x + 1], image_labels[x : x + 1], t, t, VOCAB)
        np.testing.assert_array_equal(counts.intersection[x], one.intersection[:, 1:])
        np.testing.assert_array_equal(counts.activation[x], one.activation)
        np.testing.assert_array_equal(counts.label[x], one.label)
        np.testing.assert_array_equal(counts.activation[x][:, None] * counts.present[x], one.activation_in_category)
        assert counts.mask_grid[x].sum(1).tolist() == one.activation.tolist()
        np.testing.assert_array_equal(counts.label_grid[x].sum(1), one.label)


def test_sums_are_the_same_for_any_chunking():
    rng = np.random.default_rng(5)
    acts, labels, image_labels = make_chunk(rng, 7)
    t = thresholds_of(acts, labels.shape[-2:])
    candidates = np.tile([1, 3, 5], (4, 1))
    weights = S.resample_weights(7, 20, seed=3)
    _, cell_pixels = S.grid_cells(labels.shape[-2:], 3)
    whole = S.chunk_sums(counts_of(acts, labels, image_labels, t, candidates), weights, cell_pixels)
    parts = []
    for a, b in ((0, 2), (2, 3), (3, 7)):
        part = S.image_counts(acts[a:b], labels[a:b], image_labels[a:b], t, candidates, CATEGORY, 3, np.arange(a, b), 3)
        parts.append(S.chunk_sums(part, weights, cell_pixels))
    added = parts[0] + parts[1] + parts[2]
    for name, value in whole.arrays().items():
        np.testing.assert_allclose(getattr(added, name), value, rtol=1e-12, atol=0, err_msg=name)
        if value.dtype.kind == "i":
            np.testing.assert_array_equal(getattr(added, name), value)
    # resample 0 reproduces its own draw
    draw = np.random.default_rng([3, 0]).integers(0, 7, 7)
    assert weights[0].tolist() == np.bincount(draw, minlength=7).tolist() and weights.sum(1).tolist() == [7] * 20


def test_null_moments_equal_the_mean_and_variance_over_every_permutation():
    rng = np.random.default_rng(2)
    n, units, concepts, cells = 5, 3, 4, 4
    cell_pixels = np.array([4, 6, 6, 9])
    masks = rng.integers(0, 5, (n, units, cells))
    label_grid = rng.integers(0, 4, (n, concepts, cells)) * (rng.random((n, concepts, 1)) < 0.7)
    counts = S.ImageCounts(
        positions=np.arange(n),
        activation=masks.sum(2),
        intersection=np.zeros((n, units, 1), np.int64),
        label=label_grid.sum(2),
        present=np.zeros((n, 1), bool),
        mask_grid=masks,
        label_grid=label_grid,
    )
    mean, var = S.null_moments(S.chunk_sums(counts, np.ones((1, n), np.int64), cell_pixels))
    D = np.einsum("xua,yca,a->ucxy", masks, label_grid, 1.0 / cell_pixels)  # brute force, every pair
    totals = np.array([[D[:, :, x, y] for x, y in enumerate(p)] for p in itertools.permutations(range(n))])
    totals = totals.sum(1)  # (permutations, U, C)
    np.testing.assert_allclose(mean, totals.mean(0), rtol=1e-12)
    np.testing.assert_allclose(var, totals.var(0), rtol=1e-9, atol=1e-12)


def test_bootstrap_interval_covers_a_known_iou():
    """Simulated datasets with a known IoU (ratio of expected counts): the 90% interval covers it about 90% of
    the time (tolerance: 3 binomial standard errors over 300 datasets)."""
    rng = np.random.default_rng(0)
    n, level, covered, datasets = 150, 0.9, 0, 300
    pixels, p_concept, p_active, p_both = 100, 0.3, 0.2, 0.12
    truth = p_both / (p_active + p_concept - p_both)
    for _ in range(datasets):
        joint = rng.multinomial(
            pixels, [p_both, p_active - p_both, p_concept - p_both, 1 - p_active - p_concept + p_both], n
        )
        inter, act, label = joint[:, 0], joint[:, 0] + joint[:, 1], joint[:, 0] + joint[:, 2]
        counts = S.ImageCounts(
            positions=np.arange(n),
            activation=act[:, None],
            intersection=inter[:, None, None],
            label=np.stack([np.zeros(n, np.int64), label], 1),
            present=np.ones((n, 1), bool),
            mask_grid=act[:, None, None],
            label_grid=np.stack([np.zeros(n, np.int64), label], 1)[:, :, None],
        )
        weights = S.resample_weights(n, 200, int(rng.integers(1 << 30)))
        sums = S.chunk_sums(counts, weights, np.array([pixels]))
        iou = S.resample_iou(sums, np.array([[1]]), np.array([-1, 0]), "all")
        low, high, _ = S.bootstrap_summary(iou, np.array([[1]]), np.array([1]), level)
        covered += low[0] <= truth <= high[0]
    se = np.sqrt(level * (1 - level) / datasets)
    assert abs(covered / datasets - level) < 3 * se, covered / datasets


def planted_and_random(rng, n=40, size=(24, 24)):
    """Unit 0 fires exactly on concept 1's square; unit 1 is noise; concept 1's square moves from image to image."""
    H, W = size
    labels = np.zeros((n, 1, H, W), np.uint16)
    acts = rng.standard_normal((n, 2, 6, 6)).astype(np.float32) * 0.1
    for x in range(n):
        r, c = rng.integers(0, 4, 2)
        labels[x, 0, r * 4 : r * 4 + 8, c * 4 : c * 4 + 8] = 1
        acts[x, 0, r + 1 : r + 2, c + 1 : c + 2] = 5.0
        labels[x, 0][(labels[x, 0] == 0) & (rng.random((H, W)) < 0.5)] = 3
    return acts, labels, np.zeros((n, 1), np.uint16)


def test_planted_unit_is_sure_and_a_unit_without_concept_is_not_a_discovery():
    rng = np.random.default_rng(4)
    acts, labels, image_labels = planted_and_random(rng)
    t = thresholds_of(acts, labels.shape[-2:], (0.97, 0.97))
    counts, _ = tally_chunk(acts, labels, image_labels, t, t, VOCAB)
    iou = iou_matrix(counts, VOCAB)
    candidates = S.candidate_concepts(iou, 3)
    image = S.image_counts(acts, labels, image_labels, t, candidates, CATEGORY, 3, np.arange(len(acts)), 8)
    _, cell_pixels = S.grid_cells(labels.shape[-2:], 8)
    sums = S.chunk_sums(image, S.resample_weights(len(acts), 300, 1), cell_pixels)
    labels_of_units = iou.argmax(1)
    low, high, stability = S.bootstrap_summary(
        S.resample_iou(sums, candidates, CATEGORY, "all"), candidates, labels_of_units, 0.95
    )
    assert labels_of_units[0] == 1 and iou[0, 1] > 0.2
    assert low[0] <= iou[0, 1] <= high[0] and high[0] - low[0] < 0.15 and stability[0] == 1.0
    mean, var = S.null_moments(sums)
    p = S.p_values(counts.intersection.astype(np.float64), mean, var)
    q = S.benjamini_hochberg(p)
    assert p[0, 1] < 1e-12 and q[0, 1] < 1e-10
    assert q[1].min() > 0.05  # the noise unit: no discovery at q = 0.05
    assert high[1] - low[1] > 0 and stability[1] < 1.0
    # the noise unit's interval covers the chance IoU of its label: the overlap of independent pixel sets
    c = labels_of_units[1]
    act, lab = counts.activation[1], counts.label[c]
    expected = act * lab / (counts.images * counts.pixels)
    assert low[1] <= expected / (act + lab - expected) <= high[1]


def test_benjamini_hochberg_equals_its_definition():
    rng = np.random.default_rng(1)
    p = rng.random((6, 5)) ** 3
    flat, m = p.ravel(), p.size
    rank = np.argsort(np.argsort(flat, kind="stable"), kind="stable") + 1
    brute = np.array([min(1.0, min(flat[j] * m / rank[j] for j in range(m) if flat[j] >= flat[i])) for i in range(m)])
    np.testing.assert_allclose(S.benjamini_hochberg(p).ravel(), brute)
    assert S.p_values(np.array([[3.0, 1.0]]), np.array([[1.0, 1.0]]), np.array([[0.0, 4.0]])).tolist() == [[1.0, 1.0]]
