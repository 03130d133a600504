# cpr-bench: the DAG that trains every method, certifies and attacks each model, and aggregates
# the paper's tables, figures and one HTML report. Logic lives in the package (bench.*);
# rules only name files, params, resources and the script that runs.
#
#   snakemake --cores 8 reports/table1.csv          # what Table 1 needs
#   snakemake --cores 2                              # everything, up to reports/report.html
#   snakemake --configfile config/paper.yaml --profile profiles/slurm   # the paper's protocol on SLURM
#
# Results of a config live under results/<run>/ and reports/<run>/ (config key `run`);
# reports/<file> is the current config's copy.
from snakemake.utils import min_version, validate
from bench.workflow.config import check_config

min_version("9.0")

# config/config.yaml is the default; a --configfile on the command line replaces it (a merge
# would let the default's small settings leak into, say, config/paper.yaml).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "config/schema.yaml")
check_config(config)  # loads the plugins and registers the external models (bench.workflow.extensions)

include: "rules/common.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


rule all:
    input:
        "reports/report.html",
        expand("reports/{table}.csv", table=ENABLED),
        ["reports/figure2.png"] if config.get("ablation") else [],
        "reports/figure3.png",
        "reports/vicinities.png",
        "reports/job_times.csv",
    default_target: True
