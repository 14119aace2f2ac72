"""Tests of the synthetic world: vocabulary, rendering and the Broden writer."""

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from netdissect.synthetic import (
    CATEGORIES,
    IMAGE_CATEGORIES,
    PIXEL_CATEGORIES,
    Sample,
    category_concepts,
    concept_table,
    render_sample,
    write_world,
)
from netdissect.synthetic.vocabulary import PALETTE, PARTS

SIZE = 64
SEED = 0
CATEGORY_IDS = {cat: {c.id for c in category_concepts(cat)} for cat in CATEGORIES}


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    """600 consecutive samples of one world."""
    return [render_sample(SEED, i, SIZE) for i in range(600)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small world written to disk (40 train + 20 val images)."""
    root = tmp_path_factory.mktemp("worlds") / "synthetic"
    write_world(root, seed=3, train_images=40, val_images=20, image_size=SIZE)
    return root


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV file."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _decode(path: Path) -> np.ndarray:
    """Concept ids of a Broden label PNG (R + 256 * G)."""
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.int64)
    assert not rgb[..., 2].any()
    return rgb[..., 0] + 256 * rgb[..., 1]


def _presence(samples: list[Sample]) -> np.ndarray:
    """Per-image object presence vectors."""
    objects = [c.id for c in category_concepts("object")]
    return np.array([np.isin(objects, s.planes["object"]) for s in samples], float)


def _nearest_centroid_accuracy(features: np.ndarray, labels: np.ndarray, n_train: int) -> float:
    """Held-out accuracy of a nearest-centroid classifier."""
    classes = np.unique(labels[:n_train])
    centroids = np.array([features[:n_train][labels[:n_train] == k].mean(0) for k in classes])
    test = features[n_train:]
    predicted = classes[((test[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)]
    return float((predicted == labels[n_train:]).mean())


def test_vocabulary_ids_are_dense_and_unique() -> None:
    table = concept_table()
    ids = [row[0] for row in table]
    assert ids == list(range(1, len(table) + 1))
    assert len({row[1] for row in table}) == len(table)
    assert {row[2] for row in table} == set(CATEGORIES)
    assert set(PIXEL_CATEGORIES) | set(IMAGE_CATEGORIES) == set(CATEGORIES)
    objects = {c.name for c in category_concepts("object")}
    assert set(PARTS.values()) <= objects


def test_render_is_deterministic() -> None:
    a, b = render_sample(7, 11, SIZE), render_sample(7, 11, SIZE)
    assert np.array_equal(a.image, b.image)
    assert (a.scene, a.texture) == (b.scene, b.texture)
    for cat in PIXEL_CATEGORIES:
        assert np.array_equal(a.planes[cat], b.planes[cat])
    assert not np.array_equal(a.image, render_sample(7, 12, SIZE).image)
    assert not np.array_equal(a.image, render_sample(8, 11, SIZE).image)


def test_render_is_independent_of_order() -> None:
    forward = [render_sample(2, i, SIZE) for i in range(8)]
    backward = [render_sample(2, i, SIZE) for i in reversed(range(8))][::-1]
    for f, b in zip(forward, backward):
        assert np.array_equal(f.image, b.image)
        assert np.array_equal(f.planes["object"], b.planes["object"])


def test_sample_shapes_and_label_categories(samples: list[Sample]) -> None:
    for s in samples[:60]:
        assert s.image.shape == (SIZE, SIZE, 3) and s.image.dtype == np.uint8
        assert s.scene in CATEGORY_IDS["scene"]
        assert s.texture == 0 or s.texture in CATEGORY_IDS["texture"]
        for cat in PIXEL_CATEGORIES:
            plane = s.planes[cat]
            assert plane.shape == (SIZE // 2, SIZE // 2) and plane.dtype == np.uint16
            assert set(np.unique(plane)) - {0} <= CATEGORY_IDS[cat]
        assert s.planes["color"].all() and s.planes["object"].all()


def test_colour_labels_match_pixel_colours(samples: list[Sample]) -> None:
    names = {c.id: c.name for c in category_concepts("color")}
    palette = np.array([PALETTE[n] for n in names.values()], float)
    ids = np.array(list(names))
    pixels = np.concatenate([s.image[::2, ::2].reshape(-1, 3) for s in samples[:120]]).astype(float)
    labels = np.concatenate([s.planes["color"].ravel() for s in samples[:120]])
    for cid in np.unique(labels):
        mean = pixels[labels == cid].mean(0)
        assert ids[((palette - mean) ** 2).sum(1).argmin()] == cid


def test_world_content(samples: list[Sample]) -> None:
    first = samples[:300]
    assert {s.scene for s in first} == CATEGORY_IDS["scene"]
    assert len({s.texture for s in first} - {0}) >= 4
    colours = set(np.unique(np.concatenate([s.planes["color"].ravel() for s in first])))
    assert len(colours) >= 8


def test_scene_needs_concepts(samples: list[Sample]) -> None:
    scenes = np.array([s.scene for s in samples])
    presence = _presence(samples)
    mean_rgb = np.array([s.image.reshape(-1, 3).mean(0) for s in samples])
    assert _nearest_centroid_accuracy(presence, scenes, 400) >= 0.9
    assert _nearest_centroid_accuracy(mean_rgb, scenes, 400) < 0.9


def test_write_world_layout(world: Path) -> None:
    header, rows = _read_csv(world / "index.csv")
    assert header == [
        "image",
        "split",
        "ih",
        "iw",
        "sh",
        "sw",
        "color",
        "object",
        "part",
        "material",
        "scene",
        "texture",
    ]
    assert [r["split"] for r in rows] == ["train"] * 40 + ["val"] * 20
    for index, row in enumerate(rows):
        assert row["image"] == f"synthetic/{row['split']}/{index:06d}.png"
        image = Image.open(world / "images" / row["image"])
        assert image.mode == "RGB" and image.size == (int(row["iw"]), int(row["ih"])) == (SIZE, SIZE)
        assert (int(row["sh"]), int(row["sw"])) == (SIZE // 2, SIZE // 2)
        assert int(row["scene"]) in CATEGORY_IDS["scene"]
        assert row["texture"] == "" or int(row["texture"]) in CATEGORY_IDS["texture"]
        for cat in ("color", "object", "material"):
            assert row[cat], f"row {index} lacks {cat}"
        for cat in PIXEL_CATEGORIES:
            if row[cat]:
                ids = _decode(world / "images" / row[cat])
                assert ids.shape == (SIZE // 2, SIZE // 2)
                assert set(np.unique(ids)) - {0} <= CATEGORY_IDS[cat]
    assert not list(world.parent.glob("*.tmp-*"))


def test_write_world_matches_render(world: Path) -> None:
    _, rows = _read_csv(world / "index.csv")
    for index in (0, 45):
        row, sample = rows[index], render_sample(3, index, SIZE)
        assert np.array_equal(np.asarray(Image.open(world / "images" / row["image"])), sample.image)
        assert np.array_equal(_decode(world / "images" / row["object"]), sample.planes["object"])
        assert int(row["scene"]) == sample.scene


def test_write_world_label_tables(world: Path) -> None:
    header, labels = _read_csv(world / "label.csv")
    assert header == ["number", "name", "category", "frequency", "coverage", "syns"]
    assert [(int(r["number"]), r["name"]) for r in labels] == [t[:2] for t in concept_table()]
    _, rows = _read_csv(world / "index.csv")
    scene_counts = {r["number"]: int(r["frequency"]) for r in labels if r["category"].startswith("scene(")}
    assert sum(scene_counts.values()) == len(rows)
    for r in labels:
        category = next(cat for cat in CATEGORIES if r["category"] == f"{cat}({r['frequency']})")
        assert int(r["number"]) in CATEGORY_IDS[category]
        assert 0.0 <= float(r["coverage"]) <= 1.0
    for category in CATEGORIES:
        header, codes = _read_csv(world / f"c_{category}.csv")
        assert header == ["code", "number", "name", "frequency", "coverage"]
        assert [int(r["code"]) for r in codes] == list(range(1, len(CATEGORY_IDS[category]) + 1))
        assert {int(r["number"]) for r in codes} == CATEGORY_IDS[category]


def test_write_world_refuses_existing_root(world: Path) -> None:
    with pytest.raises(FileExistsError):
        write_world(world, seed=3, train_images=1, val_images=1, image_size=SIZE)
