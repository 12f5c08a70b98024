# The study workflow: make the corpus, train and evaluate every cell of the grid, report.
# The study plan (cells, presets, twins, corpus folders, training identities) is the library's
# (sfsrnet.study, also `python -m sfsrnet plan`); each step is a call of the library's CLI, so any
# cell can be rerun by hand.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflows/rules/common.smk"
include: "workflows/rules/data.smk"
include: "workflows/rules/train.smk"
include: "workflows/rules/evaluate.smk"
include: "workflows/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
