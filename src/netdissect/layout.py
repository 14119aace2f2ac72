"""The paths of a run's files under ``results/<run>/``: one owner for rules, stages, the report and the CLI.

Every method takes the names it needs (layer, chunk, round) and returns a path string; passing Snakemake
wildcards such as ``"{layer}"`` gives the rule's pattern, passing real names gives the file.

Generator layers share the layer namespace of the classifier's: a generator's module ``layer4`` is dissected as
the layer ``gan.layer4`` (:func:`generator_layer`), so every threshold and tally rule serves it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

GENERATOR_PREFIX = "gan."


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
    def world(self) -> str:
        return self._path("world")

    def index(self) -> str:
        return self._path("data", "index.csv")

    def classifier(self) -> str:
        return self._path("model", "classifier.pt")

    def classifier_metrics(self) -> str:
        return self._path("model", "training.json")

    def segmenter(self) -> str:
        return self._path("segmenter", "segnet.pt")

    def segmenter_metrics(self) -> str:
        return self._path("segmenter", "training.json")

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

    # logs and benchmarks of the jobs
    def log(self, *parts: str) -> str:
        return self._path("logs", *parts[:-1], f"{parts[-1]}.log")

    def benchmark(self, *parts: str) -> str:
        return self._path("benchmarks", *parts[:-1], f"{parts[-1]}.tsv")
