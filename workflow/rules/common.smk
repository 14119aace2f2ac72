# Shared planning: config validation, the run's chunks and layers, input functions (get_*), constraints.
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from netdissect import config as ndconfig
from netdissect import plan as ndplan
from netdissect.errors import NetdissectError
from netdissect.provenance import digest


def _fail(error):
    """Stop before any job with the one-line explanation (no traceback)."""
    sys.stderr.write(f"netdissect: {error}\n")
    raise SystemExit(1)


def _user_layers():
    """The user's config layers over config/config.yaml: each --configfile by path, then the --config values."""
    layers = [(str(f), ndconfig.load_yaml(f)) for f in workflow.overwrite_configfiles]
    values = ndconfig.command_line_values(dict(workflow.config_settings.config))
    return layers + ([("--config", values)] if values else [])


try:
    _defaults = ndconfig.load_yaml(Path(workflow.basedir) / "config" / "config.yaml")
    _resolved = ndconfig.resolve_exclusive(_defaults, _user_layers())  # a key the user set wins over a default
    _validated = ndconfig.validate(_resolved, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
    config.clear()
    config.update(_validated)
    PLAN = ndplan.make_plan(config)
    if workflow.is_main_process:
        logger.info(f"netdissect: dissecting {ndplan.describe_selection(PLAN.selection)} of {PLAN.dataset_root}")
except NetdissectError as error:
    _fail(error)

RUN = str(PLAN.run_dir)
CHUNKS = [c.name for c in PLAN.chunks]
LAYERS = list(config["model"]["layers"])
SOURCE = ndplan.source_spec(config)
DATASET = config["dataset"]
SEGMENTER = config["segmenter"]
SYNTHETIC = DATASET["kind"] == "synthetic"
SCRIPT = "../scripts/stage.py"


wildcard_constraints:
    chunk=ndplan.CHUNK_PATTERN,
    layer="|".join(re.escape(layer) for layer in LAYERS),


def world_params():
    """The synthetic world's parameters (its content depends on nothing else)."""
    return {"seed": config["seed"], **config["synthetic"]}


def scene_concepts():
    """(ids, names) of the dataset's scene concepts, the classes of a classifier trained here."""
    if SYNTHETIC:
        from netdissect.synthetic.vocabulary import concept_table

        rows = [(i, n) for i, n, c in concept_table() if c == "scene"]
    else:
        table = ndplan.open_source(SOURCE).concepts()
        rows = list(table.loc[table["category"] == "scene", ["id", "name"]].itertuples(index=False, name=None))
    return [int(i) for i, _ in rows], [str(n) for _, n in rows]


def file_or_config_digest(path, fallback):
    """Content digest of a weights file given by the user, or of the config that produces it here."""
    if path and Path(path).is_file():
        from netdissect.models import file_digest

        return file_digest(path)
    return digest(fallback)


def classifier_params():
    ids, names = scene_concepts()
    return {
        "source": SOURCE,
        "resize": DATASET["resize"],
        "scene_ids": ids,
        "scene_names": names,
        "seed": config["seed"],
        **config["classifier"],
    }


def _model_params():
    """The model section as the model stages need it, with num_classes and a digest of what defines it."""
    spec = {k: v for k, v in config["model"].items() if k != "layers"}
    spec["seed"] = config["seed"]
    trained_here = spec["weights"] == "train"
    if trained_here:
        spec["num_classes"] = len(scene_concepts()[0])
    weights = file_or_config_digest(None if trained_here else spec["weights"], classifier_params())
    factory = spec["factory"].rsplit(":", 1)[0] if spec["factory"] else None
    code = file_or_config_digest(factory, factory)
    precision = config["activations"]["autocast"]  # a lower-precision forward makes different activations
    spec["digest"] = digest([spec, weights, code] + ([precision] if precision else []))
    return spec


def _check_inputs():
    """In the main process only: every dataset file exists, the model builds and has the layers."""
    if not workflow.is_main_process:
        return
    from netdissect.checks import check_model

    missing = [] if DATASET["skip_bad_images"] else ndplan.missing_files(config)
    if missing:
        _fail(ndplan.describe_missing(missing))
    try:
        check_model(MODEL, LAYERS)
    except NetdissectError as error:
        _fail(error)


MODEL = _model_params()
_check_inputs()


def get_source_input(wildcards=None):
    """What chunk jobs read: the synthetic world (a rule output) or the dataset's own index file."""
    if SYNTHETIC:
        return f"{RUN}/world"
    if DATASET["kind"] == "broden":
        return str(Path(DATASET["root"]) / "index.csv")
    return []


def chunk_start(wildcards):
    return PLAN.chunk(wildcards.chunk).start


def chunk_stop(wildcards):
    return PLAN.chunk(wildcards.chunk).stop


def chunk_digest(wildcards):
    return PLAN.chunk(wildcards.chunk).digest


def _store_model_digest(path):
    """The model digest recorded in an activation store (read from zarr's metadata file), or None."""
    try:
        meta = json.loads((Path(path) / "zarr.json").read_text())
        return meta["attributes"]["provenance"]["inputs"]["model"]
    except (OSError, KeyError, ValueError):
        return None


def _extracted(layer):
    """True when every chunk of the layer has an activation store from the current model."""
    paths = [f"{RUN}/activations/{layer}/{c}.zarr" for c in CHUNKS]
    return all(Path(p).is_dir() for p in paths) and _store_model_digest(paths[0]) == MODEL["digest"]


# Layers still to extract share one forward pass per chunk; layers already extracted keep a rule of their own,
# so adding a layer to the config costs one pass for that layer only.
EXTRACTED_LAYERS = [layer for layer in LAYERS if _extracted(layer)]
PENDING_LAYERS = [layer for layer in LAYERS if layer not in EXTRACTED_LAYERS]


def get_activations(wildcards):
    return f"{RUN}/activations/{wildcards.layer}/{wildcards.chunk}.zarr"


def get_layer_chunks(pattern):
    """Input function: one path per chunk for the wildcard layer."""

    def paths(wildcards):
        return [pattern.format(run=RUN, layer=wildcards.layer, chunk=c) for c in CHUNKS]

    return paths


def get_weights_input():
    return {"weights": f"{RUN}/model/classifier.pt"} if config["model"]["weights"] == "train" else {}


def is_trained_segmenter():
    return SEGMENTER["kind"] == "trained"


def pixel_vocabulary():
    """Per category, the concept ids of the synthetic world (the trained segmenter's heads)."""
    from netdissect.synthetic.vocabulary import IMAGE_CATEGORIES, PIXEL_CATEGORIES, concept_table

    table = concept_table()
    pixel = {cat: [i for i, _, c in table if c == cat] for cat in PIXEL_CATEGORIES}
    image = {cat: [i for i, _, c in table if c == cat] for cat in IMAGE_CATEGORIES}
    return pixel, image


def segmenter_digest():
    if is_trained_segmenter():
        return digest([SEGMENTER, world_params()])
    weights = file_or_config_digest(SEGMENTER["weights"], None)
    return digest([SEGMENTER, weights])


def provenance_config():
    """The config values a layer's tables depend on (not the layer list, so adding a layer reruns nothing else)."""
    keep = ("seed", "dataset", "synthetic", "segmenter", "quantile", "union", "activations", "batch_size")
    return {k: config[k] for k in keep} | {"model": {k: v for k, v in config["model"].items() if k != "layers"}}


def gpu_resources(uses_model=True):
    """A GPU for model stages when device: cuda (the slurm executor turns it into --gpus)."""
    return {"gpu": 1} if uses_model and config["device"] == "cuda" else {}


def mem_mb(base, per_image):
    return lambda wildcards: int(base + per_image * config["chunk_size"])


def runtime(base, per_image):
    return lambda wildcards: int(base + per_image * config["chunk_size"])


def get_final_outputs():
    outputs = [f"{RUN}/dissect/{layer}/{name}" for layer in LAYERS for name in ("units.csv", "detectors.png")]
    outputs.append(f"{RUN}/summary.csv")
    outputs.append(f"{RUN}/data/index.csv")
    if config["model"]["weights"] == "train":
        outputs.append(f"{RUN}/model/training.json")
    if is_trained_segmenter():
        outputs.append(f"{RUN}/segmenter/quality.json")
    return outputs
