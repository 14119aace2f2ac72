"""The ``netdissect`` command: reads finished runs (never imports Snakemake).

netdissect summary results/<run> [--top N]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .errors import NetdissectError
from .layout import RunLayout
from .tables import read_units


def layer_summary(layer: str, units: pd.DataFrame, top: int) -> str:
    """A layer's detectors per category and its best units, as text for a terminal."""
    detectors = units[units["detector"]]
    concepts = detectors["label"].nunique()
    lines = [f"{layer}: {len(detectors)} of {len(units)} units are detectors, covering {concepts} concepts"]
    if len(detectors):
        per_category = (
            detectors.groupby("category")
            .agg(detectors=("unit", "size"), concepts=("label", "nunique"))
            .sort_values(["detectors", "concepts"], ascending=False)
        )
        lines += ["", per_category.to_string()]
    best = units.sort_values(["iou", "unit"], ascending=[False, True]).head(top)
    best = best[["unit", "label", "category", "iou", "detector"]].assign(iou=best["iou"].map("{:.4f}".format))
    lines += ["", f"top {len(best)} units by IoU:", best.to_string(index=False)]
    return "\n".join(lines)


def summary(run: str, top: int, layers: Sequence[str] | None = None) -> str:
    """The summary of the given layers (default: every dissected layer) of a finished run."""
    layout = RunLayout(run)
    layers = layers or layout.dissected_layers()
    if not layers:
        raise NetdissectError(f"{run}: no dissected layers (no dissect/<layer>/units.csv); is the run finished?")
    return "\n\n".join(layer_summary(layer, read_units(layout.units(layer)), top) for layer in layers)


def finished_run(run: str, layers: Sequence[str], reports: Sequence[str], top: int = 5) -> str:
    """What a finished run prints last: each layer's detectors, and where its tables, figures and reports are.

    Args:
        run: the run folder, ``results/<run>``.
        layers: the layers it dissected.
        reports: other files to point at (training and segmenter quality reports).
        top: units to list per layer.
    """
    layout = RunLayout(run)
    where = [
        f"tables:  {layout.summary()}, {layout.units('<layer>')} ({', '.join(layers)})",
        f"figures: {layout.detectors_figure('<layer>')}",
        *(f"report:  {path}" for path in reports),
        f"again:   netdissect summary {run}",
    ]
    return "\n\n".join([summary(run, top, layers), "\n".join(where)])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="netdissect", description="Read the results of netdissect runs.")
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("summary", help="detectors per category and the top units of every layer of a run")
    show.add_argument("run", type=Path, help="the run folder, results/<run>")
    show.add_argument("--top", type=int, default=10, help="units to list per layer (default 10)")
    args = parser.parse_args(argv)
    try:
        print(summary(str(args.run), args.top))
    except NetdissectError as error:
        print(f"netdissect: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
