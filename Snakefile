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
include: "workflow/rules/statistics.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/ablation.smk"
include: "workflow/rules/adversarial.smk"
include: "workflow/rules/gan.smk"


# Named targets: `snakemake dissect` runs the dissection alone, `snakemake ablation` the ablation sweeps,
# `snakemake report` the HTML report, `snakemake adversarial` the attack analysis, `snakemake statistics` the
# label statistics, `snakemake gan` the GAN dissection and its interventions (each with the dissection it reads); `all` (the default) runs every switched-on stage.
# Light rules (reduces, reports) say `localrule: True` themselves: on a cluster they run in the main process.
rule dissect:
    localrule: True
    input:
        get_dissect_outputs(),


rule all:
    default_target: True
    localrule: True
    input:
        rules.dissect.input,
        get_ablation_outputs(),
        get_report_outputs(),
        get_adversarial_outputs(),
        get_statistics_outputs(),
        get_gan_outputs(),


# After a run that made the dissection's outputs: the detector summary, and where the tables and reports are.
onsuccess:
    if all(Path(path).exists() for path in rules.dissect.input):
        print(finished_run(RUN, LAYERS, get_report_paths()))
