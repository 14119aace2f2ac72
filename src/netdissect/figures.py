"""Matplotlib figures of the ablation sweeps: tables in, Figure out (the stage saves them)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

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
