"""Report stage: a per-layer figure of detectors by category and concept, and a summary table of all layers."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from ..plan import describe_selection, split_counts
from ..stores import atomic_path, write_csv, write_json
from ..tables import read_units

log = logging.getLogger("netdissect.report")
TOP_CONCEPTS = 30


def detector_counts(units: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame]:
    """Detectors per category, and per concept (with its category), most frequent first."""
    detectors = units[units["detector"]]
    per_category = detectors.groupby("category").size().sort_values(ascending=False)
    per_concept = (
        detectors.groupby(["label", "category"])
        .size()
        .rename("units")
        .reset_index()
        .sort_values(["units", "label"], ascending=[False, True])
    )
    return per_category, per_concept


def layer_figure(job) -> None:
    """Bar charts of the layer's detectors per category and per concept."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    units = read_units(job.input.units)
    per_category, per_concept = detector_counts(units)
    categories = sorted(set(units["category"]) - {""})
    colours = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(categories)}
    top = per_concept.head(TOP_CONCEPTS)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1, 3]})
    left.bar(per_category.index, per_category.values, color=[colours[c] for c in per_category.index])
    left.set_ylabel("detector units")
    left.set_title("per category")
    left.tick_params(axis="x", rotation=45)
    right.bar(range(len(top)), top["units"], color=[colours[c] for c in top["category"]])
    right.set_xticks(range(len(top)), top["label"], rotation=70, fontsize=8)
    right.set_title(f"per concept (top {len(top)})")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[c]) for c in categories]
    right.legend(handles, categories, fontsize=8, loc="upper right")
    fig.suptitle(
        f"{job.wildcards.layer}: {int(units['detector'].sum())} of {len(units)} units are detectors "
        f"(IoU > {job.params.iou_threshold})"
    )
    fig.tight_layout()
    with atomic_path(job.output.figure) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def summary(job) -> None:
    """One row per layer and category: detector units, distinct concepts detected, and the layer's unit count."""
    rows = []
    for layer, path in zip(job.params.layers, job.input.units):
        units = read_units(path)
        per_category, per_concept = detector_counts(units)
        for category, count in per_category.items():
            concepts = int((per_concept["category"] == category).sum())
            rows.append(
                {
                    "layer": layer,
                    "category": category,
                    "detectors": int(count),
                    "concepts": concepts,
                    "units": len(units),
                }
            )
    table = pd.DataFrame(rows, columns=["layer", "category", "detectors", "concepts", "units"])
    write_csv(job.output.summary, table)
    layers = {layer: json.loads(Path(path).read_text()) for layer, path in zip(job.params.layers, job.input.provenance)}
    index = pd.read_csv(job.input.index, keep_default_na=False)
    dataset = {"images": len(index), "splits": split_counts(index["split"])}
    write_json(job.output.provenance, {"dataset": dataset, "layers": layers})
    log.info("dissected %s", describe_selection(dataset))
    log.info("\n%s", table.to_string(index=False))
