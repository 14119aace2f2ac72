"""Report stage: the figures and summary of the dissection, each unit's top images, and the HTML report.

The top images need no second pass over the model: every chunk job keeps the top-k images per unit of its
activation store (:mod:`.topimages`), a layer's job merges them and cuts the maps of those few images only.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import ablation, adversarial, figures, topk
from ..datasets import load_image
from ..plan import describe_selection, open_source, split_counts
from ..report import gallery, html
from ..stores import atomic_path, load_state, open_group, read_rows, require_same, write_csv, write_json
from ..tables import read_run_index, read_units
from . import StageError

log = logging.getLogger("netdissect.report")
JPEG_QUALITY = 90  # of the strips of top images


def save_figure(fig, png: str | Path, svg: str | Path | None = None) -> None:
    """Save a figure as PNG (and SVG), atomically."""
    for path, kind in ((png, "png"), (svg, "svg")):
        if path is not None:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, dpi=110, format=kind)


def layer_figure(job) -> None:
    """Bar charts of the layer's detectors per category and per concept."""
    units = read_units(job.input.units)
    save_figure(figures.detectors_figure(units, job.wildcards.layer, job.params.iou_threshold), job.output.figure)


def summary(job) -> None:
    """One row per layer and category: detector units, distinct concepts detected, and the layer's unit count."""
    rows = []
    for layer, path in zip(job.params.layers, job.input.units):
        units = read_units(path)
        per_category, per_concept = figures.detector_counts(units)
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
    index = read_run_index(job.input.index)
    dataset = {"images": len(index), "splits": split_counts(index["split"])}
    write_json(job.output.provenance, {"dataset": dataset, "layers": layers})
    log.info("dissected %s", describe_selection(dataset))
    log.info("\n%s", table.to_string(index=False))


def merged_top(paths: list[str], k: int) -> topk.TopK:
    """The layer's top-k from its chunks' states (which must come from one model and layer)."""
    states, origins = [], {}
    for path in paths:
        arrays, meta = load_state(path)
        states.append(topk.TopK(arrays["peaks"], arrays["rows"]))
        origins[path] = meta["provenance"]["inputs"]
    require_same(origins, "model")
    require_same(origins, "layer")
    return topk.merge(states, k)


def top_maps(paths: list[str], top: topk.TopK) -> np.ndarray:
    """(U, m, h, w) float32 maps of every unit on its top images, read from the activation stores for those images
    only."""
    maps, found = None, np.zeros(top.rows.shape, bool)
    for path in paths:
        group = open_group(path)
        rows = group["rows"][:]
        hit = np.isin(top.rows, rows)
        if not hit.any():
            continue
        wanted = np.unique(top.rows[hit])
        positions = np.flatnonzero(np.isin(rows, wanted))  # rows are ascending in a store, like ``wanted``
        block = read_rows(group["activations"], positions)
        if maps is None:
            maps = np.zeros((*top.rows.shape, *block.shape[2:]), np.float32)
        units = np.nonzero(hit)[0]
        maps[hit] = block[np.searchsorted(wanted, top.rows[hit]), units]
        found |= hit
    if maps is None or not found.all():
        raise StageError(f"the activation stores {paths} lack some of the top images' rows")
    return maps


def layer_report(job) -> None:
    """A layer's page: its figures, unit table and every unit's top images with the active region outlined."""

    p, layer = job.params, job.wildcards.layer
    units = read_units(job.input.units)
    top = merged_top(list(job.input.top), p.k)
    thresholds = open_group(job.input.tally)["thresholds"][:]
    if len(units) != top.units or len(thresholds) != top.units:
        raise StageError(f"{job.input.units} has {len(units)} units but the top-k states of {layer} {top.units}")
    size = tuple(p.label_size)
    masks = gallery.active_masks(top_maps(list(job.input.acts), top), thresholds, size)
    factor = gallery.scale_factor(size)
    records = {r.index: r for r in open_source(p.source).records(p.source["split"], None)}
    bases = {
        row: gallery.thumbnail(load_image(records[row].image, p.resize), (factor * size[0], factor * size[1]))
        for row in np.unique(top.rows)
    }
    _, per_concept = figures.detector_counts(units)
    with atomic_path(job.output.folder) as out:
        cards = []
        for unit in units.sort_values(["iou", "unit"], ascending=[False, True], kind="stable").to_dict("records"):
            u = unit["unit"]
            image = gallery.strip([gallery.outlined(bases[row], mask) for row, mask in zip(top.rows[u], masks[u])])
            name = f"units/{u:04d}.jpg"
            save_jpeg(image, out / name)
            rows = ", ".join(str(r) for r in top.rows[u])
            cards.append({**unit, "strip": name, "rows": rows, "height": image.shape[0], "width": image.shape[1]})
        write_csv(out / "top.csv", top_table(top, records))
        save_figure(
            figures.detectors_figure(units, layer, p.iou_threshold), out / "detectors.png", out / "detectors.svg"
        )
        save_figure(figures.iou_histogram(units, layer, p.iou_threshold), out / "iou.png", out / "iou.svg")
        shown = [
            html.FigureLink("detectors.png", "detectors.svg", "detectors per category and concept"),
            html.FigureLink("iou.png", "iou.svg", "best IoU of every unit"),
        ]
        statistics = "iou_low" in units.columns  # the label statistics ran (README: Label statistics)
        if statistics:
            figure = figures.statistics_figure(units["iou"].to_numpy(), units, p.iou_threshold, p.fdr_q, layer)
            save_figure(figure, out / "statistics.png", out / "statistics.svg")
            shown.append(html.FigureLink("statistics.png", "statistics.svg", "IoU intervals, detectors by both rules"))
        page = html.render(
            "layer.html",
            run=p.run,
            layer=layer,
            layers=p.layers,
            units=units.to_dict("records"),
            cards=cards,
            detectors=int(units["detector"].sum()),
            concepts=len(per_concept),
            iou_threshold=p.iou_threshold,
            per_concept=per_concept.to_dict("records"),
            figures=shown,
            statistics=statistics,
            units_csv=f"../../dissect/{layer}/units.csv",
            k=p.k,
            label_size=size,
        )
        (out / "index.html").write_text(page, encoding="utf-8")
    log.info("%s: %d unit cards of %d images each", layer, len(cards), top.rows.shape[1])


def save_jpeg(image: np.ndarray, path: Path) -> None:
    """A strip of thumbnails as JPEG (full chroma resolution keeps the one-pixel outline sharp; a tenth of a PNG's
    encoding time and a third of its size)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="jpeg", quality=JPEG_QUALITY, subsampling=0)


def top_table(top: topk.TopK, records: dict) -> pd.DataFrame:
    """unit, rank, row, image, peak: every unit's top images, best first."""
    units, ranks = np.indices(top.rows.shape)
    return pd.DataFrame(
        {
            "unit": units.ravel(),
            "rank": ranks.ravel(),
            "row": top.rows.ravel(),
            "image": [str(records[r].image) for r in top.rows.ravel()],
            "peak": top.peaks.ravel(),
        }
    )


def _relative(path: str, page: str) -> str:
    """A link from a page to a file of the run."""
    return Path(os.path.relpath(path, Path(page).parent)).as_posix()


def _read_json(job, name: str) -> dict | None:
    path = getattr(job.input, name, None)
    return json.loads(Path(path).read_text()) if path else None


def _about(p, dataset: dict, job) -> list[tuple[str, str]]:
    """The overview's table: model, dataset, segmenter and how well the trained ones did."""
    model = p.model
    weights = model["weights"] or ("random initialisation" if model["random_init"] else "as the factory returns it")
    about = [
        ("model", model["name"] or model["factory"]),
        ("weights", "trained here on the train split" if weights == "train" else weights),
        ("dataset", f"{' '.join(filter(None, (p.dataset['kind'], p.dataset['root'])))}: {describe_selection(dataset)}"),
        ("segmenter", " ".join(str(v) for v in (p.segmenter["kind"], p.segmenter["name"]) if v)),
    ]
    training = _read_json(job, "classifier_metrics")
    if training:
        about.append(
            (
                "classifier",
                f"validation accuracy {training['val_accuracy']:.3f}, classes {', '.join(training['classes'])}",
            )
        )
    quality = _read_json(job, "segmenter_quality")
    if quality:
        about.append(
            ("segmenter quality", ", ".join(f"{k} {v:.3f}" for k, v in quality.items() if isinstance(v, float)))
        )
    about.append(("quantile, IoU threshold", f"{p.quantile}, {p.iou_threshold}"))
    return about


def _ablation_section(job, page: str) -> html.Section:
    """The ablation's tables and figures, layer by layer, with links to its CSV files."""
    inputs, removal = job.input, "zero" if job.params.ablation_value == "zero" else "their mean activation"
    text = [
        (
            "Units are removed (set to "
            f"{removal} at every position) through the layer hooks; they are ranked per class by the single-unit sweep "
            "on the ranking split, and the set sweeps are measured on the evaluation split. Balanced accuracy is "
            "one-vs-rest (TPR + TNR) / 2; chance is 0.5."
        )
    ]
    figures_, tables, links = [], [], []
    for i, layer in enumerate(job.params.ablation_layers):
        table = pd.read_csv(inputs.ablation_table[i])
        text += [f"{layer}: {line}" for line in ablation.describe(table)]
        tables.append(html.table_of(table, {c: "{:.3f}" for c in table.columns if c != "class"}))
        figures_ += [
            html.FigureLink(
                _relative(inputs.ablation_sweeps_figure[i], page), None, f"{layer}: balanced accuracy against k"
            ),
            html.FigureLink(
                _relative(inputs.ablation_importance_figure[i], page), None, f"{layer}: importance against IoU"
            ),
        ]
        for name in ("table", "sweeps", "single_unit", "ranking", "importance"):
            path = inputs[f"ablation_{name}"][i]
            links.append({"name": f"{layer}/{Path(path).name}", "href": _relative(path, page)})
    return html.Section(id="ablation", title="Ablation", text=text, figures=figures_, tables=tables, links=links)


def _adversarial_section(job, page: str) -> html.Section:
    p = job.params.adversarial
    table = pd.read_csv(job.input.adversarial_summary)  # a skipped pair's success rate and changes are NaN
    shown = table.drop(columns=["source_units", "target_units", "status"])
    text = [
        (
            f"Targeted PGD (L-inf epsilon {p['epsilon']:.4g}, step {p['step_size']:.4g}, {p['steps']} steps; FGSM "
            f"is one step of size epsilon) on up to {p['images']} correctly classified {p['split']} images of each "
            "source class, in the model's input space before normalisation, clipped to [0, 1]. A unit's firing is "
            f"its mean activation; the groups are the {p['units']} most important units of the source class and of "
            "the target class (ranked by the ablation stage's single-unit table where it ran on the layer, "
            "otherwise by correlation with the class)."
        ),
        *adversarial.describe(table),
    ]
    return html.Section(
        id="adversarial",
        title="Adversarial attack",
        text=text,
        figures=[
            html.FigureLink(_relative(job.input.adversarial_figure, page), None, "mean change of firing per group")
        ],
        tables=[
            html.table_of(
                shown,
                {c: "{:+.4g}" for c in ("source_change", "target_change", "other_change")} | {"success_rate": "{:.2f}"},
            )
        ],
        links=[{"name": "summary.csv", "href": _relative(job.input.adversarial_summary, page)}]
        + [
            {"name": f"{layer}/units.csv", "href": _relative(path, page)}
            for layer, path in zip(job.params.layers, job.input.adversarial_units)
        ],
    )


def _gan_section(job, page: str) -> html.Section:
    """The GAN dissection: each generator layer's detectors, the removal and insertion tables and figures."""
    inputs, p = job.input, job.params.gan
    source = "the embedded DCGAN trained here" if p["factory"] is None else p["factory"]
    text = [
        (
            f"The generator ({source}) made {p['images']} images from seeded latents; the segmenter labelled them and "
            "the spine dissected its layers on them. Removal sets a concept's top-k units (by IoU) to zero in every "
            f"cell of the first {p['intervention_images']} latents' images; insertion sets its top {p['insertion_k']} "
            "units to their dissection threshold t_u in one cell at a time, and counts the concept's pixels added within "
            "one cell of it, grouped by what the segmenter saw in that cell before (its context). Other pixels "
            "changed: the share of the pixels not of the concept whose label (in the concept's category) changed."
        )
    ]
    layers = []
    for layer, path in zip(job.params.gan_layers, inputs.gan_units):
        units = read_units(path)
        layers.append(
            {
                "layer": layer,
                "units": len(units),
                "detectors": int(units["detector"].sum()),
                "concepts": int(units.loc[units["detector"], "label"].nunique()),
            }
        )
    removal = pd.read_csv(inputs.gan_removal, keep_default_na=False)
    insertion = pd.read_csv(inputs.gan_insertion, keep_default_na=False)
    numbers = {
        c: "{:.3f}" for c in ("fraction_before", "fraction_after", "other_changed", "added_pixels_mean", "success_rate")
    }
    figures_ = (
        [html.FigureLink(_relative(inputs.gan_samples, page), None, "generated samples")]
        if hasattr(inputs, "gan_samples")
        else []
    )
    figures_ += [
        html.FigureLink(_relative(inputs[f"gan_{name}_figure"], page), None, caption)
        for name, caption in (
            ("removal", "before and after removal"),
            ("insertion", "insertion by context"),
            ("paintings", "paintings"),
        )
    ]
    links = [
        {"name": Path(path).name, "href": _relative(path, page)} for path in (inputs.gan_removal, inputs.gan_insertion)
    ]
    links += [
        {"name": f"{layer}/units.csv", "href": _relative(path, page)}
        for layer, path in zip(job.params.gan_layers, inputs.gan_units)
    ]
    tables = [
        html.table_of(pd.DataFrame(layers), {}),
        html.table_of(removal, numbers),
        html.table_of(insertion, numbers),
    ]
    return html.Section(id="gan", title="GAN dissection", text=text, figures=figures_, tables=tables, links=links)


def report_index(job) -> None:
    """The report's overview page: the run, every layer's detectors, a layer-by-layer chart, further stages'
    sections, the provenance."""
    p, page = job.params, job.output.index
    summary_table = pd.read_csv(job.input.summary, keep_default_na=False)
    run_provenance = json.loads(Path(job.input.provenance).read_text())
    layers = []
    for layer, path in zip(p.layers, job.input.units):
        units = read_units(path)
        _, per_concept = figures.detector_counts(units)
        layers.append(
            {
                "name": layer,
                "units": len(units),
                "detectors": int(units["detector"].sum()),
                "concepts": len(per_concept),
                "fdr_detectors": int(units["fdr_detector"].sum()) if "fdr_detector" in units else None,
            }
        )
    save_figure(figures.layers_figure(summary_table, list(p.layers)), job.output.layers_png, job.output.layers_svg)
    sections = [_ablation_section(job, page)] if job.params.ablation_layers else []
    sections += [_adversarial_section(job, page)] if hasattr(job.input, "adversarial_summary") else []
    sections += [_gan_section(job, page)] if job.params.gan_layers else []
    layer_provenance = run_provenance["layers"]
    first = layer_provenance[p.layers[0]]
    inputs = {layer: layer_provenance[layer]["inputs"] for layer in p.layers}
    text = html.render(
        "index.html",
        run=p.run,
        fdr_q=p.fdr_q,
        about=_about(p, run_provenance["dataset"], job),
        layers=layers,
        figures=[
            html.FigureLink(
                _relative(job.output.layers_png, page),
                _relative(job.output.layers_svg, page),
                "detectors per category, layer by layer",
            )
        ],
        per_category=summary_table.to_dict("records"),
        summary_csv=_relative(job.input.summary, page),
        sections=sections,
        inputs=inputs,
        input_keys=sorted({key for v in inputs.values() for key in v}),
        versions=first["versions"],
        config=json.dumps(first["config"], indent=2, sort_keys=True),
    )
    with atomic_path(page) as tmp:
        tmp.write_text(text, encoding="utf-8")
    log.info("report: %s", page)
