# Shared planning: config validation, the run's chunks and layers, input functions (get_*), constraints.
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from netdissect import ablationplan as ndablationplan
from netdissect import config as ndconfig
from netdissect.gan import plan as ndganplan
from netdissect import plan as ndplan
from netdissect.cli import finished_run
from netdissect.errors import NetdissectError
from netdissect.layout import RunLayout, is_generator_layer
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


def _job_slots():
    """Jobs that run at once, for chunk_size: auto: --cores here, --jobs on a cluster (one when neither is set)."""
    settings = workflow.resource_settings
    slots = settings.nodes or settings.cores  # a cluster run has --jobs as nodes; locally --jobs becomes --cores
    return slots if isinstance(slots, int) and 0 < slots < 1_000_000 else 1


def is_activated(section):
    """Whether an optional stage is switched on (its section's ``activate`` key)."""
    return bool(config.get(section, {}).get("activate", False))


try:
    _defaults = ndconfig.load_yaml(Path(workflow.basedir) / "config" / "config.yaml")
    _resolved = ndconfig.resolve_exclusive(_defaults, _user_layers())  # a key the user set wins over a default
    _validated = ndconfig.validate(_resolved, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
    config.clear()
    config.update(_validated)
    CHUNKING = ndplan.Chunking(_job_slots(), Path(RunLayout(str(ndplan.run_dir(config))).chunking()))
    PLAN = ndplan.make_plan(config, CHUNKING)
    ABLATION = ndablationplan.ablation_plan(config) if is_activated("ablation") else None
    ADVERSARIAL_CLASSES = ndplan.adversarial_classes(config) if is_activated("adversarial") else None
    CLASS_NAMES = list(ABLATION.classes if ABLATION else ADVERSARIAL_CLASSES or [])  # the model's output names
    ABLATION_ROLES = dict(ndablationplan.role_splits(config))  # ranking / eval -> split
    GAN = ndganplan.gan_plan(config, PLAN.image_size, CHUNKING) if is_activated("gan") else None
    if workflow.is_main_process:
        logger.info(f"netdissect: dissecting {ndplan.describe_selection(PLAN.selection)} of {PLAN.dataset_root}")
        for line in ABLATION.report if ABLATION else ():
            logger.warning(f"netdissect: ablation: {line}")
except NetdissectError as error:
    _fail(error)

if config["chunk_size"] == "auto":

    onstart:
        # as the run starts (not in a dry run): later plans of this run, and its cluster jobs, cut the same chunks
        CHUNKING.remember(
            {"dataset": (PLAN.images, PLAN.chunk_size)} | ({"gan": (GAN.images, GAN.chunk_size)} if GAN else {})
        )


RUN = str(PLAN.run_dir)
OUT = RunLayout(RUN)
CACHE = ndplan.CACHE  # the world and trained networks, shared by runs with the same values
CHUNKS = [c.name for c in PLAN.chunks]
LAYERS = list(config["model"]["layers"])
GAN_LAYERS = list(GAN.layers) if GAN else []  # generator layers, gan.<module>, dissected on generated images
GAN_CHUNKS = [c.name for c in GAN.chunks] if GAN else []
GENERATOR_KEY = ndplan.cache_key(GAN.training) if GAN and GAN.trained_here else None  # the embedded generator's
SOURCE = ndplan.source_spec(config)
DATASET = config["dataset"]
SEGMENTER = config["segmenter"]
SYNTHETIC = DATASET["kind"] == "synthetic"
SCRIPT = "../scripts/stage.py"


wildcard_constraints:
    chunk=f"{ndplan.CHUNK_PATTERN}|{ndganplan.CHUNK_PATTERN}",
    layer="|".join(re.escape(layer) for layer in LAYERS + GAN_LAYERS),


def _check_inputs():
    """In the main process only: every dataset file exists, the model builds and has the layers."""
    if not workflow.is_main_process:
        return
    from netdissect.checks import check_model

    missing = [] if DATASET["skip_bad_images"] else ndplan.missing_files(config)
    if missing:
        _fail(ndplan.describe_missing(missing))
    try:
        check_model(MODEL, LAYERS, len(CLASS_NAMES) or None, PLAN.image_size)
        if GAN is not None:
            from netdissect.gan.generators import check_gan

            check_gan(config["gan"], list(GAN.modules), PLAN.image_size, ndganplan.segmenter_concepts(config))
    except NetdissectError as error:
        _fail(error)


MODEL = ndplan.model_spec(config)
_check_inputs()
EXTRACTED_LAYERS = ndplan.extracted_layers(OUT, LAYERS, CHUNKS, MODEL.digest)
PENDING_LAYERS = [layer for layer in LAYERS if layer not in EXTRACTED_LAYERS]


def get_source_input(wildcards=None):
    """What chunk jobs read: the synthetic world (a rule output) or the dataset's own index file."""
    if SYNTHETIC:
        return CACHE.world(ndplan.world_key(config))
    if DATASET["kind"] == "broden":
        return str(Path(DATASET["root"]) / "index.csv")
    return []


def chunk_start(wildcards):
    return PLAN.chunk(wildcards.chunk).start


def chunk_stop(wildcards):
    return PLAN.chunk(wildcards.chunk).stop


def chunk_digest(wildcards):
    return PLAN.chunk(wildcards.chunk).digest


def chunks_of(layer):
    """The chunks a layer is dissected on: generated images for a generator layer, the dataset's otherwise."""
    return GAN_CHUNKS if is_generator_layer(layer) else CHUNKS


def get_layer_chunks(path_of):
    """Input function: one path per chunk for the wildcard layer (path_of(layer, chunk) is a layout method)."""
    return lambda wildcards: [path_of(wildcards.layer, c) for c in chunks_of(wildcards.layer)]


def get_network_digest(wildcards):
    """The digest of the network whose layer is dissected: the generator's for a generator layer."""
    return GAN.digest if is_generator_layer(wildcards.layer) else MODEL.digest


def get_images_digest(wildcards):
    """The digest of the images a layer is dissected on (the dataset's chunks, or the generated ones)."""
    chunks = GAN.chunks if is_generator_layer(wildcards.layer) else PLAN.chunks
    return digest([c.digest for c in chunks])


CLASSIFIER = ndplan.classifier_params(config) if MODEL.trained_here else None
CLASSIFIER_KEY = ndplan.cache_key(CLASSIFIER) if MODEL.trained_here else None


def get_weights_input():
    return {"weights": CACHE.classifier(CLASSIFIER_KEY)} if MODEL.trained_here else {}


def is_trained_segmenter():
    return SEGMENTER["kind"] == "trained"


TRAINED_SEGMENTER = ndplan.segmenter_params(config, PLAN.image_size) if is_trained_segmenter() else None
SEGMENTER_KEY = ndplan.cache_key(TRAINED_SEGMENTER) if is_trained_segmenter() else None


def get_segmenter_input(wildcards=None):
    return {"segmenter": CACHE.segmenter(SEGMENTER_KEY)} if is_trained_segmenter() else {}


def gpu_resources(uses_model=True):
    """A GPU for model stages when device: cuda (the slurm executor turns it into --gpus)."""
    return {"gpu": 1} if uses_model and config["device"] == "cuda" else {}


def mem_mb(base, per_image):
    """A chunk job's memory request; jobs read and write in batches, so it grows little with the chunk (measured at
    2,500-image chunks, ResNet-18 layer3 + layer4: activations 1.4 GB, statistics 0.7 GB, segmentation 0.7 GB,
    tally and rounds 2-3 0.3 GB)."""
    return lambda wildcards: int(base + per_image * PLAN.chunk_size)


def runtime(base, per_image):
    return lambda wildcards: int(base + per_image * PLAN.chunk_size)


def get_report_paths():
    """The training and segmenter quality reports of the run (the classifier's lives in the cache)."""
    reports = [CACHE.classifier_metrics(CLASSIFIER_KEY)] if MODEL.trained_here else []
    return reports + ([OUT.segmenter_quality()] if is_trained_segmenter() else [])


def get_dissect_outputs():
    """The dissection target: every layer's units and figure, the summary, the training and segmenter reports."""
    outputs = [path for layer in LAYERS for path in (OUT.units(layer), OUT.detectors_figure(layer))]
    return outputs + [OUT.summary(), OUT.index()] + get_report_paths()


def get_ablation_outputs():
    """The ablation target: every ablated layer's tables and figures (none when the stage is switched off)."""
    if ABLATION is None:
        return []
    paths = (OUT.sweeps, OUT.ablation_table, OUT.ranking, OUT.importance, OUT.sweeps_figure, OUT.ablation_provenance)
    return [path(layer) for layer in ABLATION.layers for path in paths]


def get_report_outputs():
    """The report target: the overview page and every layer's page."""
    return [OUT.report_index()] + [OUT.report_layer(layer) for layer in LAYERS]


def get_report_inputs(wildcards):
    """What the overview shows besides the dissection: training reports and the switched-on stages' results."""
    inputs = {}
    if MODEL.trained_here:
        inputs["classifier_metrics"] = CACHE.classifier_metrics(CLASSIFIER_KEY)
    if is_trained_segmenter():
        inputs["segmenter_quality"] = OUT.segmenter_quality()
    if ABLATION is not None:
        shown = {"table": OUT.ablation_table, "sweeps_figure": OUT.sweeps_figure}
        shown |= {"importance_figure": OUT.importance_figure, "sweeps": OUT.sweeps, "single_unit": OUT.single_unit}
        shown |= {"ranking": OUT.ranking, "importance": OUT.importance}
        inputs |= {f"ablation_{name}": [path(layer) for layer in ABLATION.layers] for name, path in shown.items()}
    if is_activated("adversarial"):
        inputs |= {"adversarial_summary": OUT.adversarial_summary(), "adversarial_figure": OUT.adversarial_figure()}
        inputs["adversarial_units"] = [OUT.adversarial_units(layer) for layer in LAYERS]
    if GAN is not None:
        inputs |= {"gan_units": [OUT.units(layer) for layer in GAN_LAYERS], "gan_removal": OUT.gan_removal()}
        inputs |= {"gan_insertion": OUT.gan_insertion()}
        inputs |= {f"gan_{name}_figure": OUT.gan_figure(name) for name in ("removal", "insertion", "paintings")}
        if GAN.trained_here:
            inputs["gan_samples"] = CACHE.generator_samples(GENERATOR_KEY)
    return inputs


def get_gan_outputs():
    """The GAN target: every generator layer's units and figure, the interventions' tables (none when off)."""
    layers = [path for layer in GAN_LAYERS for path in (OUT.units(layer), OUT.detectors_figure(layer))]
    return layers + ([OUT.gan_removal(), OUT.gan_insertion(), OUT.gan_painting()] if GAN else [])


def get_adversarial_outputs():
    """The adversarial target: every layer's units table, the summary and its figure (none when switched off)."""
    if not is_activated("adversarial"):
        return []
    return [OUT.adversarial_units(layer) for layer in LAYERS] + [OUT.adversarial_summary(), OUT.adversarial_figure()]


def get_statistics_input(wildcards):
    """The layer's label statistics, which units.csv joins when the stage is switched on."""
    shown = is_activated("statistics") and not is_generator_layer(wildcards.layer)
    return {"statistics": OUT.statistics(wildcards.layer)} if shown else {}


def get_statistics_outputs():
    """The statistics target: every layer's statistics table, discoveries and figure (none when switched off)."""
    if not is_activated("statistics"):
        return []
    paths = (OUT.statistics, OUT.discoveries, OUT.statistics_figure)
    return [path(layer) for layer in LAYERS for path in paths] + [OUT.units(layer) for layer in LAYERS]


def get_ablation_layers():
    """The layers the ablation stage ranks units on (its single-unit tables), when it is switched on."""
    return list(ABLATION.layers) if is_activated("ablation") else []


def get_adversarial_ranking_input(wildcards):
    """The ablation's single-unit tables: the adversarial analysis ranks those layers' units by them."""
    layers = get_ablation_layers()
    return {"ablation": [OUT.single_unit(layer) for layer in layers]} if layers else {}
