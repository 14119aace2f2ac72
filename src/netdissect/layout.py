"""The paths of a run's files under ``results/<run>/``: one owner for rules, stages, the report and the CLI.

Every method takes the names it needs (layer, chunk, round) and returns a path string; passing Snakemake
wildcards such as ``"{layer}"`` gives the rule's pattern, passing real names gives the file.

What runs share lives beside them, under ``results/cache/<kind>-<key>/`` (:class:`CacheLayout`): the synthetic
world and the networks trained here, keyed by a digest of the values they depend on (``netdissect.plan``), so a
run that changes only what it dissects finds them, and runs with different values never share a file.

Generator layers share the layer namespace of the classifier's: a generator's module ``layer4`` is dissected as
the layer ``gan.layer4`` (:func:`generator_layer`), so every threshold and tally rule serves it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

GENERATOR_PREFIX = "gan."
CACHE = "cache"  # results/cache holds what runs share; no run may take this name


def generator_layer(module: str) -> str:
    """The layer name under which a generator's module is dissected."""
    return GENERATOR_PREFIX + module


def is_generator_layer(layer: str) -> bool:
    """Whether a layer name denotes a generator's module."""
    return layer.startswith(GENERATOR_PREFIX)


@dataclass(frozen=True)
class RunLayout:
    """Paths of one run's outputs.

    Attributes:
        root: the run folder, ``results/<run>``.
    """

    root: str

    @classmethod
    def of_run(cls, run: str, results: str | Path = "results") -> RunLayout:
        return cls(str(Path(results) / run))

    def _path(self, *parts: str) -> str:
        return "/".join((self.root, *parts))

    # inputs of the dissection
    def index(self) -> str:
        return self._path("data", "index.csv")

    def segmenter_quality(self) -> str:
        return self._path("segmenter", "quality.json")

    def concepts(self) -> str:
        return self._path("concepts.csv")

    # chunk stores and internal states
    def segmentation(self, chunk: str) -> str:
        return self._path("segment", f"{chunk}.zarr")

    def activations(self, layer: str, chunk: str) -> str:
        return self._path("activations", layer, f"{chunk}.zarr")

    def threshold_state(self, layer: str, round_name: str, chunk: str) -> str:
        return self._path("thresholds", layer, round_name, f"{chunk}.npz")

    def threshold_bracket(self, layer: str, round_name: str) -> str:
        return self._path("thresholds", layer, f"{round_name}.npz")

    def tally_chunk(self, layer: str, chunk: str) -> str:
        return self._path("tally", layer, f"{chunk}.zarr")

    # per-layer results
    def layer_dir(self, layer: str) -> str:
        return self._path("dissect", layer)

    def tally(self, layer: str) -> str:
        return self._path("dissect", layer, "tally.zarr")

    def thresholds(self, layer: str) -> str:
        return self._path("dissect", layer, "thresholds.csv")

    def units(self, layer: str) -> str:
        return self._path("dissect", layer, "units.csv")

    def layer_provenance(self, layer: str) -> str:
        return self._path("dissect", layer, "provenance.json")

    def detectors_figure(self, layer: str) -> str:
        return self._path("dissect", layer, "detectors.png")

    # ablation sweeps
    def ablation_labels(self) -> str:
        return self._path("ablation", "labels.csv")

    def ablation_classes(self) -> str:
        return self._path("ablation", "classes.csv")

    def ablation_features(self, layer: str, role: str) -> str:
        return self._path("ablation", layer, "features", f"{role}.zarr")

    def single_unit_chunk(self, layer: str, part: str) -> str:
        return self._path("ablation", layer, "single_unit", f"{part}.csv")

    def single_unit(self, layer: str) -> str:
        return self._path("ablation", layer, "single_unit.csv")

    def ranking(self, layer: str) -> str:
        return self._path("ablation", layer, "ranking.csv")

    def sweep_chunk(self, layer: str, part: str) -> str:
        return self._path("ablation", layer, "sweeps", f"{part}.csv")

    def sweeps(self, layer: str) -> str:
        return self._path("ablation", layer, "sweeps.csv")

    def ablation_table(self, layer: str) -> str:
        return self._path("ablation", layer, "table.csv")

    def importance(self, layer: str) -> str:
        return self._path("ablation", layer, "importance.csv")

    def sweeps_figure(self, layer: str) -> str:
        return self._path("ablation", layer, "sweeps.png")

    def importance_figure(self, layer: str) -> str:
        return self._path("ablation", layer, "importance.png")

    def ablation_provenance(self, layer: str) -> str:
        return self._path("ablation", layer, "provenance.json")

    # run-level results
    def summary(self) -> str:
        return self._path("summary.csv")

    def provenance(self) -> str:
        return self._path("provenance.json")

    def dissected_layers(self) -> list[str]:
        """Layers of a finished run: those with a units table, in name order."""
        found = Path(self.root, "dissect").glob("*/units.csv")
        return sorted(p.parent.name for p in found)

    # the report: each unit's top images (per-chunk states, merged by the layer's page), pages and figures
    def top_images_state(self, layer: str, chunk: str) -> str:
        return self._path("topk", layer, f"{chunk}.npz")

    def report_index(self) -> str:
        return self._path("report", "index.html")

    def report_layer(self, layer: str) -> str:
        """The folder of a layer's page: index.html, figures, top.csv and units/<unit>.png strips."""
        return self._path("report", layer)

    def report_figure(self, name: str, kind: str = "png") -> str:
        return self._path("report", f"{name}.{kind}")

    # the adversarial analysis
    def adversarial_units(self, layer: str) -> str:
        return self._path("adversarial", layer, "units.csv")

    def adversarial_summary(self) -> str:
        return self._path("adversarial", "summary.csv")

    def adversarial_figure(self) -> str:
        return self._path("adversarial", "adversarial.png")

    # label statistics: per-chunk bootstrap and null sums, the layer's table, discoveries and figure
    def statistics_chunk(self, layer: str, chunk: str) -> str:
        return self._path("statistics", layer, "chunks", f"{chunk}.npz")

    def statistics(self, layer: str) -> str:
        return self._path("statistics", layer, "units.csv")

    def discoveries(self, layer: str) -> str:
        return self._path("statistics", layer, "discoveries.csv")

    def statistics_figure(self, layer: str) -> str:
        return self._path("statistics", layer, "intervals.png")

    # GAN dissection: generated images per chunk, the interventions' tables and figures
    def generated_images(self, chunk: str) -> str:
        return self._path("gan", "images", f"{chunk}.zarr")

    def gan_removal(self) -> str:
        return self._path("gan", "removal.csv")

    def gan_insertion(self) -> str:
        return self._path("gan", "insertion.csv")

    def gan_painting(self) -> str:
        """What ``netdissect paint`` reads: the generator, its layers' unit levels and rankings."""
        return self._path("gan", "painting.json")

    def gan_figure(self, name: str) -> str:
        return self._path("gan", f"{name}.png")

    def chunking(self) -> str:
        """The chunk sizes that ``chunk_size: auto`` chose for this run (kept for its reruns)."""
        return self._path("chunking.json")

    # logs and benchmarks of the jobs
    def log(self, *parts: str) -> str:
        return self._path("logs", *parts[:-1], f"{parts[-1]}.log")

    def benchmark(self, *parts: str) -> str:
        return self._path("benchmarks", *parts[:-1], f"{parts[-1]}.tsv")


@dataclass(frozen=True)
class CacheLayout:
    """Paths of what runs share: one folder ``<kind>-<key>`` per synthetic world or trained network.

    Attributes:
        root: the cache folder, ``results/cache``.
    """

    root: str

    @classmethod
    def of_results(cls, results: str | Path = "results") -> CacheLayout:
        return cls(str(Path(results) / CACHE))

    def entry(self, kind: str, key: str, name: str) -> str:
        """A file of the entry ``<kind>-<key>``: its outputs, log and benchmark sit together."""
        return "/".join((self.root, f"{kind}-{key}", name))

    def world(self, key: str) -> str:
        return self.entry("world", key, "world")

    def classifier(self, key: str) -> str:
        return self.entry("classifier", key, "classifier.pt")

    def classifier_metrics(self, key: str) -> str:
        return self.entry("classifier", key, "training.json")

    def segmenter(self, key: str) -> str:
        return self.entry("segmenter", key, "segnet.pt")

    def segmenter_metrics(self, key: str) -> str:
        return self.entry("segmenter", key, "training.json")

    def generator(self, key: str) -> str:
        return self.entry("generator", key, "generator.pt")

    def generator_metrics(self, key: str) -> str:
        return self.entry("generator", key, "training.json")

    def generator_samples(self, key: str) -> str:
        return self.entry("generator", key, "samples.png")
