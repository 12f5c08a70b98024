# Helpers shared by the rules: the study's grid is expanded here, once, into cells.
import copy
import hashlib
import itertools
import json
import os
import posixpath
import re
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

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
RESULTS = config["results_dir"]
STUDY = config["study"]
STUDY_DIR = f"{RESULTS}/{STUDY}"
SEPARATORS_DIR = Path(workflow.basedir) / "config" / "separators"
SR_PRESETS = Path(workflow.basedir) / "config" / "sr.yaml"

# Short axis names and how their values name a cell folder (STYLE.md: sepformer/ds4/sr-on/seed0).
AXIS_ALIASES = {
    "separator": "separator.name",
    "factor": "system.factor",
    "mode": "system.mode",
    "seed": "seed",
    "sr": "sr.enabled",
    "heuristic": "sr.args.heuristic",
    "sr_training": "sr.training",
    "multiloss": "train.multiloss",
}
AXIS_LABELS = {"separator": "{}", "factor": "ds{}", "seed": "seed{}", "mode": "{}"}
# Axes that only matter with SR on: an SR-on cell's SR-off twin differs in none of them.
SR_AXES = {"sr", "heuristic", "sr_training"}


def _axis_key(axis):
    return AXIS_ALIASES.get(axis, axis)


def _label(axis, value):
    if isinstance(value, bool):  # YAML reads on/off as booleans
        value = "on" if value else "off"
    pattern = AXIS_LABELS.get(axis, axis.split(".")[-1] + "-{}")
    return pattern.format(value)


def _set(mapping, dotted, value):
    *parents, last = dotted.split(".")
    node = mapping
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise WorkflowError(
                f"grid axis {dotted}: {part} is not a mapping in the config"
            )
    node[last] = value


def _preset(path, preset, key):
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise WorkflowError(f"{key}: no preset file {path} (preset files: {known})")
    presets = (yaml.safe_load(path.read_text()) or {}).get("presets", {})
    if preset not in presets:
        raise WorkflowError(
            f"{key} {preset!r} is not in {path}; it has: {sorted(presets)}"
        )
    return dict(presets[preset] or {})


def corpus_dir(data):
    """The corpus folder: data.root, or a cache folder named by a hash of the data section."""
    if data["root"]:
        return data["root"]
    spec = {k: v for k, v in data.items() if k != "root"}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return f"{RESULTS}/data/{data['corpus']}-{key}"


def _excluded(axes, exclude):
    for item in exclude:
        if all(
            axes.get(axis) in (want if isinstance(want, list) else [want])
            for axis, want in item.items()
        ):
            return True
    return False


def expand_grid(config):
    """Cell name -> resolved cell config, for every combination of the grid not excluded."""
    grid = dict(config["grid"])
    for axis in list(grid) + [a for item in config["exclude"] for a in item]:
        if _axis_key(axis) != axis and _axis_key(axis) in grid:
            raise WorkflowError(
                f"grid axis {axis!r} is given twice (also as {_axis_key(axis)})"
            )
    # Folder order: separator, factor, the other axes as written, seed last.
    order = [a for a in ("separator", "factor") if a in grid]
    order += [a for a in grid if a not in ("separator", "factor", "seed")]
    order += ["seed"] if "seed" in grid else []
    for item in config["exclude"]:
        unknown = sorted(set(item) - set(grid))
        if unknown:
            raise WorkflowError(
                f"exclude names axis {unknown} that is not in grid {list(grid)}"
            )
    cells = {}
    for values in itertools.product(*(grid[a] for a in order)):
        axes = dict(zip(order, values))
        if _excluded(axes, config["exclude"]):
            continue
        cell = copy.deepcopy(config)
        del cell["grid"], cell["exclude"]
        for axis, value in axes.items():
            _set(cell, _axis_key(axis), value)
        sep = cell["separator"]
        path = SEPARATORS_DIR / f"{sep['name'].lower()}.yaml"
        sep["args"] = {
            **_preset(path, sep["preset"], "separator.preset"),
            **sep["args"],
        }
        sr = cell["sr"]
        sr["args"] = {**_preset(SR_PRESETS, sr["preset"], "sr.preset"), **sr["args"]}
        cell["data"]["root"] = corpus_dir(cell["data"])
        name = (
            posixpath.join(*(_label(a, v) for a, v in axes.items()))
            if axes
            else "single"
        )
        cell["cell"] = {"name": name, "axes": axes}
        try:
            validate(cell, "../schemas/config.schema.yaml")
        except WorkflowError as err:
            raise WorkflowError(f"cell {name}: the grid gives an invalid config", err)
        cells[name] = cell
    if not cells:
        raise WorkflowError("the grid and exclude of the config leave no cell to run")
    _link_staged(cells)
    return cells


def _link_staged(cells):
    """Point each staged SR-on cell at the checkpoint of its SR-off twin (same other axes)."""
    twins = {}
    for name, cell in cells.items():
        if not cell["sr"]["enabled"]:
            key = tuple(
                (a, v) for a, v in cell["cell"]["axes"].items() if a not in SR_AXES
            )
            twins.setdefault(key, name)
    for name, cell in cells.items():
        if cell["sr"]["enabled"] and cell["sr"]["training"] == "staged":
            key = tuple(
                (a, v) for a, v in cell["cell"]["axes"].items() if a not in SR_AXES
            )
            if key not in twins:
                raise WorkflowError(
                    f"cell {name} trains SR on a frozen separator (sr.training: staged) but the "
                    "grid has no SR-off cell with the same other axes; add `sr: [off, on]` to "
                    "the grid or use sr.training: joint"
                )
            cell["sr"]["init_from"] = f"{STUDY_DIR}/cells/{twins[key]}/checkpoint.pt"


def init_checkpoint(wildcards):
    """The SR-off twin's checkpoint for a staged SR cell (an input of its training), else none."""
    path = CELLS[wildcards.cell]["sr"]["init_from"]
    return [path] if path else []


CELLS = expand_grid(config)
CORPORA = {c["data"]["root"]: c["data"] for c in CELLS.values()}


wildcard_constraints:
    cell="|".join(map(re.escape, CELLS)),
    corpus="|".join(map(re.escape, CORPORA)),


def cell_corpus(wildcards):
    return f"{CELLS[wildcards.cell]['data']['root']}/manifest.json"


def report_tables():
    """Tables the report writes besides ablation.md: sr.* when the grid has SR off and on."""
    tables = [f"{STUDY_DIR}/tables/ablation.csv", f"{STUDY_DIR}/tables/long.csv"]
    if {c["cell"]["axes"].get("sr") for c in CELLS.values()} == {False, True}:
        tables += [f"{STUDY_DIR}/tables/sr.md", f"{STUDY_DIR}/tables/sr.csv"]
    return tables


def all_targets():
    return [f"{STUDY_DIR}/tables/ablation.md"]
