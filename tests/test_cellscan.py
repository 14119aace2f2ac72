"""The column-wise cell scan gives exactly what evaluating every pixel gives, ties and flat columns included."""

import numpy as np
import pytest
from test_upsample import SIZES

from netdissect import cellscan
from netdissect.cellscan import Columns, run_pixels, runs_above, scan_between, smaller_side
from netdissect.upsample import cell_pixel_values, corner_values, geometry


@pytest.mark.parametrize("h,w,H,W", SIZES)
def test_scan_equals_pixel_by_pixel(h, w, H, W):
    rng = np.random.default_rng(h * 100 + W)
    geom = geometry(h, w, H, W)
    maps = rng.standard_normal((30, h, w)).astype(np.float32)
    maps[:8] = np.round(maps[:8])  # ties and flat columns
    maps[8:12] = 0.5
    cells = np.tile(np.arange(geom.num_cells), len(maps))
    corners = corner_values(maps, geom).reshape(-1, 4)
    values = cell_pixel_values(corners, cells, geom)
    # levels: half of them exactly one of the item's own pixel values (the hardest case)
    own = np.array([rng.choice(v[~np.isnan(v)]) for v in values], np.float32)
    level = np.where(rng.random(len(cells)) < 0.5, own, rng.standard_normal(len(cells)).astype(np.float32))
    cols = Columns.of(corners, cells, geom)

    valid = ~np.isnan(values)
    run_item, run_start, run_length = runs_above(cols, geom, level)
    rows, pos = np.nonzero(values > level[:, None])
    assert sorted(
        zip(np.repeat(run_item, run_length).tolist(), geom.cell_major[run_pixels(run_start, run_length)].tolist())
    ) == sorted(zip(rows.tolist(), geom.pixels[cells[rows], pos].tolist()))
    for low in (level, level - np.float32(0.3), level - np.abs(level) * np.float32(1e-6)):
        (run_item, run_start, run_length), above, (p_item, p_pixel, p_value) = smaller_side(
            cols, geom, low.astype(np.float32), level
        )
        item, pixel = np.repeat(run_item, run_length), run_pixels(run_start, run_length)
        on_side = np.where(above[:, None], values > level[:, None], valid & ~(values > level[:, None]))
        rows, pos = np.nonzero(on_side)
        assert sorted(zip(item.tolist(), geom.cell_major[pixel].tolist())) == sorted(
            zip(rows.tolist(), geom.pixels[cells[rows], pos].tolist())
        )
        assert above.any() and not above.all()
        assert (on_side.sum(1) <= np.maximum(valid.sum(1) // 2, (values > level[:, None]).sum(1))).all()
        inside = (values > low[:, None]) & (values <= level[:, None])
        rows, pos = np.nonzero(inside)
        expected = zip(rows.tolist(), geom.pixels[cells[rows], pos].tolist(), values[rows, pos].tolist())
        assert sorted(zip(p_item.tolist(), geom.cell_major[p_pixel].tolist(), p_value.tolist())) == sorted(expected)
        assert (low < level).any() <= (len(p_item) > 0)

    for low, high in ((level - 0.3, level + 0.2), (level, level), (level - 0.3, level)):
        low, high = low.astype(np.float32), high.astype(np.float32)
        above, item, got = scan_between(cols, geom, low, high)
        np.testing.assert_array_equal(above, (values > high[:, None]).sum(1))
        inside = (values > low[:, None]) & (values <= high[:, None])
        np.testing.assert_array_equal(np.sort(got), np.sort(values[inside]))
        np.testing.assert_array_equal(np.bincount(item, minlength=len(cells)), inside.sum(1))


def test_row_groups_bucket_weights_up_to_the_limit_and_refuse_closer_ones():
    """Row weights 1/60001 apart need 2**16 buckets, the most allowed; weights closer still are refused, naming the
    upsampling."""
    assert cellscan._row_groups(geometry(3, 1, 60001, 1)).buckets == cellscan.MAX_BUCKETS
    with pytest.raises(ValueError, match=r"row weights of the \(3, 1\) -> \(90001, 1\) upsampling lie too close"):
        cellscan._row_groups(geometry(3, 1, 90001, 1))
