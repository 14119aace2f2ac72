"""Label uncertainty: per-image counts against the spine's tally, the permutation null's moments against every
permutation, the bootstrap's coverage by simulation, a planted unit against a unit without a concept."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from test_tally import CATEGORY, VOCAB, brute_force, make_chunk

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


@pytest.mark.parametrize("grid", [1, 3, 4])
def test_grid_counts_equal_brute_force_per_grid_cell(grid):
    rng = np.random.default_rng(11)
    acts, labels, image_labels = make_chunk(rng, 4, h=4, w=6, H=29, W=35)
    acts[:, 2] = np.abs(acts[:, 2]) + 3.0  # unit 2: every cell wholly above its threshold
    acts[:, 3, :2] = 0  # all-zero cells, active under unit 3's negative threshold
    t = thresholds_of(acts, labels.shape[-2:])
    t[2], t[3] = 1.0, -0.5
    candidates = np.tile(np.arange(1, 8), (4, 1))
    counts = counts_of(acts, labels, image_labels, t, candidates, grid)
    active = upsample(acts, labels.shape[-2:]) > t[None, :, None, None]
    H, W = labels.shape[-2:]
    cell = (np.arange(H)[:, None] * grid // H) * grid + np.arange(W)[None, :] * grid // W
    for g in range(grid * grid):
        inside = cell == g
        np.testing.assert_array_equal(counts.mask_grid[:, :, g], (active & inside).sum((2, 3)))
        for c in range(1, len(CATEGORY)):
            carries = (labels == c).any(1) | (image_labels == c).any(1)[:, None, None]
            np.testing.assert_array_equal(counts.label_grid[:, c, g], (carries & inside).sum((1, 2)))
    for x in range(len(acts)):
        inter = brute_force(acts[x : x + 1], labels[x : x + 1], image_labels[x : x + 1], t)[0]
        np.testing.assert_array_equal(counts.intersection[x], inter[:, 1:])
    assert counts.activation[:, 2].tolist() == [H * W] * len(acts)


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


@pytest.mark.parametrize("n", [1, 2, 5])
def test_null_moments_equal_the_mean_and_variance_over_every_permutation(n):
    rng = np.random.default_rng(2)
    units, concepts, cells = 3, 4, 4
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


def chunk_lacking_categories(rng, n=6):
    """make_chunk's images, with image 0 carrying no concept of pixel category 1 and image 1 none of category 0."""
    acts, labels, image_labels = make_chunk(rng, n)
    labels[0][np.isin(labels[0], [3, 4])] = 0
    labels[1][np.isin(labels[1], [1, 2])] = 0
    labels[2][np.isin(labels[2], [1, 2])] = 0
    labels[2, 0, 5, 7] = 2  # image 2 carries category 0 on one pixel only
    return acts, labels, image_labels


@pytest.mark.parametrize("union", ["all", "category"])
def test_resampled_iou_equals_weighted_per_image_brute_force(union):
    rng = np.random.default_rng(7)
    n = 6
    acts, labels, image_labels = chunk_lacking_categories(rng, n)
    t = thresholds_of(acts, labels.shape[-2:])
    candidates = np.array([[2, 5], [1, 3], [4, 7], [1, 6]])  # leaves out concepts the active pixels carry
    weights = np.stack([np.ones(n), rng.integers(0, 3, n), [0, 0, 3, 1, 1, 1]]).astype(np.int64)
    image = counts_of(acts, labels, image_labels, t, candidates)
    _, cell_pixels = S.grid_cells(labels.shape[-2:], 3)
    sums = S.chunk_sums(image, weights, cell_pixels)
    got = S.resample_iou(sums, candidates, CATEGORY, union)
    per_image = [brute_force(acts[x : x + 1], labels[x : x + 1], image_labels[x : x + 1], t) for x in range(n)]
    for r, w in enumerate(weights):
        inter, act, in_category, label = (sum(w[x] * per_image[x][k] for x in range(n)) for k in range(4))
        np.testing.assert_array_equal(sums.activation_in_category[r], in_category)
        np.testing.assert_array_equal(sums.label[r], label)
        for u, row in enumerate(candidates):
            for j, c in enumerate(row):
                a = act[u] if union == "all" else in_category[u, CATEGORY[c]]
                assert got[r, u, j] == pytest.approx(inter[u, c] / max(a + label[c] - inter[u, c], 1), rel=1e-15)
    # the identity resample is the full data's IoU, and the two unions differ on these images
    counts, _ = tally_chunk(acts, labels, image_labels, t, t, VOCAB)
    np.testing.assert_allclose(got[0], np.take_along_axis(iou_matrix(counts, VOCAB, union), candidates, 1), rtol=1e-15)
    other = S.resample_iou(sums, candidates, CATEGORY, "all" if union == "category" else "category")
    assert not np.allclose(got, other)


def test_resampled_iou_of_a_one_pixel_union_and_a_bad_union():
    # one resample: unit 0 and concept 1 share their one pixel; concept 2 is empty (the null's fields unused)
    empty = np.zeros((1, 1))
    sums = S.Sums(np.array([[[1, 0]]]), np.array([[1]]), np.array([[[1]]]), np.array([[0, 1, 0]]), *[empty] * 4, 1)
    assert S.resample_iou(sums, np.array([[1, 2]]), np.array([-1, 0, 0]), "all").tolist() == [[[1.0, 0.0]]]
    with pytest.raises(ValueError, match=r"union must be one of \('all', 'category'\), not 'any'"):
        S.resample_iou(sums, np.array([[1, 2]]), np.array([-1, 0, 0]), "any")


def test_p_values_are_the_normal_upper_tail():
    observed = np.array([[1.25, 1.98, 1.0, 0.5, 2.0]])
    mean = np.ones((1, 5))
    var = np.array([[0.25, 0.25, 0.25, 0.25, 0.0]])
    p = S.p_values(observed, mean, var)
    # z = 0.5 and 1.96; z = 0 and below, and no spread (even above the mean), give 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by a zero spread
        p = S.p_values(observed, mean, var)
    np.testing.assert_allclose(p, [[0.30853753872598688, 0.024997895148220435, 1.0, 1.0, 1.0]], rtol=1e-12)
    assert S.p_values(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3))).shape == (0, 3)


def test_candidates_are_the_top_k_with_ties_to_the_lowest_id():
    iou = np.array([[0, 0.1, 0.5, 0.3, 0.5], [0, 0.2, 0.2, 0.2, 0.2], [0, 0.9, 0.1, 0.1, 0.0]])
    assert S.candidate_concepts(iou, 2).tolist() == [[2, 4], [1, 2], [1, 2]]
    assert S.candidate_concepts(iou, 9).tolist() == [[1, 2, 3, 4]] * 3  # k above C: every concept
    ties = np.zeros((2, 41))
    ties[1, 30] = 0.5  # beyond numpy's small-array sort: an unstable sort would pick other ids among 40 ties
    assert S.candidate_concepts(ties, 3).tolist() == [[1, 2, 3], [1, 2, 30]]


def test_bootstrap_summary_equals_its_definition():
    rng = np.random.default_rng(3)
    R, U, K = 40, 4, 3
    iou = np.round(rng.random((R, U, K)), 1)  # rounding makes ties
    iou[5, 1] = 0  # a resample with no overlap, where unit 1's label is its first candidate
    candidates = np.array([[1, 4, 6], [2, 3, 5], [1, 2, 3], [3, 5, 7]])
    labels = np.array([4, 2, 0, 7])
    low, high, stability = S.bootstrap_summary(iou, candidates, labels, 0.8)
    best = iou.max(2)
    np.testing.assert_allclose(low, [np.quantile(best[:, u], 0.1) for u in range(U)], rtol=1e-15)
    np.testing.assert_allclose(high, [np.quantile(best[:, u], 0.9) for u in range(U)], rtol=1e-15)
    for u in (0, 1, 3):
        kept = [best[r, u] > 0 and candidates[u][list(iou[r, u]).index(best[r, u])] == labels[u] for r in range(R)]
        assert stability[u] == pytest.approx(np.mean(kept), abs=1e-15)
    assert np.isnan(stability[2])


@pytest.mark.parametrize("size", [(3, 5), (17, 23), (8, 8)])
def test_grid_cells_split_rows_and_columns_evenly(size):
    H, W = size
    grid = 8
    cell, cell_pixels = S.grid_cells(size, grid)
    for i in range(H):
        for j in range(W):
            r = next(r for r in range(grid) if r * H <= i * grid < (r + 1) * H)
            c = next(c for c in range(grid) if c * W <= j * grid < (c + 1) * W)
            assert cell[i * W + j] == r * grid + c
    assert cell_pixels.sum() == H * W and len(cell_pixels) == grid * grid
    assert cell_pixels.tolist() == np.bincount(cell, minlength=grid * grid).tolist()


def test_counts_of_edge_cases_and_their_types():
    rng = np.random.default_rng(8)
    acts, labels, image_labels = chunk_lacking_categories(rng, 5)
    acts[:, 1] = 1.0  # unit 1: 1.0 everywhere, its threshold a float64 just below (float32: 1.0): never active
    acts[:, 3] = -1.0  # the last unit: never active
    t = np.array([0.2, 1 - 1e-12, 0.5, 0.0])
    candidates = np.array([[2, 5], [1, 3], [4, 7], [1, 6]])
    counts = counts_of(acts, labels, image_labels, t, candidates)
    for x in range(5):
        inter, act, in_category, label = brute_force(
            acts[x : x + 1], labels[x : x + 1], image_labels[x : x + 1], t.astype(np.float32)
        )
        np.testing.assert_array_equal(counts.activation[x], act)
        np.testing.assert_array_equal(counts.intersection[x], np.take_along_axis(inter, candidates, 1))
        np.testing.assert_array_equal(counts.label[x], label)
        np.testing.assert_array_equal(counts.activation[x][:, None] * counts.present[x], in_category)
        assert counts.activation[x, 1] == 0 and counts.activation[x, 3] == 0
    assert counts.label[2, 2] == 1 and counts.label[2, 1] == 0 and counts.present[2, 0]
    assert counts.intersection.dtype == np.int64 and counts.present.dtype == bool
    assert counts.activation.dtype.kind == "i" and counts.positions.dtype == np.int64
    # a threshold 1e-6 below 1.0 is below it in float32 too: unit 1 is on everywhere
    below = counts_of(acts, labels, image_labels, np.array([0.2, 1 - 1e-6, 0.5, 0.0]), candidates)
    assert below.activation[:, 1].tolist() == [17 * 23] * 5
    weights = S.resample_weights(5, 3, seed=0)
    assert weights.dtype == np.int64
    sums = S.chunk_sums(counts, weights, S.grid_cells((17, 23), 3)[1])
    for name in ("intersection", "activation", "activation_in_category", "label"):
        assert getattr(sums, name).dtype == np.int64, name


def test_an_image_level_concept_of_id_1_carries_every_pixel():
    category = np.array([-1, 0, 1])  # concept 1 image-level (category 0), concept 2 on pixels (category 1)
    labels = np.zeros((2, 1, 4, 4), np.uint16)
    labels[:, 0, :2] = 2
    acts = np.zeros((2, 1, 2, 2), np.float32)
    acts[:, 0, 0, 0] = 1.0
    positions = np.array([0, 1], np.int32)
    counts = S.image_counts(
        acts, labels, np.array([[1], [0]]), np.array([0.0]), np.array([[1, 2]]), category, 2, positions, 2
    )
    active = counts.activation[:, 0]
    assert counts.label.tolist() == [[0, 16, 8], [0, 0, 8]]
    assert counts.intersection[:, 0, 0].tolist() == [active[0], 0] and active.min() > 0
    assert counts.present.tolist() == [[True, True], [False, True]] and counts.positions.dtype == np.int64
    sums = S.chunk_sums(counts, np.array([[1, 0], [0, 2]]), S.grid_cells((4, 4), 2)[1])
    assert sums.label.tolist() == [[0, 16, 8], [0, 0, 16]]
    again = S.Sums.of_arrays(sums.arrays())
    for name, value in sums.arrays().items():
        np.testing.assert_array_equal(getattr(again, name), value, err_msg=name)
    assert again.images == 2 and isinstance(again.images, int)


def test_null_totals_scale_each_cell_by_its_pixels():
    mask_grid = np.array([[[2, 3]], [[1, 0]]])  # 2 images, 1 unit, 2 cells of 1 and 4 pixels
    label_grid = np.array([[[0, 0], [1, 4]], [[0, 0], [0, 2]]])
    counts = S.ImageCounts(
        positions=np.arange(2),
        activation=mask_grid.sum(2),
        intersection=np.zeros((2, 1, 1), np.int64),
        label=label_grid.sum(2),
        present=np.zeros((2, 1), bool),
        mask_grid=mask_grid,
        label_grid=label_grid,
    )
    sums = S.chunk_sums(counts, np.ones((1, 2), np.int64), np.array([1, 4]))
    np.testing.assert_allclose(sums.mask_total, [[3.0, 1.5]])
    np.testing.assert_allclose(sums.label_total, [[0.0, 0.0], [1.0, 3.0]])
