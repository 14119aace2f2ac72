"""What an ablation sweep will process, decided when the workflow is planned (torch-free and cheap).

Checks the ablation section against the model and the labels before any job: the layers must be dissected ones,
the class list must name at least 2 outputs, the labels must use its names, and each role's split (ranking,
evaluation) must hold labelled images of at least 2 classes. Labels of the synthetic world exist only once the world
is written; its checks run in the ``ablation_labels`` job, which precedes every sweep job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .classlabels import class_report, label_table, read_class_list
from .config import ConfigError

CHUNK_PATTERN = r"\d{3}-of-\d{3}"
ROLES = ("ranking", "eval")


@dataclass(frozen=True)
class AblationPlan:
    """The layers, classes and jobs of the ablation sweeps.

    Attributes:
        layers: the ablated layers (dissected ones).
        classes: the model's output names, output 0 first.
        swept: the classes to run set sweeps for (None: every class with images in both splits).
        splits: (role, split) for the ranking and evaluation roles (split None: every labelled image).
        unit_chunks: names of the single-unit sweep's jobs per layer.
        sweep_chunks: names of the set sweep's jobs per layer.
        report: lines for the log (images left out, classes skipped).
    """

    layers: tuple[str, ...]
    classes: tuple[str, ...]
    swept: tuple[str, ...] | None
    splits: tuple[tuple[str, str | None], ...]
    unit_chunks: tuple[str, ...]
    sweep_chunks: tuple[str, ...]
    report: tuple[str, ...] = ()


def chunk_names(parts: int) -> list[str]:
    """Names of the parts of a list cut into ``parts`` near-equal slices: ``000-of-004`` ..."""
    return [f"{i:03d}-of-{parts:03d}" for i in range(parts)]


def chunk_range(name: str, total: int) -> tuple[int, int]:
    """[start, stop) of part ``i`` of ``n`` (``name`` as made by chunk_names) of a list of ``total`` items."""
    match = re.fullmatch(r"(\d+)-of-(\d+)", name)
    if not match or int(match[1]) >= int(match[2]):
        raise ValueError(f"not a chunk name: {name!r}")
    i, n = int(match[1]), int(match[2])
    return i * total // n, (i + 1) * total // n


def model_classes(cfg: dict) -> list[str]:
    """The names of the model's outputs: ``model.classes``, or the scene classes of a classifier trained here."""
    if cfg["model"]["classes"]:
        return read_class_list(cfg["model"]["classes"])
    if cfg["model"]["weights"] == "train":
        from .plan import scene_classes

        return scene_classes(cfg)[1]
    raise ConfigError(
        "config key 'model.classes' must name the model's class list (a text file, one output name per line) "
        "for ablation sweeps; or set ablation.activate: false"
    )


def role_splits(cfg: dict) -> tuple[tuple[str, str | None], ...]:
    """(role, split) for the ranking and evaluation roles of the ablation section (split None: every image)."""
    return tuple((role, cfg["ablation"][f"{role}_split"]) for role in ROLES)


def ablation_plan(cfg: dict) -> AblationPlan:
    """Plan and check a validated configuration's ablation section.

    Raises:
        ConfigError naming the key (or DatasetError naming the file) at fault.
    """
    section, dissected = cfg["ablation"], cfg["model"]["layers"]
    layers = section["layers"] or [dissected[-1]]
    for layer in layers:
        if layer not in dissected:
            raise ConfigError(
                f"config key 'ablation.layers': {layer!r} is not a dissected layer (model.layers: {', '.join(dissected)})"
            )
    classes = model_classes(cfg)
    if len(classes) < 2:
        raise ConfigError(f"config key 'model.classes': the class list names {len(classes)} class; ablation needs >= 2")
    swept = section["classes"]
    for name in swept or []:
        if name not in classes:
            raise ConfigError(f"config key 'ablation.classes': {name!r} is not in the model's class list")
    splits = role_splits(cfg)
    report: list[str] = []
    if cfg["dataset"]["kind"] != "synthetic":  # the synthetic world's labels are checked once it is written
        report = check_labels(cfg, classes, dict(splits))
    return AblationPlan(
        tuple(layers),
        tuple(classes),
        tuple(swept) if swept else None,
        splits,
        tuple(chunk_names(section["unit_chunks"])),
        tuple(chunk_names(section["sweep_chunks"])),
        tuple(report),
    )


def check_labels(cfg: dict, classes: list[str], splits: dict[str, str | None]) -> list[str]:
    """Read the labels and check them against the class list and the splits; returns the lines to report."""
    from .plan import open_source, source_spec

    table, report = label_table(open_source(source_spec(cfg)), classes, cfg["ablation"]["labels"])
    classes_table = class_report(table, classes, splits)
    skipped = classes_table[classes_table["status"] != "ok"]
    return report + [f"class {c!r} {s}" for c, s in zip(skipped["class"], skipped["status"])]
