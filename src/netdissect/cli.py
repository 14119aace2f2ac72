"""The ``netdissect`` command: reads finished runs (never imports Snakemake).

netdissect summary results/<run> [--top N]
netdissect paint --run results/<run> --concept tree (--box X0 Y0 X1 Y1 | --mask mask.png) [--seed 7] [--remove] -o out.png
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
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


def run_folder(run: Path) -> str:
    """A run given as its folder, or by name under ./results."""
    return str(run if run.is_dir() or run.parent != Path(".") else Path("results") / run)


def paint(args: argparse.Namespace) -> str:
    """Paint (or erase) a concept in a generated image; write before and after side by side."""
    from PIL import Image

    from .gan.paint import Painter, box_region

    painter = Painter.of_run(run_folder(args.run))
    size = painter.image_size()
    if args.box is not None:
        region = box_region(tuple(args.box), size)
    else:
        if not args.mask.is_file():
            raise NetdissectError(f"--mask {args.mask}: no such file")
        region = np.asarray(Image.open(args.mask).convert("L")) > 0
    before, after, cells = painter.paint(args.concept, region, args.seed, args.remove, args.layer, args.k)
    gap = np.full((before.shape[0], 4, 3), 255, np.uint8)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([before, gap, after], 1)).save(args.output)
    what = "erased" if args.remove else "painted"
    return f"{what} {args.concept} in {int(cells.sum())} cells of the seed-{args.seed} image: {args.output}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="netdissect", description="Read the results of netdissect runs.")
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("summary", help="detectors per category and the top units of every layer of a run")
    show.add_argument("run", type=Path, help="the run folder, results/<run>")
    show.add_argument("--top", type=int, default=10, help="units to list per layer (default 10)")
    art = commands.add_parser("paint", help="paint a concept into a generated image with the GAN's units")
    art.add_argument("--run", type=Path, required=True, help="the run folder, results/<run> (or the run's name)")
    art.add_argument("--concept", required=True, help="the concept to paint, by name")
    where = art.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--box", type=int, nargs=4, metavar=("X0", "Y0", "X1", "Y1"), help="image pixels, x1 y1 excluded"
    )
    where.add_argument("--mask", type=Path, help="an image of the generated size; nonzero pixels are painted")
    art.add_argument("--seed", type=int, default=0, help="the latent's seed (default 0)")
    art.add_argument("--remove", action="store_true", help="erase the concept there (its units set to zero)")
    art.add_argument("--layer", help="the generator layer to edit, gan.<module> (default: the first dissected)")
    art.add_argument("--k", type=int, help="units to edit (default: the run's gan.insertion_k)")
    art.add_argument("-o", "--output", type=Path, required=True, help="PNG with the image before and after")
    args = parser.parse_args(argv)
    try:
        print(paint(args) if args.command == "paint" else summary(str(args.run), args.top))
    except NetdissectError as error:
        print(f"netdissect: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
