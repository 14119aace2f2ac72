"""The adversarial analysis, pure: which class to attack towards, which units matter for a class, and how the
units' firing changes under attack (the attack itself is :mod:`netdissect.attack`).

The paper's claim: a targeted attack diminishes the firing of the units important for the source class and
increases the firing of the units important for the target class. A unit's firing is its activation map's mean.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GROUPS = ("source", "target", "both", "other")  # "both": among the most important units of either class
UNIT_COLUMNS = ("source", "target", "unit", "clean_mean", "attacked_mean", "change", "group")
SUMMARY_COLUMNS = (
    "layer",
    "source",
    "target",
    "images",
    "success_rate",
    "source_change",
    "target_change",
    "other_change",
    "source_units",
    "target_units",
    "ranking",
    "status",
)


def most_confused(labels: np.ndarray, predictions: np.ndarray, probabilities: np.ndarray) -> dict[int, int]:
    """Each class's most confused class: the one most of its images are predicted as (other than itself); ties,
    and a class never mistaken, go to the larger mean probability, then to the lower class index.

    Args:
        labels: (n,) true classes.
        predictions: (n,) predicted classes.
        probabilities: (n, C) predicted probabilities.

    Returns:
        source class -> target class, for every class with images.
    """
    classes = probabilities.shape[1]
    out = {}
    for source in np.unique(labels):
        mine = labels == source
        counts = np.bincount(predictions[mine], minlength=classes).astype(float)
        mean = probabilities[mine].mean(0)
        counts[source] = mean[source] = -np.inf
        out[int(source)] = int(np.lexsort((np.arange(classes), -mean, -counts))[0])
    return out


def correlation_order(firing: np.ndarray, labels: np.ndarray, cls: int) -> np.ndarray:
    """Units by their correlation with class ``cls``, highest first (ties and constant units: lower index first,
    constant units last).

    Args:
        firing: (n, U) each unit's mean activation on each image.
        labels: (n,) the images' classes.
        cls: the class.

    Returns:
        (U,) unit indices.
    """
    y = (labels == cls).astype(np.float64)
    x = firing.astype(np.float64) - firing.mean(0)
    y -= y.mean()
    scale = np.sqrt((x**2).sum(0) * (y**2).sum())
    with np.errstate(invalid="ignore"):  # constant units: 0 / 0, replaced
        r = np.where(scale > 0, (x * y[:, None]).sum(0) / scale, -np.inf)
    return np.lexsort((np.arange(len(r)), -r))


def ablation_order(single_unit: pd.DataFrame, name: str, units: int) -> np.ndarray:
    """Units by how much removing them hurts class ``name`` (the ablation stage's ``single_unit.csv``): the drop
    of its logit margin first, then of its balanced accuracy, then the lower unit.

    Raises:
        ValueError: the table does not rank every unit for that class.
    """
    rows = single_unit[single_unit["class"] == name]
    if sorted(rows["unit"]) != list(range(units)):
        raise ValueError(f"the ablation table ranks {len(rows)} units for class {name!r}, not all {units}")
    return rows.sort_values(["margin_drop", "drop", "unit"], ascending=[False, False, True])["unit"].to_numpy()


def unit_groups(source_order: np.ndarray, target_order: np.ndarray, top: int) -> np.ndarray:
    """(U,) group of every unit: ``source`` or ``target`` when among the ``top`` most important units of that class
    only, ``both`` when among both, else ``other``."""
    source = np.isin(np.arange(len(source_order)), source_order[:top])
    target = np.isin(np.arange(len(target_order)), target_order[:top])
    return np.select([source & target, source, target], ["both", "source", "target"], "other")


def unit_table(source: str, target: str, clean: np.ndarray, attacked: np.ndarray, groups: np.ndarray) -> pd.DataFrame:
    """One row per unit: its mean activation on the clean and the attacked images, the change and its group."""
    values = (source, target, np.arange(len(clean)), clean, attacked, attacked - clean, groups)
    return pd.DataFrame(dict(zip(UNIT_COLUMNS, values)))


def group_changes(units: pd.DataFrame) -> dict[str, float]:
    """The mean change of the source, target and other units of one pair (NaN for an empty group)."""
    means = units.groupby("group")["change"].mean()
    return {f"{g}_change": float(means.get(g, np.nan)) for g in ("source", "target", "other")}


def describe(summary: pd.DataFrame) -> list[str]:
    """What the summary shows, in sentences (the numbers included; honest when the claim does not hold)."""
    attacked = summary[summary["images"] > 0]
    lines = []
    if attacked.empty:
        return ["No pair was attacked: no source class had a correctly classified image."]
    pairs = attacked.drop_duplicates(["source", "target"])
    images = int(pairs["images"].sum())
    success = float((pairs["images"] * pairs["success_rate"]).sum() / images)
    lines.append(
        f"The attack reached its target class on {success:.0%} of {images} correctly classified images "
        f"({len(pairs)} source-target pairs)."
    )
    for layer, rows in attacked.groupby("layer", sort=False):
        down = int((rows["source_change"] < 0).sum())
        up = int((rows["target_change"] > 0).sum())
        lines.append(
            f"{layer} (units ranked by {', '.join(sorted(set(rows['ranking'])))}): the source class's units fired "
            f"less in {down} of {len(rows)} pairs (mean change {rows['source_change'].mean():+.4g}), the target "
            f"class's units more in {up} of {len(rows)} (mean change {rows['target_change'].mean():+.4g}); the other "
            f"units changed by {rows['other_change'].mean():+.4g} on average."
        )
    skipped = summary[summary["images"] == 0].drop_duplicates(["source", "target"])
    for row in skipped.itertuples():
        lines.append(f"{row.source} → {row.target}: {row.status}.")
    return lines
