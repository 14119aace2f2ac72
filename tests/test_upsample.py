import numpy as np
import pytest
import torch

from netdissect.upsample import (
    bound_blocks,
    cell_pixel_values,
    classify_cells,
    corner_values,
    geometry,
    item_corners,
    sampled_pixel_values,
    upsample,
)

SIZES = [
    (7, 7, 112, 112),
    (14, 14, 112, 112),
    (7, 9, 113, 50),
    (5, 5, 5, 5),
    (3, 4, 7, 11),
    (1, 1, 6, 6),
    (16, 16, 8, 8),
    (3, 5, 301, 97),  # row weights 1/100 apart
]


@pytest.mark.parametrize("h,w,H,W", SIZES)
def test_upsample_matches_torch_bilinear(h, w, H, W):
    maps = np.random.default_rng(0).standard_normal((2, 3, h, w)).astype(np.float32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(maps), size=(H, W), mode="bilinear", align_corners=False)
    out = upsample(maps, (H, W))
    np.testing.assert_allclose(out, ref.numpy(), rtol=0, atol=1e-5)
    assert out.dtype == np.float32 and out.shape == (2, 3, H, W)


@pytest.mark.parametrize("h,w,H,W", SIZES)
def test_cells_partition_pixels_and_bound_values(h, w, H, W):
    maps = np.random.default_rng(1).standard_normal((4, h, w)).astype(np.float32)
    geom = geometry(h, w, H, W)
    pixels = geom.pixels[geom.pixels >= 0]
    assert np.array_equal(np.sort(pixels), np.arange(H * W))
    assert geom.npix.sum() == H * W
    for g in range(geom.num_cells):  # cell-major layout: cell after cell, column after column
        rows = geom.num_rows[g]
        block = geom.cell_major[geom.block_start[g] : geom.block_start[g] + geom.npix[g]]
        assert np.array_equal(block.reshape(-1, rows).T, geom.pixels[g][geom.pixels[g] >= 0].reshape(rows, -1))
    blocks = list(bound_blocks(maps, geom))
    lo, hi = (np.concatenate([b[i] for b in blocks]) for i in (1, 2))
    values = upsample(maps, (H, W)).reshape(4, -1)
    cell = geom.cell_of_pixel
    assert (values >= lo[:, cell]).all() and (values <= hi[:, cell]).all()
    corners = corner_values(maps, geom)
    assert np.array_equal(lo, corners.min(-1) - np.maximum(np.abs(corners.min(-1)), np.abs(corners.max(-1))) * 2.0**-18)
    index, cells = np.repeat(np.arange(4), geom.num_cells), np.tile(np.arange(geom.num_cells), 4)
    assert np.array_equal(item_corners(maps, geom, index, cells), corners.reshape(-1, 4))


def test_classify_cells_matches_every_cell_bound_against_the_levels():
    rng = np.random.default_rng(5)
    maps = np.maximum(rng.standard_normal((6, 4, 7, 7)), 0).astype(np.float32)
    maps[:, 3] = rng.standard_normal((6, 1, 1))  # constant maps
    geom = geometry(7, 7, 112, 112)
    low = np.array([0.5, -0.1, 2.5, 0.0], np.float32)
    high = low + np.array([0.5, 0.2, 0.0, 1.0], np.float32)
    lo, hi = (np.concatenate([b[i] for b in bound_blocks(maps, geom)]).reshape(6, 4, -1) for i in (1, 2))
    above = lo > high[:, None]
    reaching = ~above & (hi > low[:, None])
    zero = reaching & (lo == 0) & (hi == 0)
    classes = classify_cells(maps, geom, low, high)
    for found, mask in ((classes.above, above), (classes.reaching, reaching & ~zero), (classes.zero, zero)):
        assert [a.tolist() for a in found] == [a.tolist() for a in np.nonzero(mask)]
    assert len(classes.zero[0]) and len(classes.above[0]) and len(classes.reaching[0])


def test_7x7_to_112_cells_group_clamped_edges_with_their_neighbours():
    geom = geometry(7, 7, 112, 112)
    assert geom.num_cells == 49
    assert sorted(set(geom.npix.tolist())) == [8 * 8, 8 * 16, 8 * 24, 16 * 16, 16 * 24, 24 * 24]


@pytest.mark.parametrize("h,w,H,W", SIZES)
@pytest.mark.parametrize("stride", [2, 3, 4])
def test_sampled_values_are_the_sub_grid_of_the_full_values(h, w, H, W, stride):
    rng = np.random.default_rng(stride)
    geom = geometry(h, w, H, W)
    maps = rng.standard_normal((3, h, w)).astype(np.float32)
    cells = np.tile(np.arange(geom.num_cells), 3)
    corners = corner_values(maps, geom).reshape(-1, 4)
    offsets = rng.integers(0, stride, (len(cells), 2))
    full = cell_pixel_values(corners, cells, geom).reshape(len(cells), geom.rows.shape[1], geom.cols.shape[1])
    seen = np.zeros(len(cells), int)
    for members, values, weight in sampled_pixel_values(corners, cells, geom, stride, offsets):
        for i, item in enumerate(members):
            rows, cols = (geom.rows[cells[item]] >= 0).sum(), (geom.cols[cells[item]] >= 0).sum()
            expected = full[item, offsets[item, 0] % rows :: stride, offsets[item, 1] % cols :: stride]
            expected = expected[~np.isnan(expected)]
            np.testing.assert_array_equal(values[i][~np.isnan(values[i])], expected)
            assert weight[i] * expected.size == pytest.approx(geom.npix[cells[item]])
            seen[item] += 1
    assert (seen == 1).all()
