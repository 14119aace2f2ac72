import warnings
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
    assert Q.key_floats(np.array([0, 2**32 - 1])).view(np.uint32).tolist() == [0xFFFFFFFF, 0x7FFFFFFF]  # the NaN ends


def test_coarse_bracket_of_the_largest_floats_stays_finite():
    acts = np.zeros((2, 2, 2, 2), np.float32)
    acts[:, 0] = Q.FLOAT_MAX  # its top coarse bin also holds inf and NaN keys
    acts[:, 1] = -3.3e38  # in the lowest coarse bin of finite floats (the ones below hold -inf and NaN keys)
    geom = geometry(2, 2, 4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # bounds that overflow to inf are still bounds
        lower, upper = Q.coarse_histograms(acts, geom)
    assert lower.above.dtype == np.int64 and upper.above.dtype == np.int64
    for k in (0, 31):
        lo, hi = Q.bracket_from_coarse(lower, upper, k)
        assert np.isfinite(lo).all() and np.isfinite(hi).all()
        values = np.array([Q.FLOAT_MAX, -3.3e38], np.float32)
        assert (lo < values).all() and (values <= hi).all()


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


def _coarse_cumulative(hist: Q.Histogram) -> np.ndarray:
    """(U, COARSE_BINS) weight in bins >= b."""
    return np.cumsum(hist.dense()[:, ::-1], axis=1)[:, ::-1]


@pytest.mark.parametrize("seed", range(6))
def test_coarse_histograms_sandwich_the_upsampled_values(seed):
    """Round 1 against brute force: per unit, the cell lower bounds put at most, the upper bounds at least as much
    weight at or above every coarse bin as the upsampled values do, both weigh every pixel once, and dead or
    constant maps are counted exactly."""
    rng = np.random.default_rng(seed)
    acts = random_acts(rng, 4, 6, 5, 4)
    size = (17, 11)
    lower, upper = Q.coarse_histograms(acts, geometry(5, 4, *size), block=3)
    values = upsample(acts, size).transpose(1, 0, 2, 3).reshape(acts.shape[1], -1)
    bins = Q.float_keys(values, Q.COARSE_SHIFT)
    truth = np.zeros((acts.shape[1], Q.COARSE_BINS), np.int64)
    np.add.at(truth, (np.arange(acts.shape[1])[:, None].repeat(values.shape[1], 1), bins), 1)
    true_cum = np.cumsum(truth[:, ::-1], axis=1)[:, ::-1]
    assert lower.total == upper.total == values.shape[1]
    assert (lower.dense().sum(1) == values.shape[1]).all() and (upper.dense().sum(1) == values.shape[1]).all()
    assert (_coarse_cumulative(lower) <= true_cum).all() and (true_cum <= _coarse_cumulative(upper)).all()
    np.testing.assert_array_equal(lower.dense()[0], truth[0])  # a dead unit: exact zeros
    np.testing.assert_array_equal(upper.dense()[0], truth[0])


@pytest.mark.parametrize("seed", range(6))
def test_coarse_bracket_holds_the_order_statistic_at_the_tightest_bin_edges(seed):
    """bracket_from_coarse: (lo, hi] holds the (k+1)-th largest value; hi ends the lowest bin above which the upper
    bounds weigh at most k, lo ends the bin below the highest one at or above which the lower bounds weigh k+1."""
    rng = np.random.default_rng(100 + seed)
    acts = random_acts(rng, 4, 6, 5, 4)
    size = (17, 11)
    lower, upper = Q.coarse_histograms(acts, geometry(5, 4, *size))
    k = Q.target_rank(0.05, lower.total)
    lo, hi = Q.bracket_from_coarse(lower, upper, k)
    t = brute_force(acts, size, k)
    assert (lo < t).all() and (t <= hi).all()
    up, low = _coarse_cumulative(upper), _coarse_cumulative(lower)
    for u in range(acts.shape[1]):
        hi_bin = np.flatnonzero(np.r_[up[u, 1:], 0] <= k)[0]  # upper-bound weight in bins above b
        lo_bin = np.flatnonzero(low[u] >= k + 1)[-1]
        above_hi, above_lo = np.nextafter(hi[u], np.float32(np.inf)), np.nextafter(lo[u], np.float32(np.inf))
        assert Q.float_keys(hi[u], Q.COARSE_SHIFT) == hi_bin and Q.float_keys(above_hi, Q.COARSE_SHIFT) == hi_bin + 1
        assert Q.float_keys(above_lo, Q.COARSE_SHIFT) == lo_bin and Q.float_keys(lo[u], Q.COARSE_SHIFT) == lo_bin - 1


def _below(x) -> np.float32:
    return np.nextafter(np.float32(x), np.float32(-np.inf))


def test_estimated_bracket_against_hand_counts():
    """Round 2's interval from a sampled histogram, worked by hand: 16 bins of width 1 over (0, 16], k = 10, slack
    0.2 and floor 1, so hi ends the lowest bin above which at most 7 values lie (when at most 7 lie above the whole
    interval) and lo ends below the highest bin at or above which at least 14 lie; otherwise the side is kept."""
    dense = np.zeros((6, 16), np.int64)
    dense[0, 10:14] = 5  # 2 above: 7 above bin 12, 12 at or above bin 12, 17 at or above bin 11
    dense[1, 15] = 10  # 9 above the interval: hi stays; 19 at or above bin 15
    dense[3, 0] = 10  # 8 above: hi stays; 18 at or above bin 0: lo stays at the interval's start
    dense[4, 5] = 14  # exactly 14 at or above bin 5
    dense[5, 8] = 10  # exactly 7 above the interval: 7 above bin 8 too
    above = np.array([2, 9, 0, 8, 0, 7])
    state = Q.Histogram.from_table(1000, above, dense.ravel(), 16)
    lo, hi = np.zeros(6, np.float32), np.full(6, 16, np.float32)
    new_lo, new_hi = Q.estimated_bracket(state, lo, hi, k=10, slack=0.2, floor=1)
    np.testing.assert_array_equal(new_lo, np.array([_below(11), _below(15), 0, 0, _below(5), _below(8)], np.float32))
    np.testing.assert_array_equal(new_hi, np.array([_below(13), 16, _below(1), 16, _below(6), _below(9)], np.float32))


def test_first_key_in_bin_by_bisection_with_units_done_early():
    """The smallest key whose bin (4 bins over (0, 1]) reaches the target, or key(hi) + 1 for a target past the
    last bin, for a unit that finishes its bisection long before another."""
    lo, hi = np.array([0.999, 0.0], np.float32), np.array([1.0, 1e30], np.float32)
    found = Q._first_key_in_bin(lo, hi, np.array([4, 2]), 4)
    assert found[0] == Q.float_keys(np.float32(1.0)) + 1
    scale = Q.bin_scale(lo[1:], hi[1:], 4)
    at, below = Q.key_floats(found[1:]), Q.key_floats(found[1:] - 1)
    assert Q.bin_of(at, lo[1:], scale, 4)[0] == 2 and Q.bin_of(below, lo[1:], scale, 4)[0] == 1
    assert 4.9e29 < at[0] < 5.1e29


def test_narrow_returns_the_edges_of_the_bin_holding_the_order_statistic():
    """16 bins of width 1 over (0, 16]: the (k+1)-th largest value lies in the bin where the count from the top
    first reaches k + 1; narrow returns that bin's edges (the floats just below b and b + 1; the top bin ends at
    16), or the interval itself for a unit whose values never reach k + 1."""
    dense = np.zeros((3, 16), np.int64)
    dense[0, [3, 7, 9]] = [4, 2, 1]  # above 1: 2 at bin 9, 4 at bin 7, 8 at bin 3
    dense[1, 15] = 1  # above 5: 6 already at bin 15
    above = np.array([1, 5, 0])  # unit 2: nothing reaches k + 1
    state = Q.Histogram.from_table(100, above, dense.ravel(), 16)
    lo, hi = Q.narrow(state, np.zeros(3, np.float32), np.full(3, 16, np.float32), k=4)
    np.testing.assert_array_equal(lo, np.array([_below(3), _below(15), 0], np.float32))
    np.testing.assert_array_equal(hi, np.array([_below(4), 16, 16], np.float32))
    assert state.dense().dtype == np.int64 and Q.merge([state, state]).dense().dtype == np.int64


def test_first_bin_reaching_on_exact_values_and_on_none():
    keys = Q.float_keys(np.array([5, 3, 7, 5], np.float32))
    state = Q.Histogram(10, np.array([1, 4, 0]), np.array([0, 0, 2, 0]), keys, np.array([1, 1, 1, 1]), Q.EXACT)
    b, found = Q._first_bin_reaching(state, k=2)
    # unit 0: 1 above, then 5 twice reach 3; unit 1 has no values inside; unit 2: one value, never 3
    assert found.tolist() == [True, False, False] and b[0] == Q.float_keys(np.float32(5))
    empty = Q.Histogram(10, np.zeros(2, np.int64), *(np.zeros(0, np.int64) for _ in range(3)), Q.EXACT)
    b, found = Q._first_bin_reaching(empty, k=2)
    assert b.tolist() == [0, 0] and found.tolist() == [False, False]


def test_check_bracket_names_every_unit_whose_interval_misses_and_the_error_lists_twenty():
    k = 5
    keys = Q.float_keys(np.ones(4, np.float32))
    #            above k+1 | k above, 1 inside: holds | 4 above + 1 inside: short | 3 + 1: short by two
    above = np.array([6, 5, 4, 3])
    state = Q.Histogram(100, above, np.arange(4), keys, np.ones(4, np.int64), Q.EXACT)
    assert Q.check_bracket(state, k).tolist() == [0, 2, 3]
    many = Q.Histogram(100, np.full(30, 9), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), 0)
    with pytest.raises(ValueError) as error:
        Q.threshold_in_interval(many, k)
    assert str(error.value).endswith(f"{list(range(20))}")


def test_the_key_below_plus_zero_maps_to_the_float_below_zero():
    assert Q.key_floats(np.array([(1 << 31) - 1]))[0] == _below(0)
    assert Q.key_floats(Q.float_keys(np.float32(-0.0))) == 0


def test_coarse_bounds_of_a_flat_part_of_a_varying_map_are_its_value():
    """A map flat at 1 over its left two columns and 100 in its last: the pixels between the flat corners get the
    bounds [1, 1], not the whole map's [1, 100]."""
    acts = np.array([[[[1, 1, 100], [1, 1, 100]]]], np.float32)
    _, upper = Q.coarse_histograms(acts, geometry(2, 3, 4, 6))
    one = Q.float_keys(np.float32(1.0), Q.COARSE_SHIFT)
    values = upsample(acts, (4, 6)).ravel()
    assert upper.dense()[0, one] == (values == 1).sum() > 0


def test_coarse_bracket_where_exactly_k_values_lie_above():
    """Two constant maps of 16 pixels (5 and 1), k = 16: exactly k values lie above 1's coarse bin, so hi ends
    that bin (not 5's), and lo stays below 1."""
    acts = np.stack([np.full((1, 2, 2), 5.0), np.full((1, 2, 2), 1.0)]).astype(np.float32)
    lower, upper = Q.coarse_histograms(acts, geometry(2, 2, 4, 4))
    lo, hi = Q.bracket_from_coarse(lower, upper, 16)
    one = Q.float_keys(np.float32(1.0), Q.COARSE_SHIFT)
    assert Q.float_keys(hi, Q.COARSE_SHIFT) == one and Q.float_keys(np.nextafter(hi, np.inf), Q.COARSE_SHIFT) == one + 1
    assert lo < 1  # the map bounds' rounding margin may put lo a bin lower, never above 1


@pytest.mark.parametrize("nbins", [3, 4])
def test_histogram_from_a_dense_table_of_any_bin_count(nbins):
    """Tables of integers, or of floats a rounding error off them, for bin counts that are and are not powers of 2."""
    counts = np.array([[0, 2, 0, 5], [1, 0, 3, 0]])[:, :nbins]
    for table in (counts.ravel(), counts.ravel() + np.where(counts.ravel() > 0, -1e-7, 0.0)):
        state = Q.Histogram.from_table(100, np.array([1.0000001, 2.0]), table, nbins)
        np.testing.assert_array_equal(state.dense(), counts)
        assert state.above.tolist() == [1, 2] and state.count.dtype == np.int64


def test_histogram_between_counts_values_at_the_interval_ends_exactly():
    """Interval ends that are values themselves, in the exact and the sampled pass: a value equal to hi is inside
    (lo, hi], one equal to lo is not."""
    rng = np.random.default_rng(3)
    acts = np.round(rng.standard_normal((3, 2, 4, 5)), 1).astype(np.float32)  # ties
    size = (9, 11)
    values = upsample(acts, size).transpose(1, 0, 2, 3).reshape(2, -1)
    ranked = np.sort(values, axis=1)
    lo, hi = ranked[:, 60], ranked[:, 200]
    state = Q.histogram_between(acts, geometry(4, 5, *size), lo, hi, 16, batch=7)
    np.testing.assert_array_equal(state.above, (values > hi[:, None]).sum(1))
    np.testing.assert_array_equal(state.dense().sum(1), ((values > lo[:, None]) & (values <= hi[:, None])).sum(1))
    assert ((values == hi[:, None]).sum(1) > 0).all() and ((values == lo[:, None]).sum(1) > 0).all()
    # the sampled pass too, where cells of one pixel make its sample the whole map
    values = acts.transpose(1, 0, 2, 3).reshape(2, -1)
    lo, hi = np.sort(values, axis=1)[:, 10], np.sort(values, axis=1)[:, 40]
    state = Q.histogram_between(acts, geometry(4, 5, 4, 5), lo, hi, 16, stride=2, batch=7)
    np.testing.assert_array_equal(state.above, (values > hi[:, None]).sum(1))
    np.testing.assert_array_equal(state.dense().sum(1), ((values > lo[:, None]) & (values <= hi[:, None])).sum(1))
    assert ((values == hi[:, None]).sum(1) > 0).all() and ((values == lo[:, None]).sum(1) > 0).all()


def test_bin_scale_maps_the_interval_onto_the_bins():
    lo, hi = np.array([10.0, -3.0], np.float32), np.array([26.0, 1.0], np.float32)
    scale = Q.bin_scale(lo, hi, 16)
    np.testing.assert_array_equal(scale, [1.0, 4.0])
    assert Q.bin_of(np.array([10.5, -2.9], np.float32), lo, scale, 16).tolist() == [0, 0]
    assert Q.bin_of(np.array([25.5, 1.0], np.float32), lo, scale, 16).tolist() == [15, 15]
