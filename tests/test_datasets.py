"""Tests of dataset reading: Broden index and labels, image folders, image decoding."""

import csv
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from netdissect.datasets import (
    DatasetError,
    Record,
    check_files,
    load_image,
    load_label_planes,
    open_dataset,
)

HEADER = ["image", "split", "ih", "iw", "sh", "sw", "color", "object", "part", "scene", "texture"]
LABELS = [  # number, name, category
    (1, "red", "color(2)"),
    (257, "dog", "object(3);part(1)"),
    (513, "leg", "part(5);object(2)"),
    (600, "wheel", "object(2);part(2)"),
    (700, "sky", "object"),
    (300, "kitchen", "scene(1)"),
    (301, "bedroom", "scene(1)"),
    (401, "striped", "texture(2)"),
    (402, "dotted", "texture(1)"),
]
OBJECT0 = np.array([[257, 257, 600, 0], [257, 257, 600, 0], [700, 700, 0, 0], [0, 0, 0, 0]])
PART0A = np.array([[513, 257, 0, 0], [513, 0, 0, 0], [0, 0, 513, 0], [0, 0, 0, 0]])
PART0B = np.array([[513, 513, 0, 0], [0, 0, 0, 0], [0, 0, 0, 513], [0, 0, 0, 0]])


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    """Write a CSV file."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _label_png(path: Path, ids: np.ndarray) -> None:
    """Write concept ids as a Broden label PNG (R + 256 * G)."""
    ids = np.asarray(ids)
    rgb = np.zeros((*ids.shape, 3), np.uint8)
    rgb[..., 0] = ids & 0xFF
    rgb[..., 1] = ids >> 8
    Image.fromarray(rgb).save(path)


def _noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Random RGB pixels."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _index_rows() -> list[list]:
    """Rows of the fixture's index.csv."""
    return [
        ["a/img0.jpg", "train", 8, 8, 4, 4, "a/c0.png", "a/o0.png", "a/p0a.png;a/p0b.png", "300", ""],
        ["a/img1.png", "train", 8, 8, 4, 4, "", "a/o1.png", "", "301", "401;402"],
        ["b/img2.jpg", "val", 8, 8, 4, 4, "", "b/o2.png", "", "", "401"],
        ["b/img3.jpg", "val", 8, 8, 4, 4, "", "", "", "", ""],
    ]


@pytest.fixture
def broden(tmp_path: Path) -> Path:
    """A tiny Broden-format folder: 4 rows, two splits, a row with two part planes."""
    root = tmp_path / "broden"
    images = root / "images"
    for folder in ("a", "b"):
        (images / folder).mkdir(parents=True)
    for i, row in enumerate(_index_rows()):
        Image.fromarray(_noise(8, 8, i)).save(images / row[0])
    _label_png(images / "a/c0.png", np.ones((4, 4), int))
    _label_png(images / "a/o0.png", OBJECT0)
    _label_png(images / "a/p0a.png", PART0A)
    _label_png(images / "a/p0b.png", PART0B)
    _label_png(images / "a/o1.png", np.full((4, 4), 700))
    _label_png(images / "b/o2.png", np.full((4, 4), 257))
    _write_csv(root / "index.csv", HEADER, _index_rows())
    _write_csv(
        root / "label.csv",
        ["number", "name", "category", "frequency", "coverage", "syns"],
        [[n, name, cat, 1, 0.5, ""] for n, name, cat in LABELS],
    )
    for category in ("color", "object", "part", "scene", "texture"):
        rows = [(n, name) for n, name, cat in LABELS if category in cat]
        _write_csv(
            root / f"c_{category}.csv",
            ["code", "number", "name", "frequency", "coverage"],
            [[code, n, name, 1, 0.5] for code, (n, name) in enumerate(rows, 1)],
        )
    return root


def test_records_split_and_size(broden: Path) -> None:
    ds = open_dataset("broden", broden)
    assert ds.kind == "broden" and ds.root == broden
    assert [r.index for r in ds.records()] == [0, 1, 2, 3]
    assert [r.index for r in ds.records("val")] == [2, 3]
    assert [r.index for r in ds.records("val", 1)] == [2]
    assert [r.index for r in ds.records(size=3)] == [0, 1, 2]
    assert ds.records(size=0) == []
    with pytest.raises(DatasetError, match="'train', 'val'"):
        ds.records("test")


def test_record_fields(broden: Path) -> None:
    r0, r1, r2, r3 = open_dataset("broden", broden).records()
    images = broden / "images"
    assert r0.image == images / "a/img0.jpg" and r0.image.is_absolute()
    assert (r0.split, r0.image_size, r0.label_size) == ("train", (8, 8), (4, 4))
    assert r0.pixel_labels == (
        ("color", images / "a/c0.png"),
        ("object", images / "a/o0.png"),
        ("part", images / "a/p0a.png"),
        ("part", images / "a/p0b.png"),
    )
    assert r0.image_labels == (("scene", 300),)
    assert r1.image_labels == (("scene", 301), ("texture", 401), ("texture", 402))
    assert r3.pixel_labels == () and r3.image_labels == ()
    same = Record(0, images / "a/img0.jpg", "train", (8, 8), (4, 4), r0.pixel_labels, r0.image_labels)
    assert r0 == same and hash(r0) == hash(same)
    assert pickle.loads(pickle.dumps(r2)) == r2


def test_concepts_and_primary_categories(broden: Path) -> None:
    table = open_dataset("broden", broden).concepts()
    assert list(table.columns) == ["id", "name", "category"]
    assert table["id"].tolist() == sorted(n for n, _, _ in LABELS)
    assert table["id"].dtype == np.int64
    by_id = {row.id: (row.name, row.category) for row in table.itertuples()}
    assert by_id[257] == ("dog", "object")
    assert by_id[513] == ("leg", "part")
    assert by_id[600] == ("wheel", "object")  # tie: the first
    assert by_id[700] == ("sky", "object")  # plain name
    assert by_id[401] == ("striped", "texture")


def test_concepts_from_c_files_without_category_column(broden: Path) -> None:
    _write_csv(broden / "label.csv", ["number", "name"], [[n, name] for n, name, _ in LABELS])
    _write_csv(
        broden / "c_part.csv",
        ["code", "number", "name", "frequency", "coverage"],
        [[1, 513, "leg", 5, 0.1], [2, 257, "dog", 1, 0.1]],
    )
    _write_csv(
        broden / "c_object.csv",
        ["code", "number", "name", "frequency", "coverage"],
        [[1, 257, "dog", 3, 0.1], [2, 513, "leg", 2, 0.1], [3, 600, "wheel", 1, 0.1], [4, 700, "sky", 1, 0.1]],
    )
    table = open_dataset("broden", broden).concepts()
    category = dict(zip(table["id"], table["category"]))
    assert category[257] == "object" and category[513] == "part" and category[600] == "object"
    assert category[300] == "scene" and category[1] == "color"


def test_categories(broden: Path) -> None:
    assert open_dataset("broden", broden).categories() == [
        ("color", "pixel"),
        ("object", "pixel"),
        ("part", "pixel"),
        ("scene", "image"),
        ("texture", "image"),
    ]


def test_label_planes_decode_and_dedupe(broden: Path) -> None:
    r0, r1, _, _ = open_dataset("broden", broden).records()
    planes, image_ids = load_label_planes(r0, (4, 4))
    assert planes.dtype == np.uint16 and planes.shape == (4, 4, 4)
    np.testing.assert_array_equal(planes[0], 1)
    np.testing.assert_array_equal(planes[1], OBJECT0)  # ids > 255 decoded as R + 256 G
    expected_a = PART0A.copy()
    expected_a[0, 1] = 0  # dog at (0, 1) is already in the object plane
    expected_b = PART0B.copy()
    expected_b[0, 0] = 0  # leg at (0, 0) is already in the first part plane
    np.testing.assert_array_equal(planes[2], expected_a)
    np.testing.assert_array_equal(planes[3], expected_b)
    assert image_ids.dtype == np.int64 and image_ids.tolist() == [300]
    planes, image_ids = load_label_planes(r1, (4, 4))
    assert planes.shape == (1, 4, 4) and image_ids.tolist() == [301, 401, 402]
    planes, image_ids = load_label_planes(open_dataset("broden", broden).records()[3], (4, 4))
    assert planes.shape == (0, 4, 4) and image_ids.shape == (0,)


def test_label_planes_resized_with_nearest_neighbour(broden: Path) -> None:
    planes, _ = load_label_planes(open_dataset("broden", broden).records()[0], (8, 8))
    np.testing.assert_array_equal(planes[1], OBJECT0.repeat(2, 0).repeat(2, 1))
    planes, _ = load_label_planes(open_dataset("broden", broden).records()[0], (3, 5))
    reference = Image.fromarray(OBJECT0.astype(np.int32)).resize((5, 3), Image.Resampling.NEAREST)
    np.testing.assert_array_equal(planes[1], np.asarray(reference))


def test_label_size_mismatch_names_the_png(broden: Path) -> None:
    _label_png(broden / "images/b/o2.png", np.full((5, 4), 257))
    record = open_dataset("broden", broden).records()[2]
    with pytest.raises(DatasetError, match=r"o2\.png.*5x4.*4x4"):
        load_label_planes(record, (4, 4))


def test_missing_and_corrupt_label_png(broden: Path) -> None:
    record = open_dataset("broden", broden).records()[2]
    (broden / "images/b/o2.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"o2\.png"):
        load_label_planes(record, (4, 4))
    (broden / "images/b/o2.png").unlink()
    with pytest.raises(DatasetError, match=r"o2\.png"):
        load_label_planes(record, (4, 4))


def test_check_files_reports_missing_files(broden: Path) -> None:
    records = open_dataset("broden", broden).records()
    assert check_files(records) == []
    (broden / "images/b/img2.jpg").unlink()
    (broden / "images/a/p0b.png").unlink()
    problems = check_files(records)
    assert len(problems) == 2
    assert "row 0" in problems[0] and "p0b.png" in problems[0]
    assert "row 2" in problems[1] and "img2.jpg" in problems[1]


def test_bad_cells_name_row_and_column(broden: Path) -> None:
    rows = _index_rows()
    rows[1][HEADER.index("texture")] = "401;stripes"
    rows[2][HEADER.index("part")] = "12"
    _write_csv(broden / "index.csv", HEADER, rows)
    records = open_dataset("broden", broden).records()
    with pytest.raises(DatasetError, match=r"row 1 .*texture.*stripes"):
        _ = records[1].image_labels
    with pytest.raises(DatasetError, match=r"row 2 .*part"):
        _ = records[2].pixel_labels
    rows = _index_rows()
    rows[3][HEADER.index("ih")] = "big"
    _write_csv(broden / "index.csv", HEADER, rows)
    with pytest.raises(DatasetError, match=r"row 3 .*ih"):
        open_dataset("broden", broden).records()


def test_header_missing_columns(broden: Path) -> None:
    _write_csv(broden / "index.csv", ["image", "split", "iw", "sh", "object"], [["a/img0.jpg", "train", 8, 4, ""]])
    with pytest.raises(DatasetError, match=r"index\.csv.*ih, sw"):
        open_dataset("broden", broden)


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown dataset kind 'coco'; expected one of broden, imagefolder"):
        open_dataset("coco", tmp_path)
    with pytest.raises(DatasetError, match=f"dataset folder {tmp_path / 'absent'} does not exist or is not a folder"):
        open_dataset("broden", tmp_path / "absent")
    with pytest.raises(DatasetError, match=f"cannot read {tmp_path / 'index.csv'}: No such file"):
        open_dataset("broden", tmp_path)


def test_digest_stable_and_row_sensitive(broden: Path) -> None:
    ds = open_dataset("broden", broden)
    records = ds.records()
    digest = ds.digest(records)
    assert len(digest) == 64
    assert open_dataset("broden", broden).digest(open_dataset("broden", broden).records()) == digest
    assert ds.digest(records[:2]) != digest and ds.digest(records[::-1]) != digest
    first, last = ds.digest(records[:1]), ds.digest(records[3:])
    rows = _index_rows()
    rows[3][HEADER.index("texture")] = "402"
    _write_csv(broden / "index.csv", HEADER, rows)
    changed = open_dataset("broden", broden)
    assert changed.digest(changed.records()) != digest
    assert changed.digest(changed.records()[:1]) == first
    assert changed.digest(changed.records()[3:]) != last


def _png_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    """An image encoded in memory."""
    buffer = io.BytesIO()
    img.save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt,name", [("PNG", "half.png"), ("JPEG", "half.jpg")])
def test_truncated_image_raises(tmp_path: Path, fmt: str, name: str) -> None:
    data = _png_bytes(Image.fromarray(_noise(64, 64)), fmt)
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=name):
        load_image(tmp_path / name)


def test_corrupt_and_missing_images_raise(tmp_path: Path) -> None:
    (tmp_path / "noise.jpg").write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(DatasetError, match=r"noise\.jpg"):
        load_image(tmp_path / "noise.jpg")
    with pytest.raises(DatasetError, match=r"absent\.jpg"):
        load_image(tmp_path / "absent.jpg")


def test_image_modes_load_as_uint8_rgb(tmp_path: Path) -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    rgb = _noise(3, 4)
    cases = {
        "gray.png": (Image.fromarray(gray), np.stack([gray] * 3, -1)),
        "rgba.png": (Image.fromarray(np.dstack([rgb, np.full((3, 4), 7, np.uint8)])), rgb),
        "gray16.png": (Image.fromarray(gray.astype(np.uint16) * 257), np.stack([gray] * 3, -1)),
        "int.tif": (
            Image.fromarray(np.array([[-5, 70000, 256 * 9, 300]], np.int32)),
            np.array([[0, 255, 9, 1]], np.uint8)[..., None].repeat(3, -1),
        ),
        "float.tif": (
            Image.fromarray(np.array([[0.0, 0.5, 1.0, -1.0]], np.float32)),
            np.array([[0, 128, 255, 0]], np.uint8)[..., None].repeat(3, -1),
        ),
        "float255.tif": (
            Image.fromarray(np.array([[0.0, 10.4, 300.0, 2.0]], np.float32)),
            np.array([[0, 10, 255, 2]], np.uint8)[..., None].repeat(3, -1),
        ),
    }
    palette = Image.fromarray(np.array([[0, 1], [1, 2]], np.uint8), "P")
    palette.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90])
    cases["palette.png"] = (palette, np.array([[[10, 20, 30], [40, 50, 60]], [[40, 50, 60], [70, 80, 90]]]))
    gray_alpha = Image.fromarray(np.dstack([gray, gray // 2]), "LA")
    cases["la.png"] = (gray_alpha, np.stack([gray] * 3, -1))
    for name, (img, expected) in cases.items():
        img.save(tmp_path / name)
        out = load_image(tmp_path / name)
        assert out.dtype == np.uint8 and out.shape == (*expected.shape[:2], 3), name
        np.testing.assert_array_equal(out, expected, err_msg=name)
    assert Image.open(tmp_path / "gray16.png").mode.startswith("I;16")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.tif")
    assert load_image(tmp_path / "cmyk.tif").shape == (3, 4, 3)


def test_resize_is_bilinear(tmp_path: Path) -> None:
    img = Image.fromarray(_noise(16, 12))
    img.save(tmp_path / "x.png")
    out = load_image(tmp_path / "x.png", resize=(5, 7))
    assert out.shape == (5, 7, 3) and out.flags.writeable
    np.testing.assert_array_equal(out, np.asarray(img.resize((7, 5), Image.Resampling.BILINEAR)))
    np.testing.assert_array_equal(load_image(tmp_path / "x.png", resize=(16, 12)), np.asarray(img))


def test_image_folder(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    formats = Image.registered_extensions()
    for name in ("b.jpg", "a/c.png", "a.JPG", "a/z/d.tiff", "c.webp"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_noise(4, 4)).save(root / name, format=formats[Path(name).suffix.lower()])
    (root / "notes.txt").write_text("not an image")
    ds = open_dataset("imagefolder", root)
    records = ds.records()
    listed = [r.image.relative_to(root).as_posix() for r in records]
    assert listed == ["a/c.png", "a/z/d.tiff", "a.JPG", "b.jpg", "c.webp"]  # by path components
    assert [r.index for r in records] == list(range(5))
    assert all(r.split == "" and r.image_size is None and r.pixel_labels == () for r in records)
    assert len(ds.records(size=2)) == 2
    assert ds.categories() == []
    assert ds.concepts().empty and list(ds.concepts().columns) == ["id", "name", "category"]
    assert check_files(records) == []
    assert load_image(records[3].image).shape == (4, 4, 3)
    assert ds.digest(records) == open_dataset("imagefolder", root).digest(records)
    with pytest.raises(DatasetError, match="no splits"):
        ds.records("train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no image files"):
        open_dataset("imagefolder", tmp_path / "empty")


def test_synthetic_world_reads_back(tmp_path: Path) -> None:
    from netdissect.synthetic import write_world

    write_world(tmp_path / "world", seed=1, train_images=4, val_images=2, image_size=32)
    ds = open_dataset("broden", tmp_path / "world")
    assert len(ds.records("train")) == 4 and len(ds.records("val")) == 2
    assert check_files(ds.records()) == []
    ids = set(ds.concepts()["id"])
    for record in ds.records():
        planes, image_ids = load_label_planes(record, (32, 32))
        assert planes.shape[1:] == (32, 32)
        assert set(np.unique(planes)) - {0} <= ids and set(image_ids) <= ids
        assert load_image(record.image).shape == (32, 32, 3)
