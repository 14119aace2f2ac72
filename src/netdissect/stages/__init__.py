"""Entry points of the workflow's rules: ``run(snakemake)`` calls the stage function named after the rule.

A stage function takes one ``job`` argument with attributes ``input``, ``output``, ``params`` (Snakemake's named
lists, or any objects with the same attributes in tests), ``threads`` and ``wildcards``. Expected failures
(bad input, inconsistent stores) are reported as one clear line on stderr and in the log, without a traceback.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import resource
import sys
from types import SimpleNamespace

from ..errors import NetdissectError

# rule name -> "module:function" under netdissect.stages
STAGES = {
    "synthesize": "data:synthesize",
    "data_index": "data:data_index",
    "train_classifier": "training:train_classifier",
    "train_segmenter": "training:train_segmenter",
    "concepts": "segment:concepts",
    "segment_chunk": "segment:segment_chunk",
    "segmenter_quality": "segment:segmenter_quality",
    "activations": "activations:activations_chunk",
    "activations_layer": "activations:activations_chunk",
    "threshold_coarse": "thresholds:coarse_reduce",
    "threshold_sample_chunk": "thresholds:refine_chunk",
    "threshold_sample": "thresholds:sample_reduce",
    "threshold_refine_chunk": "thresholds:refine_chunk",
    "threshold_refine": "thresholds:refine_reduce",
    "tally_chunk": "tally:tally_chunk",
    "tally": "tally:tally_reduce",
    "label_units": "tally:label_units",
    "statistics_chunk": "statistics:statistics_chunk",
    "statistics_layer": "statistics:statistics_layer",
    "layer_figure": "report:layer_figure",
    "summary": "report:summary",
    "ablation_labels": "ablation:ablation_labels",
    "ablation_features": "ablation:ablation_features",
    "ablation_units": "ablation:ablation_units",
    "ablation_single": "ablation:ablation_single",
    "ablation_sweep": "ablation:ablation_sweep",
    "ablation_sweeps": "ablation:ablation_sweeps",
    "ablation_report": "ablation:ablation_report",
    "top_images_chunk": "topimages:top_images_chunk",
    "layer_report": "report:layer_report",
    "report_index": "report:report_index",
    "adversarial_attack": "adversarial:adversarial",
    "train_generator": "gan:train_generator",
    "generate_chunk": "gan:generate_chunk",
    "gan_activations": "gan:gan_activations",
    "gan_interventions": "gan:gan_interventions",
}


class StageError(NetdissectError):
    """A stage cannot proceed; the message names the file, layer or image at fault."""


def read_batch(job, default: int) -> int:
    """Images per in-memory batch of a chunk job: ``default`` unless its params say ``read_batch``."""
    return getattr(job.params, "read_batch", default)


def stage_job(inputs: dict, outputs: dict, **params) -> SimpleNamespace:
    """A job for calling a stage function outside Snakemake: named inputs, outputs and params."""
    return SimpleNamespace(
        input=SimpleNamespace(**inputs), output=SimpleNamespace(**outputs), params=SimpleNamespace(**params)
    )


def stage_function(rule: str):
    """The function behind a rule name."""
    module, function = STAGES[rule].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), function)


# glibc's mallopt parameters: large blocks come from the heap and freed memory stays there, so a job's batches reuse
# pages instead of mapping and faulting in fresh ones each time (measured: the activation job 1.35x faster)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's cap on 64-bit systems


def keep_freed_memory() -> bool:
    """Tune glibc's allocator for a job's repeated large batches (no-op elsewhere); True when it was tuned."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX), (M_TRIM_THRESHOLD, 1 << 31), (M_TOP_PAD, 256 << 20))
    return all(libc.mallopt(option, value) == 1 for option, value in settings)


def run(snakemake) -> None:
    """Run the stage of a Snakemake ``script:`` job, logging to its log file."""
    keep_freed_memory()
    handlers = [logging.StreamHandler(sys.stderr)]
    if snakemake.log:
        handlers.append(logging.FileHandler(snakemake.log[0], mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", handlers=handlers, force=True)
    job = SimpleNamespace(
        input=snakemake.input,
        output=snakemake.output,
        params=snakemake.params,
        threads=snakemake.threads,
        wildcards=snakemake.wildcards,
        rule=snakemake.rule,
    )
    try:
        stage_function(snakemake.rule)(job)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        logging.getLogger("netdissect").info("job cpu: %s %.2f s", snakemake.rule, usage.ru_utime + usage.ru_stime)
    except NetdissectError as error:
        logging.getLogger("netdissect").error("%s", error)
        sys.exit(1)
