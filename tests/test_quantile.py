from fractions import Fraction

import numpy as np
import pytest

from netdissect import quantile as Q
from netdissect.stages import thresholds as T
from netdissect.tally import Pending, Vocabulary, tally_chunk
from netdissect.upsample import geometry, upsample


def exact_thresholds(acts, size, q, chunks, order=None):
    """Run the rounds over the given chunks (merging in the given order), then the count pass without labels."""
    geom = geometry(acts.shape[2], acts.shape[3], *size)
    parts = [acts[a:b] for a, b in chunks]
    order = order or list(range(len(parts)))
    coarse = [Q.coarse_histograms(p, geom) for p in parts]
    lower = Q.merge([coarse[i][0] for i in order])
    upper = Q.merge([coarse[i][1] for i in order])
    k = Q.target_rank(q, lower.total)
    lo, hi = Q.bracket_from_coarse(lower, upper, k)
    states = [Q.histogram_between(p, geom, lo, hi, Q.REFINE_BINS, batch=5) for p in parts]
    state = Q.merge([states[i] for i in order])
    assert len(Q.check_bracket(state, k)) == 0
    lo, hi = Q.narrow(state, lo, hi, k)
    no_labels = Vocabulary(np.array([-1]), 0)
    pending = [
        tally_chunk(p, np.zeros((len(p), 0, *size), np.uint16), np.zeros((len(p), 0), np.uint16), lo, hi, no_labels)[1]
        for p in parts
    ]
    return Q.threshold_in_interval(Pending.concat([pending[i] for i in order]).values_histogram(), k), k


def brute_force(acts, size, k):
    values = upsample(acts, size).transpose(1, 0, 2, 3).reshape(acts.shape[1], -1)
    return -np.sort(-values, axis=1)[:, k]


def random_acts(rng, n, units, h, w):
    acts = rng.standard_normal((n, units, h, w)).astype(np.float32)
    acts[:, 0] = 0  # dead unit
    acts[:, 1] = np.maximum(acts[:, 1], 0)  # ReLU: many ties at 0
    acts[:, 2] = np.round(acts[:, 2] * 2) / 2  # coarse values: ties
    acts[:, 3] *= 1e-30  # tiny values
    acts[:, 4] = acts[:, 4] * 1e3 - 3e4  # large negative values
    acts[::2, 5] = rng.standard_normal((len(acts[::2]), 1, 1))  # constant maps, whole-map bounds
    return acts.astype(np.float16).astype(np.float32)


@pytest.mark.parametrize("seed", range(8))
def test_threshold_is_the_exact_order_statistic(seed):
    rng = np.random.default_rng(seed)
    n, h, w = int(rng.integers(3, 10)), int(rng.integers(1, 8)), int(rng.integers(1, 8))
    size = (int(rng.integers(h, 40)), int(rng.integers(w, 40)))
    acts = random_acts(rng, n, 7, h, w)
    q = float(rng.choice([0.01, 0.003, 0.05, 0.2, 0.5]))
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(3, n - 1), replace=False))
    t, k = exact_thresholds(acts, size, q, list(zip(np.r_[0, cuts], np.r_[cuts, n])))
    assert k == int(q * n * size[0] * size[1] + 1e-9)
    np.testing.assert_array_equal(t, brute_force(acts, size, k))


def test_threshold_independent_of_chunking_and_merge_order():
    rng = np.random.default_rng(42)
    acts = random_acts(rng, 11, 6, 4, 5)
    size = (23, 17)
    results = [
        exact_thresholds(acts, size, 0.01, [(0, 11)])[0],
        exact_thresholds(acts, size, 0.01, [(0, 3), (3, 6), (6, 9), (9, 11)])[0],
        exact_thresholds(acts, size, 0.01, [(0, 3), (3, 6), (6, 9), (9, 11)], order=[3, 1, 0, 2])[0],
        exact_thresholds(acts, size, 0.01, [(i, i + 1) for i in range(11)])[0],
    ]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_at_most_k_values_above_and_at_least_k_plus_1_at_or_above():
    rng = np.random.default_rng(3)
    acts = rng.standard_normal((5, 3, 7, 7)).astype(np.float32)
    size = (56, 56)
    t, k = exact_thresholds(acts, size, 0.01, [(0, 2), (2, 5)])
    values = upsample(acts, size).transpose(1, 0, 2, 3).reshape(3, -1)
    above = (values > t[:, None]).sum(1)
    assert (above <= k).all() and ((values >= t[:, None]).sum(1) >= k + 1).all()


def test_keys_sort_like_floats():
    values = np.array([-np.inf, -3.5, -1e-38, -0.0, 0.0, 1e-45, 2.0, np.inf], np.float32)
    keys = Q.float_keys(values)
    assert (np.diff(keys) >= 0).all() and keys[3] == keys[4]
    np.testing.assert_array_equal(Q.key_floats(keys), values + np.float32(0))


def test_target_rank_uses_the_decimal_quantile():
    assert Q.target_rank(0.01, 100) == 1
    assert Q.target_rank(0.07, 100) == 7  # 0.07 * 100 is 7.000000000000001 in floating point
    assert Q.target_rank(0.29, 100) == 29  # 0.29 * 100 is 28.999999999999996 in floating point


def test_sampled_round_estimates_counts_near_the_threshold_without_bias():
    """Peaks sit at source pixels, the same place in every cell: one fixed sub-grid would miss ~9% of the top 1%."""
    rng = np.random.default_rng(0)
    acts = rng.standard_normal((400, 3, 7, 7)).astype(np.float32)
    geom = geometry(7, 7, 112, 112)
    values = upsample(acts, (112, 112)).transpose(1, 0, 2, 3).reshape(3, -1)
    k = int(0.01 * values.shape[1])
    t = -np.sort(-values, 1)[:, k]
    lo, hi = (t - 0.5).astype(np.float32), (t + 0.5).astype(np.float32)
    sampled = Q.histogram_between(acts, geom, lo, hi, Q.REFINE_BINS, stride=T.SAMPLE_STRIDE)
    top_bin = Q.bin_of(t, lo, Q.bin_scale(lo, hi, Q.REFINE_BINS), Q.REFINE_BINS)
    dense = sampled.dense()
    estimate = sampled.above + np.array([dense[u, top_bin[u] + 1 :].sum() for u in range(3)])
    np.testing.assert_allclose(estimate / k, 1, atol=0.03)


@pytest.mark.parametrize("seed", range(30))
def test_exact_rank_with_ties_straddling_k_and_k_plus_1(seed):
    """Few distinct source values make long runs of equal upsampled values; k is computed here from q and M,
    and the seeds cover runs that end at rank k, at k + 1 and beyond it."""
    rng = np.random.default_rng(100 + seed)
    n, h, w, size = 4, 3, 3, (9, 7)
    acts = rng.integers(0, 4, (n, 3, h, w)).astype(np.float32)
    total = n * size[0] * size[1]
    q = float(rng.choice([0.01, 0.02, 0.05, 0.1, 0.25]))
    k = int(Fraction(str(q)) * total)
    t, rank = exact_thresholds(acts, size, q, [(0, 1), (1, 4)])
    assert rank == k
    values = upsample(acts, size).transpose(1, 0, 2, 3).reshape(3, -1)
    ranked = -np.sort(-values, axis=1)
    np.testing.assert_array_equal(t, ranked[:, k])
    assert ((values > t[:, None]).sum(1) <= k).all() and ((values >= t[:, None]).sum(1) >= k + 1).all()


def test_ties_straddle_k_and_k_plus_1_in_some_seed():
    """The seeds above do reach both cases: v(k) == v(k+1) for some unit, and v(k) > v(k+1) for another."""
    equal = strict = 0
    for seed in range(30):
        rng = np.random.default_rng(100 + seed)
        acts = rng.integers(0, 4, (4, 3, 3, 3)).astype(np.float32)
        q = float(rng.choice([0.01, 0.02, 0.05, 0.1, 0.25]))
        k = int(Fraction(str(q)) * 4 * 9 * 7)
        ranked = -np.sort(-upsample(acts, (9, 7)).transpose(1, 0, 2, 3).reshape(3, -1), axis=1)
        if k > 0:
            equal += int((ranked[:, k - 1] == ranked[:, k]).sum())
            strict += int((ranked[:, k - 1] > ranked[:, k]).sum())
    assert equal > 0 and strict > 0
