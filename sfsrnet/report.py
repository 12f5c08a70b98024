"""Study tables from the cell folders alone: a long table of every utterance and an ablation table.

A cell folder holds ``config.yaml`` (with ``cell.name`` and ``cell.axes``), ``metrics.csv`` and
``summary.json``; see :mod:`sfsrnet.evaluate`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from sfsrnet.config import load_yaml
from sfsrnet.errors import DataError
from sfsrnet.evaluate import SUMMARY_JSON, UTTERANCE_CSV
from sfsrnet.stats import mean_ci

log = logging.getLogger(__name__)

TABLE_METRICS = {"si_snr_i": "SI-SNRi (dB)", "sdr_i": "SDRi (dB)"}


def long_table(cell_dirs: list[Path]) -> pd.DataFrame:
    """Every (cell, utterance, source) row with the cell's axis values as columns."""
    frames = []
    for cell_dir in cell_dirs:
        config = load_yaml(cell_dir / "config.yaml")
        cell = config.get("cell", {})
        table = pd.read_csv(cell_dir / UTTERANCE_CSV)
        table.insert(0, "cell", cell.get("name", cell_dir.name))
        for i, (axis, value) in enumerate(cell.get("axes", {}).items()):
            table.insert(1 + i, axis, value)
        frames.append(table)
    if not frames:
        raise DataError("no evaluated cell found: nothing to report")
    return pd.concat(frames, ignore_index=True)


def ablation_table(long: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: mean and 95 % CI (over utterances) of each metric in :data:`TABLE_METRICS`.

    Sources are averaged within an utterance first, so the interval is over utterances.
    """
    axes = [c for c in long.columns[1 : long.columns.get_loc("utterance")]]
    per_utt = long.groupby(["cell", *axes, "utterance"], sort=False)[list(TABLE_METRICS)].mean()
    rows = []
    for keys, group in per_utt.groupby(level=["cell", *axes], sort=False):
        row = dict(zip(["cell", *axes], keys, strict=True))
        for metric in TABLE_METRICS:
            mean, half = mean_ci(group[metric].to_numpy())
            row[metric] = mean
            row[f"{metric}_ci95"] = half
        row["n_utterances"] = len(group)
        rows.append(row)
    return pd.DataFrame(rows)


def _markdown(table: pd.DataFrame) -> str:
    shown = table.copy()
    for metric, label in TABLE_METRICS.items():
        shown[label] = [
            f"{m:.2f} ± {h:.2f}"
            for m, h in zip(table[metric], table[f"{metric}_ci95"], strict=True)
        ]
        shown = shown.drop(columns=[metric, f"{metric}_ci95"])
    return shown.to_markdown(index=False) + "\n"


def build_report(study_dir: str | Path, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Write ``long.csv``, ``ablation.csv`` and ``ablation.md`` for every evaluated cell.

    Cells are the folders under ``study_dir/cells`` that hold a ``summary.json``. Returns the
    written paths by name.
    """
    study_dir = Path(study_dir)
    out = Path(out_dir) if out_dir else study_dir / "tables"
    cell_dirs = sorted(p.parent for p in (study_dir / "cells").rglob(SUMMARY_JSON))
    long = long_table(cell_dirs)
    ablation = ablation_table(long)
    for cell_dir in cell_dirs:
        train = cell_dir / "train.json"
        if train.is_file():
            info = json.loads(train.read_text())
            name = load_yaml(cell_dir / "config.yaml").get("cell", {}).get("name", cell_dir.name)
            mask = ablation["cell"] == name
            ablation.loc[mask, "params"] = info.get("n_params")
            ablation.loc[mask, "train_minutes"] = round(info.get("train_seconds", 0) / 60, 2)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "long": out / "long.csv",
        "ablation_csv": out / "ablation.csv",
        "ablation_md": out / "ablation.md",
    }
    long.to_csv(paths["long"], index=False, float_format="%.6f")
    ablation.to_csv(paths["ablation_csv"], index=False, float_format="%.6f")
    paths["ablation_md"].write_text(_markdown(ablation))
    log.info("report: %d cells, tables in %s", len(ablation), out)
    return paths
