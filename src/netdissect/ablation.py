"""Class-accuracy ablation maths: confusion counts, balanced accuracy, logit margins, rankings and sweep specs.

Pure functions: logits and targets in, additive counts out; counts in, metrics out. Nothing here runs a network
(:mod:`netdissect.tail` does) or touches a file (:mod:`netdissect.stages.ablation` does).

For K classes and one-vs-rest predictions by argmax, class c's balanced accuracy on a set of images is
(TPR + TNR) / 2 with TPR = TP / (TP + FN) and TNR = TN / (TN + FP). Class c's logit margin on an image is its logit
minus the largest other logit; a unit's importance for c is the drop of c's balanced accuracy when it is removed,
ties broken by the drop of c's mean margin *on the images of class c* (averaged over every image, the gains on
other classes' images would cancel the losses on c's own).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

KINDS = ("none", "top", "all_but_top", "least", "random", "concept")
CLASS_KINDS = ("top", "all_but_top", "least")  # kinds whose unit set depends on the class they are reported for
TOP_IMPORTANT = 4  # the paper's "top-4 most damaging units" of a class (interpretability against importance)
TABLE_KS = (4, 20)  # the paper's table: top-4 and top-20 removed, all but the top-20 removed


@dataclass
class Counts:
    """Statistics of A ablations over a set of images, additive over disjoint image sets; O(A * K) memory.

    Attributes:
        true_positive: (A, K) int64, images of each class predicted as that class.
        predicted: (A, K) int64, images predicted as each class.
        images: (K,) int64, images of each class (the same for every ablation).
        margin_sum: (A, K) float64, per class the sum of its images' logit margins.
    """

    true_positive: np.ndarray
    predicted: np.ndarray
    images: np.ndarray
    margin_sum: np.ndarray

    @classmethod
    def zeros(cls, ablations: int, classes: int) -> Counts:
        def table(dtype):
            return np.zeros((ablations, classes), dtype)

        return cls(table(np.int64), table(np.int64), np.zeros(classes, np.int64), table(np.float64))

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.true_positive + other.true_positive,
            self.predicted + other.predicted,
            self.images + other.images,
            self.margin_sum + other.margin_sum,
        )

    @classmethod
    def concat(cls, parts: Sequence[Counts]) -> Counts:
        """The counts of several lists of ablations over the same images, one list after the other."""
        return cls(
            np.concatenate([c.true_positive for c in parts]),
            np.concatenate([c.predicted for c in parts]),
            parts[0].images,
            np.concatenate([c.margin_sum for c in parts]),
        )

    def take(self, index: Sequence[int]) -> Counts:
        """The counts of some ablations."""
        index = np.asarray(index, np.int64)
        return Counts(self.true_positive[index], self.predicted[index], self.images, self.margin_sum[index])


def one_vs_rest(counts: Counts) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(TP, FN, FP, TN), each (A, K), of every class against the rest."""
    tp = counts.true_positive
    fn, fp = counts.images - tp, counts.predicted - tp
    return tp, fn, fp, counts.images.sum() - tp - fn - fp


def balanced_accuracy(counts: Counts) -> np.ndarray:
    """(A, K) (TPR + TNR) / 2 per class; NaN for a class without positive or without negative images."""
    tp, fn, fp, tn = one_vs_rest(counts)
    with np.errstate(invalid="ignore"):  # 0 / 0: NaN
        return ((tp / (tp + fn)) + (tn / (tn + fp))) / 2


def class_accuracy(counts: Counts) -> np.ndarray:
    """(A, K) TPR: the fraction of each class's images predicted as that class (NaN without images)."""
    with np.errstate(invalid="ignore"):  # 0 / 0: NaN
        return counts.true_positive / counts.images


def accuracy(counts: Counts) -> np.ndarray:
    """(A,) all-class top-1 accuracy."""
    return counts.true_positive.sum(1) / counts.images.sum()


def mean_margin(counts: Counts) -> np.ndarray:
    """(A, K) mean logit margin of each class on its own images (NaN without images)."""
    with np.errstate(invalid="ignore"):  # 0 / 0: NaN
        return counts.margin_sum / counts.images


def single_unit_table(base: Counts, ablated: Counts, units: Sequence[int], classes: Sequence[str], split: str):
    """Rows ``unit, class, split, balanced_acc, drop, margin_drop`` of a single-unit sweep.

    Args:
        base: counts of the unchanged model (one ablation).
        ablated: counts with each of ``units`` removed alone, in that order.
        units: the removed units.
        classes: the K class names; classes without images of the split are left out.
        split: the split the counts are from.
    """
    keep = np.flatnonzero(base.images > 0)
    bacc, base_bacc = balanced_accuracy(ablated), balanced_accuracy(base)[0]
    margin, base_margin = mean_margin(ablated), mean_margin(base)[0]
    return pd.DataFrame(
        {
            "unit": np.repeat(np.asarray(units, np.int64), len(keep)),
            "class": np.tile(np.asarray(classes, object)[keep], len(units)),
            "split": split,
            "balanced_acc": bacc[:, keep].ravel(),
            "drop": (base_bacc[keep] - bacc[:, keep]).ravel(),
            "margin_drop": (base_margin[keep] - margin[:, keep]).ravel(),
        }
    )


def importance_ranking(drop: np.ndarray, margin_drop: np.ndarray) -> np.ndarray:
    """Units from most to least important: by drop of balanced accuracy, then drop of margin, then unit index.

    Args:
        drop: (U,) loss of the class's balanced accuracy when each unit is removed alone.
        margin_drop: (U,) loss of the class's mean margin on its own images.

    Returns:
        (U,) unit indices.
    """
    return np.lexsort((np.arange(len(drop)), -np.asarray(margin_drop), -np.asarray(drop)))


def rankings(single_unit: pd.DataFrame) -> dict[str, np.ndarray]:
    """Class -> units from most to least important, from a single-unit sweep table (every unit once per class)."""
    out = {}
    for name, rows in single_unit.groupby("class", sort=False):
        rows = rows.sort_values("unit")
        order = importance_ranking(rows["drop"].to_numpy(), rows["margin_drop"].to_numpy())
        out[name] = rows["unit"].to_numpy()[order]
    return out


def iou_ranking(iou: np.ndarray) -> np.ndarray:
    """(U,) units by decreasing IoU with one concept (ties: lower unit first)."""
    return np.lexsort((np.arange(len(iou)), -np.asarray(iou)))


@dataclass(frozen=True)
class SweepSpec:
    """One set ablation.

    Attributes:
        kind: none | top | all_but_top | least | random | concept.
        k: the k of the kind (0 for none); the set removes k units (all but k for all_but_top).
        units: the removed units, sorted.
        target: the class whose ranking chose the units (CLASS_KINDS), else None: reported for every class.
        seed: the random set's seed index (random only), else None.
    """

    kind: str
    k: int
    units: tuple[int, ...]
    target: str | None = None
    seed: int | None = None


def sweep_specs(
    class_rankings: Mapping[str, np.ndarray],
    units: int,
    ks: Sequence[int],
    seeds: int,
    seed: int,
    concept_ranking: np.ndarray | None = None,
) -> list[SweepSpec]:
    """Every set ablation of a layer, in a fixed order (so any chunking of the list gives the same results).

    Args:
        class_rankings: class -> units from most to least important, for the classes to sweep.
        units: the layer's unit count U; only k < U are swept.
        ks: the set sizes.
        seeds: random sets per k.
        seed: the run's seed; random set (k, s) is drawn by ``numpy.random.default_rng([seed, k, s])``.
        concept_ranking: units by IoU with the chosen concept, or None.

    Returns:
        none; per class top, all_but_top, least for each k; random for each k and seed; concept for each k.
    """
    ks = [k for k in dict.fromkeys(ks) if 0 < k < units]
    specs = [SweepSpec("none", 0, ())]
    for name, order in class_rankings.items():
        for k in ks:
            specs.append(SweepSpec("top", k, _sorted(order[:k]), name))
            specs.append(SweepSpec("all_but_top", k, _sorted(order[k:]), name))
            specs.append(SweepSpec("least", k, _sorted(order[units - k :]), name))
    for k in ks:
        for s in range(seeds):
            chosen = np.random.default_rng([seed, k, s]).choice(units, k, replace=False)
            specs.append(SweepSpec("random", k, _sorted(chosen), seed=s))
    if concept_ranking is not None:
        specs += [SweepSpec("concept", k, _sorted(concept_ranking[:k])) for k in ks]
    return specs


def _sorted(units) -> tuple[int, ...]:
    return tuple(sorted(int(u) for u in units))


SWEEP_COLUMNS = ("class", "kind", "k", "seed", "split", "balanced_acc", "class_acc", "accuracy")


def sweep_table(specs: Sequence[SweepSpec], counts: Counts, classes: Sequence[str], swept: Sequence[str], split: str):
    """Rows of ``sweeps.csv`` for some specs: class-specific specs for their class, the others for every swept class.

    Args:
        specs: the evaluated specs.
        counts: their counts, in the same order.
        classes: the K class names (the model's outputs).
        swept: the classes to report.
        split: the evaluation split.
    """
    bacc, tpr, acc = balanced_accuracy(counts), class_accuracy(counts), accuracy(counts)
    position = {name: i for i, name in enumerate(classes)}
    rows = []
    for i, spec in enumerate(specs):
        for name in [spec.target] if spec.target is not None else swept:
            c = position[name]
            rows.append((name, spec.kind, spec.k, spec.seed, split, bacc[i, c], tpr[i, c], acc[i]))
    table = pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))
    table["seed"] = table["seed"].astype("Int64")
    return table


def paper_table(sweeps: pd.DataFrame, ks: Sequence[int] = TABLE_KS) -> pd.DataFrame:
    """Per class, the PNAS table in kind: unchanged, top-k removed for each k, all but the largest top-k removed,
    the mean over seeds of k random units removed for the largest k, chance (0.5), and the drop of top-k against
    random-k for the largest k.

    Args:
        sweeps: a ``sweeps.csv`` table; only the ks it holds are shown.
        ks: the table's set sizes.
    """
    held = set(sweeps.loc[sweeps["kind"] == "top", "k"])
    ks = [k for k in ks if k in held]
    out = []
    for name, rows in sweeps.groupby("class", sort=False):

        def value(kind: str, k: int, rows=rows) -> float:
            return float(rows.loc[(rows["kind"] == kind) & (rows["k"] == k), "balanced_acc"].mean())

        row = {"class": name, "unchanged": value("none", 0)}
        row.update({f"top_{k}": value("top", k) for k in ks})
        if ks:
            k = ks[-1]
            row[f"all_but_top_{k}"] = value("all_but_top", k)
            row[f"random_{k}"] = value("random", k)
            top_drop, random_drop = row["unchanged"] - row[f"top_{k}"], row["unchanged"] - row[f"random_{k}"]
            row[f"top_{k}_drop_vs_random"] = top_drop / random_drop if random_drop > 0 else float("inf")
        row["chance"] = 0.5
        out.append(row)
    return pd.DataFrame(out)


def top_counts(class_rankings: Mapping[str, np.ndarray], units: int, top: int = TOP_IMPORTANT) -> np.ndarray:
    """(U,) for every unit, the number of classes for which it is among the ``top`` most important."""
    counts = np.zeros(units, np.int64)
    for order in class_rankings.values():
        counts[order[:top]] += 1
    return counts


def describe(table: pd.DataFrame) -> list[str]:
    """What a layer's ``table.csv`` (:func:`paper_table`) shows, in sentences, honest when the claim fails: how
    many classes lose at least 3 times more balanced accuracy to their top-k units than to k random units, and
    how many stay above chance with all but their top-k removed."""
    ks = [int(c.removeprefix("all_but_top_")) for c in table.columns if c.startswith("all_but_top_")]
    if not ks or table.empty:
        return ["No set sweep removed enough units for the table (every k in ablation.ks reaches the unit count)."]
    k = max(ks)
    top, random, kept = table[f"top_{k}"], table[f"random_{k}"], table[f"all_but_top_{k}"]
    top_drop, random_drop = table["unchanged"] - top, table["unchanged"] - random
    stronger = table.loc[(top_drop > 0) & (top_drop >= 3 * random_drop), "class"]
    above = table.loc[kept >= table["chance"] + 0.1, "class"]
    return [
        (
            f"Removing the {k} units most important to a class lowered its balanced accuracy at least 3 times more "
            f"than {k} random units for {len(stronger)} of {len(table)} classes ({', '.join(stronger) or 'none'}); "
            f"mean over classes {table['unchanged'].mean():.3f} unchanged, {top.mean():.3f} without the top {k}, "
            f"{random.mean():.3f} without {k} random units."
        ),
        (
            f"Keeping only the top {k} units (all others removed) left {len(above)} of {len(table)} classes at least "
            f"0.1 above chance ({', '.join(above) or 'none'}; mean {kept.mean():.3f})."
        ),
    ]
