# Helpers shared by the rules. The study plan is the library's (sfsrnet.study): this file only
# turns it into wildcard constraints, input functions and the final targets.
import os
import re
import sys

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

from sfsrnet.errors import SfsrnetError
from sfsrnet.study import corpus_spec, plan_study

# The library's CLI as the jobs call it: with --use-conda the rule's environment's python, else
# the interpreter that runs snakemake (the project's .venv); the checkout is put on PYTHONPATH so
# the CLI is found in either without installing the package into the conda environment.
_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
SFSRNET = (
    f"PYTHONPATH={workflow.basedir}${{PYTHONPATH:+:$PYTHONPATH}} "
    f"{'python' if _CONDA else sys.executable} -m sfsrnet"
)
ENV = "../../environment.yml"
# Cores of the corpus job, a local rule: all of a local run's --cores; on a cluster (no --cores)
# those of the machine that runs snakemake, or --local-cores.
LOCAL_CORES = (
    workflow.resource_settings.cores
    or workflow.resource_settings.local_cores
    or len(os.sched_getaffinity(0))
)

try:
    PLAN = plan_study(config)
except SfsrnetError as err:
    # One line naming the key (and the cell), before any job starts.
    raise WorkflowError(str(err)) from None
STUDY_DIR = PLAN.study_dir
CELLS = PLAN.cells
CORPORA = PLAN.corpora


wildcard_constraints:
    cell="|".join(map(re.escape, CELLS)),
    corpus="|".join(map(re.escape, CORPORA)),


def init_checkpoint(wildcards):
    """The SR-off twin's checkpoint for a staged SR cell or a budget control cell (an input of
    its training), else none."""
    path = CELLS[wildcards.cell].config["sr"]["init_from"]
    return [path] if path else []


def cell_corpus(wildcards):
    return f"{CELLS[wildcards.cell].corpus}/manifest.json"


def all_targets():
    return [f"{STUDY_DIR}/plan.json", f"{STUDY_DIR}/tables/ablation.md"]
