"""Every matplotlib figure of a run: tables in, Figure out (the stages save them as PNG and SVG).

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot state, no display backend).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Patch

SHOWN_CLASSES = 8  # classes drawn one by one beside the mean over every swept class
STYLES = {"top": "C3", "random": "C7", "least": "C2", "all_but_top": "C0", "concept": "C1"}


def _curve(rows: pd.DataFrame, kind: str) -> pd.Series:
    """Balanced accuracy against k of one kind (the mean over classes and random seeds)."""
    return rows[rows["kind"] == kind].groupby("k")["balanced_acc"].mean()


def sweeps_figure(sweeps: pd.DataFrame, layer: str) -> Figure:
    """Balanced accuracy against k: top, random, least, all but top (and concept); the mean over the swept
    classes, then the first few classes one by one."""
    classes = list(pd.unique(sweeps["class"]))
    shown = classes[:SHOWN_CLASSES]
    fig = Figure(figsize=(3.2 * (1 + len(shown)), 3.4))
    axes = fig.subplots(1, 1 + len(shown), sharey=True, squeeze=False)[0]
    for ax, (title, rows) in zip(
        axes, [("mean over classes", sweeps)] + [(c, sweeps[sweeps["class"] == c]) for c in shown]
    ):
        for kind, colour in STYLES.items():
            curve = _curve(rows, kind)
            if len(curve):
                ax.plot(curve.index, curve.values, "o-", color=colour, label=kind.replace("_", " "), markersize=3)
        ax.axhline(rows.loc[rows["kind"] == "none", "balanced_acc"].mean(), color="k", lw=0.8, label="unchanged")
        ax.axhline(0.5, color="k", lw=0.8, ls=":", label="chance")
        ax.set_xscale("log")
        ax.set_xlabel("units removed (k)")
        ax.set_title(title, fontsize=9)
    axes[0].set_ylabel("balanced accuracy")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{layer}: removing the units most important to a class, against random and least important units")
    fig.tight_layout()
    return fig


def importance_figure(importance: pd.DataFrame, layer: str, top: int) -> Figure:
    """Best IoU of every unit against the number of classes for which it is among the ``top`` most damaging."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(importance))
    for detector, colour, name in ((False, "C7", "not a detector"), (True, "C3", "detector")):
        rows = importance["detector"] == detector
        ax.scatter(
            importance.loc[rows, "top_classes"] + jitter[rows], importance.loc[rows, "iou"], s=10, c=colour, label=name
        )
    means = importance.groupby("top_classes")["iou"].mean()
    ax.plot(means.index, means.values, "k-", lw=1.5, label="mean IoU")
    ax.set_xlabel(f"classes for which the unit is among the top {top}")
    ax.set_ylabel("best IoU")
    ax.legend(fontsize=8)
    ax.set_title(f"{layer}: importance against interpretability", fontsize=10)
    fig.tight_layout()
    return fig


TOP_CONCEPTS = 30  # concepts shown per layer in the detector chart
GROUPS = {"source": "C3", "target": "C2", "other": "C7"}  # unit groups of the adversarial analysis


def category_colours(categories) -> dict[str, tuple]:
    """One colour per category, in sorted order (the same category gets the same colour in every figure)."""
    return {c: colormaps["tab10"](i % 10) for i, c in enumerate(sorted(categories))}


def detector_counts(units: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame]:
    """Detectors per category (most first), and per concept with its category (grouped by category in that
    order, most frequent first within a category)."""
    detectors = units[units["detector"]]
    per_category = detectors.groupby("category").size().sort_values(ascending=False, kind="stable")
    per_concept = detectors.groupby(["label", "category"]).size().rename("units").reset_index()
    rank = {c: i for i, c in enumerate(per_category.index)}
    per_concept["order"] = per_concept["category"].map(rank)
    per_concept = per_concept.sort_values(["order", "units", "label"], ascending=[True, False, True])
    return per_category, per_concept.drop(columns="order").reset_index(drop=True)


def detectors_figure(units: pd.DataFrame, layer: str, iou_threshold: float) -> Figure:
    """Bar charts of a layer's detectors per category and per concept, concepts grouped by category."""
    per_category, per_concept = detector_counts(units)
    colours = category_colours(set(units["category"]) - {""})
    top = per_concept.head(TOP_CONCEPTS)
    fig = Figure(figsize=(13, 4.8))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 3]})
    left.bar(per_category.index, per_category.values, color=[colours[c] for c in per_category.index])
    left.set_ylabel("detector units")
    left.set_title("per category")
    left.tick_params(axis="x", rotation=45)
    right.bar(range(len(top)), top["units"], color=[colours[c] for c in top["category"]])
    right.set_xticks(range(len(top)), top["label"], rotation=70, fontsize=8)
    right.set_title(f"per concept, grouped by category (first {len(top)} of {len(per_concept)})")
    right.legend([Patch(color=colours[c]) for c in colours], list(colours), fontsize=8, loc="upper right")
    fig.suptitle(f"{layer}: {int(units['detector'].sum())} of {len(units)} units are detectors (IoU > {iou_threshold})")
    fig.tight_layout()
    return fig


def iou_histogram(units: pd.DataFrame, layer: str, iou_threshold: float) -> Figure:
    """Histogram of every unit's best IoU, with the detector threshold marked."""
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    top = max(float(units["iou"].max()), iou_threshold) * 1.05 or 1.0
    ax.hist(units["iou"], bins=np.linspace(0, top, 41), color="C0")
    ax.axvline(iou_threshold, color="C3", ls="--", label=f"detector threshold {iou_threshold}")
    ax.set_xlabel("best IoU of the unit")
    ax.set_ylabel("units")
    ax.set_title(f"{layer}: IoU of {len(units)} units", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def layers_figure(summary: pd.DataFrame, layers: list[str]) -> Figure:
    """Detectors per category for every layer, stacked, layers in network order."""
    counts = summary.pivot_table(index="layer", columns="category", values="detectors", aggfunc="sum", fill_value=0)
    counts = counts.reindex(layers, fill_value=0)
    colours = category_colours(counts.columns)
    fig = Figure(figsize=(max(4.5, 1.2 * len(layers) + 3), 3.8))
    ax = fig.subplots()
    bottom = np.zeros(len(layers))
    for category in colours:
        ax.bar(layers, counts[category], bottom=bottom, color=colours[category], label=category)
        bottom += counts[category].to_numpy()
    ax.set_ylabel("detector units")
    ax.set_title("detectors per category, layer by layer", fontsize=10)
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


def adversarial_figure(summary: pd.DataFrame) -> Figure:
    """Mean change of activation under attack of the source class's important units, the target class's and the
    others, per (source, target) pair and layer; the attack's success rate in each label."""
    attacked = summary[summary["images"] > 0]
    layers = list(pd.unique(attacked["layer"]))
    fig = Figure(figsize=(max(6, 0.9 * len(attacked) / max(len(layers), 1) + 3), 3.4 * max(len(layers), 1)))
    axes = fig.subplots(max(len(layers), 1), 1, squeeze=False)[:, 0]
    for ax, layer in zip(axes, layers):
        rows = attacked[attacked["layer"] == layer]
        x = np.arange(len(rows))
        for i, (group, colour) in enumerate(GROUPS.items()):
            ax.bar(x + (i - 1) * 0.27, rows[f"{group}_change"], 0.27, color=colour, label=f"{group} units")
        labels = [f"{s}→{t}\n{r:.0%}" for s, t, r in zip(rows["source"], rows["target"], rows["success_rate"])]
        ax.set_xticks(x, labels, fontsize=7)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_ylabel("mean change of activation")
        ax.set_title(f"{layer}: attacked minus clean (success rate under each pair)", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def statistics_figure(best_iou: np.ndarray, table: pd.DataFrame, iou_threshold: float, fdr_q: float, layer: str):
    """Every unit's best IoU with its bootstrap interval, units sorted by IoU; detectors by the IoU rule and by
    the FDR rule marked."""
    order = np.argsort(-best_iou, kind="stable")
    x = np.arange(len(order))
    rows = table.iloc[order]
    fig = Figure(figsize=(max(6, min(16, len(order) / 30)), 3.8))
    ax = fig.subplots()
    ax.fill_between(x, rows["iou_low"], rows["iou_high"], color="C0", alpha=0.3, step="mid", label="interval")
    ax.plot(x, best_iou[order], color="C0", lw=1, label="best IoU")
    fdr = rows["fdr_detector"].to_numpy(bool)
    ax.scatter(x[fdr], best_iou[order][fdr], s=8, color="C2", zorder=3, label=f"FDR detector (q ≤ {fdr_q})")
    ax.axhline(iou_threshold, color="C3", ls="--", lw=1, label=f"IoU > {iou_threshold}")
    ax.set_xlabel("units, by best IoU")
    ax.set_ylabel("IoU")
    classic = int((best_iou > iou_threshold).sum())
    ax.set_title(f"{layer}: {classic} detectors by IoU, {int(fdr.sum())} by FDR, of {len(order)} units", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def image_grid(images: np.ndarray, columns: int, titles: list[str] | None = None) -> Figure:
    """uint8 images (N, H, W, 3) in rows of ``columns``, each with an optional title above it."""
    rows = max(1, -(-len(images) // columns))
    fig = Figure(figsize=(1.2 * columns, 1.2 * rows + (0.25 * rows if titles else 0)))
    axes = fig.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], interpolation="nearest")
            if titles:
                ax.set_title(titles[i], fontsize=7, loc="left")
    fig.tight_layout(pad=0.3)
    return fig


def insertion_figure(summary: pd.DataFrame) -> Figure:
    """Success rate of inserting each concept, by the context the location had before: one panel per layer and
    concept, the number of locations of each context under its bar."""
    panels = list(summary.groupby(["layer", "concept"], sort=False))
    fig = Figure(figsize=(7, 2.6 * max(len(panels), 1)))
    axes = fig.subplots(max(len(panels), 1), 1, squeeze=False)[:, 0]
    for ax, ((layer, concept), rows) in zip(axes, panels):
        rows = rows.sort_values("success_rate", ascending=False)
        x = np.arange(len(rows))
        ax.bar(x, rows["success_rate"], color="C2")
        ax.set_xticks(x, [f"{c}\n{n}" for c, n in zip(rows["context"], rows["locations"])], fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_ylabel("success rate")
        ax.set_title(f"{layer}: inserting {concept} (top {rows['k'].iloc[0]} units), by context", fontsize=9)
    fig.tight_layout()
    return fig
