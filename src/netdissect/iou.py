"""IoU of units and concepts from merged counts, and the labels they give each unit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .tally import Counts, Vocabulary

UNIONS = ("all", "category")


def iou_matrix(counts: Counts, vocab: Vocabulary, union: str = "all") -> np.ndarray:
    """IoU(u, c) = I / (A + L - I).

    Args:
        counts: merged counts.
        vocab: the concept vocabulary.
        union: "all" counts a unit's activation over all images (PNAS); "category" only over images that carry
            some concept of c's category (NetDissect).

    Returns:
        (U, C+1) float64, column 0 (no concept) zero; 0 where the union is empty.
    """
    if union not in UNIONS:
        raise ValueError(f"union must be one of {UNIONS}, not {union!r}")
    inter = counts.intersection.astype(np.float64)
    if union == "all":
        act = counts.activation[:, None].astype(np.float64)
    else:
        act = counts.activation_in_category[:, np.maximum(vocab.category, 0)].astype(np.float64)
    denom = act + counts.label[None, :] - inter
    out = inter / np.maximum(denom, 1)  # an empty union (0) has I = 0: IoU 0
    out[:, 0] = 0.0
    return out


def label_units(iou: np.ndarray, concepts: pd.DataFrame, thresholds: np.ndarray, iou_threshold: float) -> pd.DataFrame:
    """One row per unit: its best concept overall and in every category.

    Args:
        iou: (U, C+1) IoU matrix.
        concepts: table with columns id, name, category (ids 1..C).
        thresholds: (U,) activation thresholds.
        iou_threshold: a unit is a detector when its best IoU exceeds this.

    Returns:
        Columns unit, label, category, iou, threshold, detector, then <category>_label and <category>_iou for
        each category. Ties go to the lowest concept id. A unit whose IoU is 0 everywhere gets an empty label.
    """
    names = np.full(iou.shape[1], "", dtype=object)
    cats = np.full(iou.shape[1], "", dtype=object)
    names[concepts["id"].to_numpy()] = concepts["name"].to_numpy()
    cats[concepts["id"].to_numpy()] = concepts["category"].to_numpy()
    units = np.arange(iou.shape[0])
    best = np.argmax(iou, axis=1)
    best_iou = iou[units, best]
    table = {
        "unit": units,
        "label": np.where(best_iou > 0, names[best], ""),
        "category": np.where(best_iou > 0, cats[best], ""),
        "iou": best_iou,
        "threshold": thresholds.astype(np.float64),
        "detector": best_iou > iou_threshold,
    }
    for category in pd.unique(concepts["category"]):
        ids = np.sort(concepts.loc[concepts["category"] == category, "id"].to_numpy())  # ties: the lowest id
        pick = ids[np.argmax(iou[:, ids], axis=1)]
        score = iou[units, pick]
        table[f"{category}_label"] = np.where(score > 0, names[pick], "")
        table[f"{category}_iou"] = score
    return pd.DataFrame(table)
