from pathlib import Path

# netdissect: Network Dissection as a chunked Snakemake workflow.
#   snakemake --cores 2                                  # the embedded synthetic default
#   snakemake --cores 8 --configfile my.yaml --config run=x quantile=0.005
# The configuration is validated (workflow/schemas/config.schema.yaml) before any job is planned.

configfile: str(Path(workflow.basedir) / "config" / "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/activations.smk"
include: "workflow/rules/thresholds.smk"
include: "workflow/rules/tally.smk"
include: "workflow/rules/report.smk"


# Reduces and reports are light: on a cluster they run in the main process, chunk jobs are submitted.
localrules:
    all,
    data_index,
    concepts,
    segmenter_quality,
    threshold_coarse,
    threshold_sample,
    threshold_refine,
    tally,
    label_units,
    layer_figure,
    summary,


rule all:
    default_target: True
    input:
        get_final_outputs(),
