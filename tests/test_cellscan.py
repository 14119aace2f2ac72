"""The column-wise cell scan gives exactly what evaluating every pixel gives, ties and flat columns included."""

import numpy as np
import pytest
from test_upsample import SIZES

from netdissect.cellscan import Columns, count_above, pixels_above, values_between
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

    np.testing.assert_array_equal(count_above(cols, geom, level), (values > level[:, None]).sum(1))

    item, pixel = pixels_above(cols, geom, level)
    rows, pos = np.nonzero(values > level[:, None])
    assert sorted(zip(item.tolist(), pixel.tolist())) == sorted(
        zip(rows.tolist(), geom.pixels[cells[rows], pos].tolist())
    )

    low, high = (level - 0.3).astype(np.float32), (level + 0.2).astype(np.float32)
    item, got = values_between(cols, geom, low, high)
    inside = (values > low[:, None]) & (values <= high[:, None])
    np.testing.assert_array_equal(np.sort(got), np.sort(values[inside]))
    np.testing.assert_array_equal(np.bincount(item, minlength=len(cells)), inside.sum(1))
