"""The study plan: one study config in, every cell of its grid out, decided in one place.

A study config (``config/config.yaml``, ``config/studies/*.yaml``) names a grid of axes, each a
config key with a list of values. :func:`plan_study` expands it into cells (minus ``exclude``),
resolves the separator and SR presets, locates each cell's corpus, pairs every SR-on cell with its
SR-off twin and gives each cell two parts:

- the **training identity**: every key that can change the trained weights (separator, system,
  SR, data, train and seed, with keys that cannot act left out: SR arguments of an SR-off cell,
  ``train.progress``), hashed into ``training_hash``;
- the **evaluation settings** (``evaluate``, ``mlflow``) that only the evaluation and report read.

The workflow reads the plan through this module and gives the train rule the training part only,
so an evaluation or MLflow edit never retrains. ``python -m sfsrnet plan`` writes the same plan to
``<results_dir>/<study>/plan.json``.

>>> plan = plan_study({"grid": {"separator": ["convtasnet"], "sr": [False, True]}})
>>> list(plan.cells)
['convtasnet/sr-off', 'convtasnet/sr-on']
>>> plan.cells["convtasnet/sr-on"].twin
'convtasnet/sr-off'
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import logging
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sfsrnet import config as cfg
from sfsrnet.errors import ConfigError

log = logging.getLogger(__name__)

# The checkout's config folder: the default study, config/separators/<name>.yaml and config/sr.yaml.
CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
DEFAULT_STUDY = CONFIG_DIR / "config.yaml"
PLAN_JSON = "plan.json"
# What the report of every study writes: tables/<name>.{csv,md,tex} and plots/<name>.{svg,png}.
TABLES = ("ablation", "bands", "cost", "paper", "cells")
PLOTS = ("bands", "cost", "curves")

# Short axis names and the config keys they set.
AXIS_ALIASES = {
    "separator": "separator.name",
    "factor": "system.factor",
    "mode": "system.mode",
    "seed": "seed",
    "sr": "sr.enabled",
    "heuristic": "sr.args.heuristic",
    "sr_training": "sr.training",
    "multiloss": "train.multiloss",
    "control": "sr.control",
}
# How an axis value names a cell folder (STYLE.md: sepformer/ds4/sr-on/seed0); other axes are
# labelled <last part of the key>-<value>.
AXIS_LABELS = {"separator": "{}", "factor": "ds{}", "seed": "seed{}", "mode": "{}", "control": "{}"}
# A control value and the SR state it needs (README, "Reading the tables"): refine restricts an
# SR network's output, budget trains an SR-off twin further; the other pairs mean nothing.
CONTROL_NEEDS_SR = {"refine": True, "budget": False}
# Axes that only act with SR on: an SR-on cell's SR-off twin differs from it in these alone.
SR_AXES = ("sr", "heuristic", "sr_training", "control")
# Sections whose keys can change the trained weights; the rest (study, results_dir, evaluate,
# mlflow, cell) act after training.
TRAINING_SECTIONS = ("seed", "separator", "system", "sr", "data", "train")
# Keys of `train` that say how a run is shown or restarted, not what it computes.
RUN_ONLY_TRAIN_KEYS = ("progress", "resume")


def merge_configs(base: dict[str, Any], *layers: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by each layer in turn, mappings merged key by key and anything else
    replaced: Snakemake's order for ``configfile:`` then ``--configfile A B`` then ``--config``.

    >>> merge_configs({"train": {"epochs": 2, "lr": 0.1}}, {"train": {"epochs": 5}})
    {'train': {'epochs': 5, 'lr': 0.1}}
    """
    merged = copy.deepcopy(base)
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = merge_configs(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
    return merged


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as Snakemake's ``--config`` reads them (values parsed as YAML)."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--config {item!r}: expected KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    return overrides


def load_study(
    configfiles: Sequence[str | Path] = (),
    overrides: dict[str, Any] | None = None,
    base: str | Path | None = DEFAULT_STUDY,
) -> dict[str, Any]:
    """The study config that ``snakemake --configfile A B --config K=V`` runs: ``base`` (the
    Snakefile's ``configfile:``, the default study), then each file, then ``overrides``."""
    overwrite = merge_configs({}, *(cfg.load_yaml(path) for path in configfiles), overrides or {})
    start = cfg.load_yaml(base) if base is not None else {}
    # Snakemake starts from the command line's config, applies the configfile: directive's file
    # and then the command line's again: values as above, but keys (and so the grid's axis order
    # and the cell names) in the command line's order first.
    return merge_configs(overwrite, start, overwrite)


def _axis_key(axis: str) -> str:
    return AXIS_ALIASES.get(axis, axis)


def cell_label(axis: str, value: Any) -> str:
    """The folder part for one axis value: ``ds4``, ``sr-on``, ``seed0``, ``lr-0.001``."""
    if isinstance(value, bool):  # YAML reads on/off as booleans
        value = "on" if value else "off"
    if axis == "control" and value == "none":
        value = "plain"
    return AXIS_LABELS.get(axis, axis.split(".")[-1] + "-{}").format(value)


def _check_registered(name: str, module: str | None) -> None:
    """An unknown separator name is the first thing to report (it says what is registered)."""
    import importlib

    from sfsrnet.registry import separator_factory

    if module:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ConfigError(f"separator.module {module!r} cannot be imported: {err}") from err
    separator_factory(name)


def preset_args(
    kind: str, name: str, preset: str, config_dir: Path = CONFIG_DIR, module: str | None = None
) -> dict:
    """Constructor arguments of a preset: ``kind`` is ``separator`` (``separators/<name>.yaml``;
    ``module`` registers a separator of the user's) or ``sr`` (``sr.yaml``). An unknown preset is
    refused with the known names."""
    if kind == "separator":
        path = config_dir / "separators" / f"{name.lower()}.yaml"
        if not path.is_file():
            _check_registered(name, module)
            known = sorted(p.stem for p in path.parent.glob("*.yaml"))
            raise ConfigError(
                f"separator.preset {preset!r}: there is no preset file {path} for separator "
                f"{name!r} (preset files: {', '.join(known)}); give separator.args instead, "
                "or add the file"
            )
    else:
        path = config_dir / "sr.yaml"
    presets = (cfg.load_yaml(path).get("presets") or {}) if path.is_file() else {}
    if preset not in presets:
        raise ConfigError(
            f"{kind}.preset {preset!r} is not a preset of {path}; known presets: "
            f"{', '.join(sorted(presets)) or 'none'}"
        )
    return dict(presets[preset] or {})


def resolve_presets(config: dict[str, Any], config_dir: Path = CONFIG_DIR) -> dict[str, Any]:
    """A copy of a validated config whose ``separator.args`` and ``sr.args`` hold their preset's
    arguments under the config's own (which win, key by key).

    The one place presets are resolved: the workflow's cells and a config given to the CLI by
    hand go through it alike. Resolving a resolved config changes nothing. ``separator.preset:
    null`` (the default) leaves ``separator.args`` as they are, e.g. for a separator of your own
    without a preset file.
    """
    config = copy.deepcopy(config)
    sep = config["separator"]
    if sep["preset"] is not None:
        preset = preset_args("separator", sep["name"], sep["preset"], config_dir, sep["module"])
        sep["args"] = {**preset, **sep["args"]}
    sr = config["sr"]
    sr["args"] = {**preset_args("sr", "sr", sr["preset"], config_dir), **sr["args"]}
    return config


def load_cell_config(path: str | Path, config_dir: Path = CONFIG_DIR) -> dict[str, Any]:
    """Load, validate and resolve the presets of a cell config (what ``train`` and ``evaluate``
    read): a hand-written config trains exactly what the workflow would."""
    return resolve_presets(cfg.load(path), config_dir)


def training_part(config: dict[str, Any]) -> dict[str, Any]:
    """The keys of a resolved cell config that can change its trained weights.

    SR keys of an SR-off cell, ``sr.epochs`` of a joint one, the preset names (their arguments are
    kept) and the run-only ``train`` keys are left out, so editing them changes no training.
    """
    part = {k: copy.deepcopy(config[k]) for k in TRAINING_SECTIONS}
    part["separator"].pop("preset", None)
    sr = part["sr"]
    control = sr.get("control", "none")
    if not sr["enabled"]:
        part["sr"] = {"enabled": False}
        if control == "budget":  # it trains sr.epochs more epochs from init_from
            part["sr"] |= {k: sr[k] for k in ("control", "epochs", "init_from")}
    else:
        sr.pop("preset", None)
        if control != "refine":  # budget does not act with SR on; none is the old identity
            sr.pop("control", None)
        if sr["training"] != "staged":
            sr.pop("epochs", None)
    for key in RUN_ONLY_TRAIN_KEYS:
        part["train"].pop(key, None)
    return part


def training_hash(part: dict[str, Any]) -> str:
    """Short hash of :func:`training_part` (the cell's training identity)."""
    return hashlib.sha256(json.dumps(part, sort_keys=True).encode()).hexdigest()[:16]


def training_config(config: dict[str, Any]) -> dict[str, Any]:
    """What the workflow's train job reads: the training part, the cell's name and folder keys.

    Evaluation and MLflow settings are not in it (their defaults fill in when it is loaded), so
    the file changes only when the training does.
    """
    return {
        "study": config["study"],
        "results_dir": config["results_dir"],
        **training_part(config),
        "cell": copy.deepcopy(config["cell"]),
    }


@dataclass
class Cell:
    """One cell of a study: its folder name, axis values, resolved config and identities."""

    name: str
    axes: dict[str, Any]
    config: dict[str, Any]
    twin: str | None = None
    corpus: str = ""
    training_hash: str = ""

    @property
    def folder(self) -> str:
        """``<results_dir>/<study>/cells/<name>``."""
        return posixpath.join(self.config["results_dir"], self.config["study"], "cells", self.name)

    def training_config(self) -> dict[str, Any]:
        """See :func:`training_config`."""
        return training_config(self.config)


@dataclass
class Plan:
    """Every cell of a study, in grid order, and the corpora they read."""

    study: str
    results_dir: str
    cells: dict[str, Cell] = field(default_factory=dict)
    corpora: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def study_dir(self) -> str:
        return posixpath.join(self.results_dir, self.study)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``plan.json``."""
        return {
            "study": self.study,
            "results_dir": self.results_dir,
            "corpora": sorted(self.corpora),
            "cells": [
                {
                    "name": c.name,
                    "axes": c.axes,
                    "training_hash": c.training_hash,
                    "twin": c.twin,
                    "corpus": c.corpus,
                    "config": c.config,
                }
                for c in self.cells.values()
            ],
        }

    def write(self, path: str | Path | None = None) -> Path:
        """Write ``plan.json`` (default: ``<results_dir>/<study>/plan.json``); returns its path."""
        path = Path(path or Path(self.study_dir) / PLAN_JSON)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2, sort_keys=False) + "\n")
        return path

    def table(self) -> str:
        """The cells as a Markdown table: name, training hash, twin and corpus folder."""
        import pandas as pd

        rows = [
            {
                "cell": c.name,
                "training": c.training_hash,
                "sr_off_twin": c.twin or "",
                "corpus": Path(c.corpus).name,
            }
            for c in self.cells.values()
        ]
        return pd.DataFrame(rows).to_markdown(index=False)


# Data keys that act when a corpus is read for training or checked, not on what it holds.
_CORPUS_RUNTIME_KEYS = ("min_train_length", "dynamic_mixing", "sum_tolerance", "check_sample")


def corpus_spec(data: dict[str, Any]) -> dict[str, Any]:
    """What ``make-corpus`` is given for one corpus folder: the resolved ``data`` section without
    the keys that only act at training time, so editing them never rebuilds the corpus."""
    return {"data": {k: v for k, v in data.items() if k not in _CORPUS_RUNTIME_KEYS}}


def _excluded(axes: dict[str, Any], exclude: list[dict[str, Any]]) -> bool:
    return any(
        all(
            axes.get(axis) in (want if isinstance(want, list) else [want])
            for axis, want in item.items()
        )
        for item in exclude
    )


def _axis_order(grid: dict[str, list], exclude: list[dict[str, Any]]) -> list[str]:
    """Folder order: separator, factor, the other axes as written, seed last."""
    for axis in list(grid) + [a for item in exclude for a in item]:
        if _axis_key(axis) != axis and _axis_key(axis) in grid:
            raise ConfigError(f"grid axis {axis!r} is given twice (also as {_axis_key(axis)})")
    for item in exclude:
        unknown = sorted(set(item) - set(grid))
        if unknown:
            raise ConfigError(f"exclude names axis {unknown} that is not in grid {list(grid)}")
    order = [a for a in ("separator", "factor") if a in grid]
    order += [a for a in grid if a not in ("separator", "factor", "seed")]
    return order + (["seed"] if "seed" in grid else [])


def _twin_key(axes: dict[str, Any]) -> tuple:
    return tuple((a, v) for a, v in axes.items() if a not in SR_AXES)


def plan_study(study: dict[str, Any], config_dir: Path = CONFIG_DIR) -> Plan:
    """Expand a study config (not yet validated) into its :class:`Plan`.

    Every problem is a :class:`ConfigError` raised before anything runs: a bad key or value
    (named as a dotted path, with the cell when the grid made it), an unknown preset, an axis
    given twice, an exclude naming no axis, a staged SR cell without an SR-off twin, a grid that
    leaves no cell, a real corpus whose folder is missing.
    """
    from sfsrnet.data import corpus_folder, resolve_corpus

    study = cfg.validate(study, source="config")
    grid, exclude = study["grid"], study["exclude"]
    order = _axis_order(grid, exclude)
    plan = Plan(study=study["study"], results_dir=study["results_dir"])
    meaningless = 0
    for values in itertools.product(*(grid[a] for a in order)):
        axes = dict(zip(order, values, strict=True))
        if _excluded(axes, exclude):
            continue
        name = posixpath.join(*(cell_label(a, v) for a, v in axes.items())) if axes else "single"
        config = copy.deepcopy(study)
        del config["grid"], config["exclude"]
        for axis, value in axes.items():
            cfg.set_path(config, _axis_key(axis), value)
        config["cell"] = {"name": name, "axes": axes}
        try:
            config = resolve_presets(cfg.validate(config, source=f"cell {name}"), config_dir)
            config["data"] = resolve_corpus(config)
        except ConfigError as err:
            if f"cell {name}" in str(err):
                raise
            raise ConfigError(f"cell {name}: {err}") from err
        needs_sr = CONTROL_NEEDS_SR.get(config["sr"]["control"])
        if needs_sr is not None and needs_sr != config["sr"]["enabled"]:
            meaningless += 1  # refine without SR, or budget with SR: nothing to control
            continue
        plan.cells[name] = Cell(name, axes, config, corpus=corpus_folder(config["data"]))
        plan.corpora.setdefault(plan.cells[name].corpus, config["data"])
    if meaningless:
        log.info(
            "plan: %d cell(s) left out: sr.control refine needs SR on, budget needs SR off",
            meaningless,
        )
    if not plan.cells:
        raise ConfigError("the grid and exclude of the config leave no cell to run")
    _pair_twins(plan)
    for cell in plan.cells.values():
        cell.training_hash = training_hash(training_part(cell.config))
    return plan


def _pair_twins(plan: Plan) -> None:
    """Give each SR-on cell and each control cell its plain SR-off twin (same axes but the
    SR-only ones and ``control``, with ``sr.control: none``); a staged SR cell and a budget cell
    start from the twin's checkpoint, so they must have one."""
    offs: dict[tuple, str] = {}
    for cell in plan.cells.values():
        if not cell.config["sr"]["enabled"] and cell.config["sr"]["control"] == "none":
            offs.setdefault(_twin_key(cell.axes), cell.name)
    for cell in plan.cells.values():
        sr = cell.config["sr"]
        budget = not sr["enabled"] and sr["control"] == "budget"
        if not (sr["enabled"] or budget):
            continue
        cell.twin = offs.get(_twin_key(cell.axes))
        if not budget and sr["training"] != "staged":
            continue
        if cell.twin is None:
            what = (
                "trains the SR-off twin further (sr.control: budget)"
                if budget
                else "trains SR on a frozen separator (sr.training: staged)"
            )
            raise ConfigError(
                f"cell {cell.name} {what} but the grid has no SR-off cell with the same other "
                "axes and sr.control none; add `sr: [off, on]` (and `none` to a control axis) "
                "to the grid or use sr.training: joint"
            )
        sr["init_from"] = posixpath.join(plan.cells[cell.twin].folder, "checkpoint.pt")
