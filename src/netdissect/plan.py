"""What a run will process: the selected images, their chunks and sizes, computed at DAG-parse time.

Chunks are fixed row ranges of the selected images ([start, stop) after the split is chosen); a chunk's jobs
depend only on its own rows, so growing ``dataset.size`` adds chunks without touching the full ones.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .ablationplan import model_classes
from .config import ConfigError
from .datasets import Dataset, DatasetError, Record, open_dataset
from .layout import CacheLayout, RunLayout
from .modelspec import TRAIN, ModelSpec
from .provenance import digest

CHUNK_PATTERN = r"\d{7}-\d{7}"


@dataclass(frozen=True)
class Chunk:
    """A row range of the selected images and the digest of its rows' content."""

    name: str
    start: int
    stop: int
    digest: str


@dataclass(frozen=True)
class Plan:
    """The images of a run, as chunks, with their image and label sizes."""

    run_dir: Path
    dataset_root: Path
    chunks: tuple[Chunk, ...]
    image_size: tuple[int, int]
    label_size: tuple[int, int]
    splits: tuple[tuple[str, int], ...] = ()  # (split, images) of the selected images, by split name

    def chunk(self, name: str) -> Chunk:
        for c in self.chunks:
            if c.name == name:
                return c
        raise KeyError(f"no chunk {name!r} in this run")

    @property
    def images(self) -> int:
        return self.chunks[-1].stop if self.chunks else 0

    @property
    def chunk_size(self) -> int:
        """Images per chunk (the last may have fewer)."""
        return self.chunks[0].stop - self.chunks[0].start

    @property
    def selection(self) -> dict:
        """How many images the run dissects, per split: ``{"images": 120, "splits": {"train": 96, "val": 24}}``."""
        return {"images": self.images, "splits": dict(self.splits)}


def split_counts(splits) -> dict[str, int]:
    """Images per split name (sorted; image folders' empty split names are left out)."""
    counts: dict[str, int] = {}
    for split in splits:
        if split:
            counts[split] = counts.get(split, 0) + 1
    return dict(sorted(counts.items()))


def describe_selection(selection: dict) -> str:
    """One line for logs: '120 images (train 96, val 24)'."""
    splits = ", ".join(f"{name} {count}" for name, count in selection["splits"].items())
    return f"{selection['images']} images" + (f" ({splits})" if splits else "")


def run_dir(cfg: dict) -> Path:
    return Path("results") / cfg["run"]


CACHE = CacheLayout.of_results("results")


def world_params(cfg: dict) -> dict:
    """Everything the synthetic world's content depends on."""
    return {"seed": cfg["seed"], **cfg["synthetic"]}


def world_key(cfg: dict) -> str:
    """The synthetic world's cache key (``results/cache/world-<key>``)."""
    return digest(world_params(cfg))


def dataset_root(cfg: dict) -> Path:
    """The Broden-format or image folder the run reads (the synthetic world's is in the cache)."""
    if cfg["dataset"]["kind"] == "synthetic":
        return Path(CACHE.world(world_key(cfg)))
    return Path(cfg["dataset"]["root"])


def training_source(cfg: dict) -> dict:
    """The dataset a network trained here learns from: its train split, validated on val (whatever is dissected)."""
    kind = "imagefolder" if cfg["dataset"]["kind"] == "imagefolder" else "broden"
    return {"kind": kind, "root": str(dataset_root(cfg))}


def source_spec(cfg: dict) -> dict:
    """The few config values that say which rows a chunk reads (passed to chunk jobs as params)."""
    return training_source(cfg) | {"split": cfg["dataset"]["split"]}


def open_source(spec: dict) -> Dataset:
    """Open the dataset a source_spec names (the synthetic world must have been written)."""
    return open_dataset(spec["kind"], spec["root"])


def chunk_name(start: int, stop: int) -> str:
    return f"{start:07d}-{stop:07d}"


def chunk_ranges(total: int, chunk_size: int) -> list[tuple[int, int]]:
    return [(a, min(a + chunk_size, total)) for a in range(0, total, chunk_size)]


AUTO_CHUNK_MIN = 100  # images: a smaller chunk's job costs more in start-up (imports, the model) than it gains
AUTO_CHUNK_MAX = 2500  # images: bounds a chunk job's runtime and the work a killed job loses


def auto_chunk_size(images: int, slots: int) -> int:
    """``chunk_size: auto``: one chunk per job slot, fewer where chunks would fall below AUTO_CHUNK_MIN images, more
    (whole rounds of the slots) where they would exceed AUTO_CHUNK_MAX."""
    slots = max(1, slots)
    count = min(slots, max(1, images // AUTO_CHUNK_MIN))
    count = max(count, -(-images // AUTO_CHUNK_MAX))
    if count > slots:
        count = -(-count // slots) * slots
    return max(1, -(-images // count))


@dataclass(frozen=True)
class Chunking:
    """How ``chunk_size: auto`` is resolved: the jobs that run at once, and the run's record of earlier choices.

    A size once chosen for a number of images is kept in ``record`` (``results/<run>/chunking.json``), so a rerun with
    other ``--cores`` keeps its chunks, and cluster jobs, which plan again on their nodes, cut the same chunks.
    """

    slots: int = 1
    record: Path | None = None

    def recorded(self) -> dict:
        return json.loads(self.record.read_text()) if self.record and self.record.exists() else {}

    def size(self, setting: int | str, images: int, key: str) -> int:
        """The chunk size for ``images`` images of ``key`` (dataset or gan) under the config's ``chunk_size``."""
        if setting != "auto":
            return int(setting)
        earlier = self.recorded().get(key)
        if earlier and earlier["images"] == images:
            return int(earlier["chunk_size"])
        return auto_chunk_size(images, self.slots)

    def remember(self, choices: dict[str, tuple[int, int]]) -> None:
        """Record ``{key: (images, chunk_size)}`` for later plans of this run (written only when it changes)."""
        earlier = self.recorded()
        entries = earlier | {k: {"images": n, "chunk_size": size} for k, (n, size) in choices.items()}
        if self.record and entries != earlier:
            self.record.parent.mkdir(parents=True, exist_ok=True)
            self.record.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")


ONE_SLOT = Chunking()  # plans outside a workflow: auto chunking as for one job slot, nothing recorded


def _synthetic_count(cfg: dict) -> int:
    syn, split = cfg["synthetic"], cfg["dataset"]["split"]
    counts = {"train": syn["train_images"], "val": syn["val_images"]}
    if split is None:
        return sum(counts.values())
    if split not in counts:
        raise ConfigError(f"config key 'dataset.split': the synthetic world has splits train and val, not {split!r}")
    return counts[split]


def _uniform(sizes: list[tuple[tuple[int, int] | None, Record]], what: str, key: str) -> tuple[int, int] | None:
    """The one size all records share, or a DatasetError naming the first record that differs."""
    first_size, first = sizes[0]
    for size, record in sizes:
        if size != first_size:
            raise DatasetError(
                f"{what} sizes differ: {first.image} is {first_size} but {record.image} (row {record.index}) is "
                f"{size}; set {key} to dissect images of different sizes"
            )
    return first_size


def _model_label_size(cfg: dict, image_size: tuple[int, int]) -> tuple[int, int]:
    resolution = cfg["segmenter"]["resolution"]
    return tuple(resolution) if resolution else (max(1, image_size[0] // 2), max(1, image_size[1] // 2))


def make_plan(cfg: dict, chunking: Chunking = ONE_SLOT) -> Plan:
    """Plan a validated configuration: select the images, cut them into chunks, fix image and label sizes.

    Raises:
        ConfigError or DatasetError naming the key, row or file at fault.
    """
    ds = cfg["dataset"]
    resize = tuple(ds["resize"]) if ds["resize"] else None
    if ds["kind"] == "synthetic":
        total = _synthetic_count(cfg)
        if ds["size"] is not None:
            total = min(total, ds["size"])
        side = cfg["synthetic"]["image_size"]
        world = {k: cfg["synthetic"][k] for k in ("train_images", "val_images", "image_size")}
        chunk_size = chunking.size(cfg["chunk_size"], total, "dataset")
        chunks = tuple(
            Chunk(chunk_name(a, b), a, b, digest(["synthetic", cfg["seed"], world, ds["split"], a, b]))
            for a, b in chunk_ranges(total, chunk_size)
        )
        train = min(total, cfg["synthetic"]["train_images"])  # the world's train rows come first
        splits = {ds["split"]: total} if ds["split"] else {"train": train, "val": total - train}
        image_size = resize or (side, side)
        stored_label = (side // 2, side // 2)
        label_size = _scaled(stored_label, (side, side), image_size)
    else:
        source = open_source(source_spec(cfg))
        records = source.records(ds["split"], ds["size"])
        if not records:
            raise DatasetError(f"dataset {source.root} has no images to dissect (split {ds['split']!r})")
        if cfg["model"]["weights"] == "train":
            _check_training_splits(source)
        splits = split_counts(r.split for r in records)
        chunk_size = chunking.size(cfg["chunk_size"], len(records), "dataset")
        chunks = tuple(
            Chunk(chunk_name(a, b), a, b, source.digest(records[a:b]))
            for a, b in chunk_ranges(len(records), chunk_size)
        )
        image_size = resize or _uniform([(r.image_size, r) for r in records], "image", "dataset.resize")
        if image_size is None:
            from .datasets import load_image

            image_size = load_image(records[0].image).shape[:2]
        label_size = None
        if cfg["segmenter"]["kind"] == "dataset":
            stored = _uniform([(r.label_size, r) for r in records], "label map", "dataset.resize")
            stored_image = _uniform([(r.image_size, r) for r in records], "image", "dataset.resize")
            label_size = _scaled(stored, stored_image, image_size)
    if not chunks:
        raise ConfigError("no images selected: check dataset.split and dataset.size")
    if cfg["segmenter"]["kind"] != "dataset":
        label_size = _model_label_size(cfg, image_size)
    splits = tuple((name, count) for name, count in sorted(splits.items()) if count)
    return Plan(run_dir(cfg), dataset_root(cfg), chunks, tuple(image_size), tuple(label_size), splits)


def _check_training_splits(source: Dataset) -> None:
    """model.weights: train learns from the dataset's train split and reports accuracy on its val split."""
    for split in ("train", "val"):
        try:
            source.records(split, None)
        except DatasetError as error:
            raise ConfigError(f"config key 'model.weights': 'train' needs the train and val splits: {error}") from None


def _scaled(label: tuple[int, int], image: tuple[int, int], target_image: tuple[int, int]) -> tuple[int, int]:
    """Label size for images resized from ``image`` to ``target_image`` (same ratio as stored)."""
    return (
        max(1, round(label[0] * target_image[0] / image[0])),
        max(1, round(label[1] * target_image[1] / image[1])),
    )


def missing_files(cfg: dict) -> list[str]:
    """Missing image and label files of the selected rows (file lookups only; the synthetic world has none)."""
    if cfg["dataset"]["kind"] == "synthetic":
        return []
    from .datasets import check_files

    return check_files(open_source(source_spec(cfg)).records(cfg["dataset"]["split"], cfg["dataset"]["size"]))


def describe_missing(problems: list[str], shown: int = 20) -> str:
    """The error message for missing dataset files: how many, the first ones, and how to skip them."""
    listed = "\n  ".join(problems[:shown])
    more = f"\n  ... and {len(problems) - shown} more" if len(problems) > shown else ""
    return f"{len(problems)} dataset files are missing:\n  {listed}{more}\n(set dataset.skip_bad_images: true to skip them)"


def chunk_records(spec: dict, start: int, stop: int) -> list[Record]:
    """The records of rows [start, stop) of a source_spec's selection (split applied; size is irrelevant)."""
    return open_source(spec).records(spec["split"], None)[start:stop]


# ---- what the rules pass their jobs: computed once per parse from the validated config


def scene_classes(cfg: dict) -> tuple[list[int], list[str]]:
    """(ids, names) of the dataset's scene concepts: the classes of a classifier trained here."""
    if cfg["dataset"]["kind"] == "synthetic":
        from .synthetic.vocabulary import concept_table

        rows = [(i, n) for i, n, c in concept_table() if c == "scene"]
    else:
        table = open_source(source_spec(cfg)).concepts()
        rows = list(table.loc[table["category"] == "scene", ["id", "name"]].itertuples(index=False, name=None))
    return [int(i) for i, _ in rows], [str(n) for _, n in rows]


def native_bfloat16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16), read from Linux's cpuinfo flags.

    Args:
        cpuinfo: the file listing the CPU flags (none elsewhere than Linux: False).
    """
    try:
        flags = Path(cpuinfo).read_text()
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


def training_autocast(section: dict) -> str | None:
    """The precision a training section asks for: ``auto`` is bfloat16 where the CPU computes it natively."""
    if section["autocast"] != "auto":
        return section["autocast"]
    return "bfloat16" if native_bfloat16() else None


def _trained_network(section: dict) -> dict:
    """A training section's values as the training stage takes them (``auto`` resolved)."""
    return section | {"autocast": training_autocast(section)}


def adversarial_classes(cfg: dict) -> list[str]:
    """The names of the model's outputs, for the adversarial analysis, with its class pairs checked.

    Raises:
        ConfigError: the model's class names are unknown (neither ``model.classes`` nor a classifier trained
            here), or a pair names a class the model does not have.
    """
    if not cfg["model"]["classes"] and cfg["model"]["weights"] != TRAIN:
        raise ConfigError(
            "config key 'adversarial.activate': the attack needs the names of the model's classes: set "
            "model.classes (a text file, one output name per line), or set adversarial.activate: false"
        )
    names = model_classes(cfg)
    for source, target in cfg["adversarial"]["pairs"] or []:
        for name in (source, target):
            if name not in names:
                raise ConfigError(
                    f"config key 'adversarial.pairs': the model has no class {name!r} (classes: {', '.join(names)})"
                )
        if source == target:
            raise ConfigError(f"config key 'adversarial.pairs': [{source}, {target}] attacks a class towards itself")
    return names


def classifier_params(cfg: dict) -> dict:
    """Everything the classifier trained here depends on (the params of its rule and its cache key's values)."""
    ids, names = scene_classes(cfg)
    return {
        "source": training_source(cfg),
        "resize": cfg["dataset"]["resize"],
        "scene_ids": ids,
        "scene_names": names,
        "seed": cfg["seed"],
        **_trained_network(cfg["classifier"]),
    }


def segmenter_params(cfg: dict, image_size: tuple[int, int]) -> dict:
    """Everything the segmenter trained on the synthetic world depends on (its rule's params and cache key)."""
    pixel, image = synthetic_vocabulary()
    section = _trained_network(cfg["segmenter"])
    return {
        "source": training_source(cfg),
        "resize": cfg["dataset"]["resize"],
        "image_size": list(image_size),
        "pixel_vocabulary": pixel,
        "image_vocabulary": image,
        "seed": cfg["seed"],
        **{k: section[k] for k in ("epochs", "batch_size", "lr", "autocast")},
    }


def cache_key(params: dict) -> str:
    """The cache key of what a rule makes from these params alone (the world's, a trained network's)."""
    return digest(params)


def file_or_config_digest(path: str | None, fallback) -> str:
    """Content digest of a file given by the user, or of the config values that produce it here."""
    if path and Path(path).is_file():
        from .provenance import file_digest

        return file_digest(path)
    return digest(fallback)


def model_spec(cfg: dict) -> ModelSpec:
    """The dissected network, with a digest of everything that defines its function.

    The digest covers the model section (less the layer list), the weights (the file's content, or the
    classifier's training config when trained here), the factory's source file and a lower-precision forward.
    """
    section = {k: v for k, v in cfg["model"].items() if k not in ("layers", "classes")}
    section["seed"] = cfg["seed"]
    trained_here = section["weights"] == TRAIN
    if trained_here:
        section["num_classes"] = len(scene_classes(cfg)[0])
    weights = cache_key(classifier_params(cfg)) if trained_here else file_or_config_digest(section["weights"], None)
    factory = section["factory"].rsplit(":", 1)[0] if section["factory"] else None
    code = file_or_config_digest(factory, factory)
    precision = cfg["activations"]["autocast"]  # a lower-precision forward makes different activations
    return ModelSpec.from_config(section, digest=digest([section, weights, code] + ([precision] if precision else [])))


def synthetic_vocabulary() -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Per pixel category and per image-level category, the synthetic world's concept ids (the trained
    segmenter's heads)."""
    from .synthetic.vocabulary import IMAGE_CATEGORIES, PIXEL_CATEGORIES, concept_table

    table = concept_table()
    pixel = {cat: [i for i, _, c in table if c == cat] for cat in PIXEL_CATEGORIES}
    image = {cat: [i for i, _, c in table if c == cat] for cat in IMAGE_CATEGORIES}
    return pixel, image


def segmenter_digest(cfg: dict) -> str:
    """Identifies the segmenter: its config with the world it trains on, or its weights file."""
    segmenter = cfg["segmenter"]
    if segmenter["kind"] == "trained":
        return digest([segmenter, {"seed": cfg["seed"], **cfg["synthetic"]}])
    return digest([segmenter, file_or_config_digest(segmenter["weights"], None)])


def provenance_config(cfg: dict) -> dict:
    """The config values a layer's tables depend on (not the layer list, so adding a layer reruns nothing else)."""
    keep = ("seed", "dataset", "synthetic", "segmenter", "quantile", "union", "activations", "batch_size")
    return {k: cfg[k] for k in keep} | {
        "model": {k: v for k, v in cfg["model"].items() if k not in ("layers", "classes")}
    }


def store_model_digest(path: str) -> str | None:
    """The model digest recorded in an activation store (read from zarr's metadata file), or None."""
    try:
        meta = json.loads((Path(path) / "zarr.json").read_text())
        return meta["attributes"]["provenance"]["inputs"]["model"]
    except (OSError, KeyError, ValueError):
        return None


def extracted_layers(layout: RunLayout, layers: list[str], chunks: list[str], model_digest: str) -> list[str]:
    """Layers whose every chunk already has an activation store from the current model.

    Layers still to extract share one forward pass per chunk; these keep a rule of their own, so adding a
    layer to the config costs one pass for that layer only.
    """

    def extracted(layer: str) -> bool:
        paths = [layout.activations(layer, c) for c in chunks]
        return all(Path(p).is_dir() for p in paths) and store_model_digest(paths[0]) == model_digest

    return [layer for layer in layers if extracted(layer)]
