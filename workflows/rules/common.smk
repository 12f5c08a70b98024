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


# The folder of a real corpus when data.root is null (as sfsrnet.data.corpora.ENV_VARS).
CORPUS_ENV = {
    "folder": "SFSRNET_FOLDER",
    "wsj0-2mix": "SFSRNET_WSJ0_MIX",
    "wsj0-3mix": "SFSRNET_WSJ0_MIX",
    "libri2mix": "SFSRNET_LIBRIMIX",
    "libri3mix": "SFSRNET_LIBRIMIX",
    "wham": "SFSRNET_WHAM",
}
# The data keys that shape the corpus a cell reads; the others act at training time.
CORPUS_KEYS = {
    "embedded": ("corpus", "sample_rate", "n_src", "embedded"),
    "real": (
        "corpus",
        "root",
        "sample_rate",
        "n_src",
        "mix_length",
        "task",
        "librimix",
        "use_8k_files",
    ),
}


def _cache_dir(data, keys):
    spec = {k: data[k] for k in keys}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return f"{RESULTS}/data/{data['corpus']}-{key}"


def corpus_dir(data):
    """Resolve a cell's corpus in its data section; returns the folder the cell reads.

    embedded: data.root, or a cache folder named by a hash of the corpus settings. Real corpora:
    data.root (or its environment variable) must exist; it is made absolute, and data.prepared
    (the checked corpus at the study rate, made by rule make_corpus) defaults to a cache folder.
    """
    if data["corpus"] == "embedded":
        data["root"] = data["root"] or _cache_dir(data, CORPUS_KEYS["embedded"])
        return data["root"]
    var = CORPUS_ENV[data["corpus"]]
    root = data["root"] or os.environ.get(var)
    if not root:
        raise WorkflowError(
            f"data.root is not set for the {data['corpus']} corpus and the environment "
            f"variable {var} is not set either: point one of them at the corpus folder"
        )
    if not Path(root).expanduser().is_dir():
        raise WorkflowError(
            f"data.root = {root}: the {data['corpus']} corpus folder does not exist"
        )
    data["root"] = str(Path(root).expanduser().resolve())
    data["prepared"] = data["prepared"] or _cache_dir(data, CORPUS_KEYS["real"])
    return data["prepared"]


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
        corpus_dir(cell["data"])
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
        rate, factor = cell["data"]["sample_rate"], cell["system"]["factor"]
        if cell["system"]["mode"] == "resample" and rate % factor:
            raise WorkflowError(
                f"cell {name}: system.factor {factor} does not divide data.sample_rate "
                f"{rate} Hz, so the separator would not run at a whole number of Hz"
            )
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
CORPORA = {corpus_dir(c["data"]): c["data"] for c in CELLS.values()}


wildcard_constraints:
    cell="|".join(map(re.escape, CELLS)),
    corpus="|".join(map(re.escape, CORPORA)),


def cell_corpus(wildcards):
    return f"{corpus_dir(CELLS[wildcards.cell]['data'])}/manifest.json"


def all_targets():
    return [f"{STUDY_DIR}/tables/ablation.md"]
