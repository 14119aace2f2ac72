"""What a GAN dissection will do, computed at DAG-parse time (no torch): the generator, its layers and chunks.

Generated images are a dataset of their own: rows 0 .. ``gan.images - 1``, row i made from latent i, chunked like
the dataset's images under names ``gan-<start>-<stop>`` so that every spine rule serves them unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ConfigError
from ..layout import generator_layer
from ..plan import (
    ONE_SLOT,
    Chunk,
    Chunking,
    cache_key,
    chunk_name,
    chunk_ranges,
    file_or_config_digest,
    training_source,
)
from ..provenance import digest

CHUNK_PREFIX = "gan-"
CHUNK_PATTERN = CHUNK_PREFIX + r"\d{7}-\d{7}"


@dataclass(frozen=True)
class GanPlan:
    """A run's generator and what is dissected of it.

    Attributes:
        modules: the generator's modules to dissect, as in ``named_modules()``.
        layers: their layer names in the run (``gan.<module>``).
        chunks: the generated images, as chunks of latent rows.
        training: the embedded generator's training params (its rule's params and cache key), or None for a
            user's factory.
        digest: identifies the generator's function (training params, or factory, arguments and weights).
        image_size: (H, W) the generated images must have: the dissected dataset's image size.
    """

    modules: tuple[str, ...]
    layers: tuple[str, ...]
    chunks: tuple[Chunk, ...]
    training: dict | None
    digest: str
    image_size: tuple[int, int]

    @property
    def images(self) -> int:
        return self.chunks[-1].stop

    @property
    def chunk_size(self) -> int:
        return self.chunks[0].stop - self.chunks[0].start

    @property
    def trained_here(self) -> bool:
        return self.training is not None

    def chunk(self, name: str) -> Chunk:
        for c in self.chunks:
            if c.name == name:
                return c
        raise KeyError(f"no generated chunk {name!r} in this run")


def generator_training(cfg: dict) -> dict:
    """Everything the embedded generator depends on: its rule's params and its cache key's values."""
    section = cfg["gan"]
    shape = list(section["latent_shape"])
    if len(shape) != 1:
        raise ConfigError(f"config key 'gan.latent_shape': the embedded generator takes flat latents, not {shape}")
    return {
        "source": training_source(cfg),
        "resize": cfg["dataset"]["resize"],
        "latent_dim": shape[0],
        "seed": cfg["seed"],
        **{k: section[k] for k in ("epochs", "batch_size", "lr", "width")},
    }


def gan_plan(cfg: dict, image_size: tuple[int, int], chunking: Chunking = ONE_SLOT) -> GanPlan:
    """The GAN dissection of a validated config.

    Args:
        cfg: the validated config (``gan.activate`` true).
        image_size: the dissected dataset's image size, which the segmenter is set up for.
        chunking: resolves ``chunk_size: auto`` (key ``gan``).

    Raises:
        ConfigError: the embedded generator is asked for outside the synthetic world, a layer name is empty, or
            the segmenter is the dataset's own labels (generated images have none).
    """
    section = cfg["gan"]
    if cfg["segmenter"]["kind"] == "dataset":
        raise ConfigError(
            "config key 'gan.activate': generated images have no labels of their own; set segmenter.kind to "
            "trained, torchvision or factory, or gan.activate: false"
        )
    trained = section["factory"] is None
    if trained and cfg["dataset"]["kind"] != "synthetic":
        raise ConfigError(
            "config key 'gan.factory': null trains the embedded generator on the synthetic world; with "
            f"dataset.kind {cfg['dataset']['kind']!r} give your generator's factory"
        )
    if trained and image_size[0] != image_size[1]:
        raise ConfigError(f"config key 'gan.factory': the embedded generator makes square images, not {image_size}")
    modules = tuple(section["layers"])
    if not all(modules):
        raise ConfigError("config key 'gan.layers': a layer name is empty")
    training = generator_training(cfg) if trained else None
    if trained:
        function = cache_key(training)
    else:
        code = section["factory"].rsplit(":", 1)[0]
        weights = file_or_config_digest(section["weights"], None)
        function = digest([section["factory"], section["factory_args"], file_or_config_digest(code, code), weights])
    latents = digest([function, section["seed"], list(section["latent_shape"]), section["output_range"]])
    chunks = tuple(
        Chunk(CHUNK_PREFIX + chunk_name(a, b), a, b, digest([latents, a, b]))
        for a, b in chunk_ranges(section["images"], chunking.size(cfg["chunk_size"], section["images"], "gan"))
    )
    return GanPlan(modules, tuple(generator_layer(m) for m in modules), chunks, training, function, image_size)


def generator_section(cfg: dict) -> dict:
    """The ``gan`` values that define the generated images (what generation jobs depend on, and no more)."""
    keys = ("factory", "factory_args", "weights", "allow_pickle", "latent_shape", "output_range", "seed")
    return {k: cfg["gan"][k] for k in keys}


def segmenter_concepts(cfg: dict) -> list[str] | None:
    """The pixel concepts the configured segmenter can emit, known before any job (None when they are not)."""
    import pandas as pd

    segmenter = cfg["segmenter"]
    if segmenter["kind"] == "trained":
        from ..synthetic.vocabulary import PIXEL_CATEGORIES, concept_table

        return [name for _, name, category in concept_table() if category in PIXEL_CATEGORIES]
    if segmenter["kind"] == "factory" and segmenter["concepts"]:
        return list(pd.read_csv(segmenter["concepts"], keep_default_na=False)["name"])
    if segmenter["kind"] == "torchvision":
        from ..segmenters import VOC_CLASSES

        return list(VOC_CLASSES[1:])
    return None
