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
from sfsrnet.evaluate import BANDS_CSV, SUMMARY_JSON, UTTERANCE_CSV
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
        if (cell_dir / BANDS_CSV).is_file():
            bands = pd.read_csv(cell_dir / BANDS_CSV)
            high = bands[bands.above_low_nyquist].groupby(["utterance", "source"]).band_snr.mean()
            table = table.join(high.rename("band_snr_high"), on=["utterance", "source"])
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
    axes = list(long.columns[1 : long.columns.get_loc("utterance")])
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


SR_AXES = ("sr", "heuristic", "sr_training")
SR_METRICS = {"si_snr_i": "SI-SNRi", "sdr_i": "SDRi", "band_snr_high": "band SNR > low Nyquist"}


def sr_table(long: pd.DataFrame) -> pd.DataFrame | None:
    """SR off against SR on for every setting of the other axes, paired on the same utterances.

    One row per (other axes, metric): mean and 95 % CI of "off", "on" and their per-utterance
    difference, and the two-sided p-value of a paired t-test. ``None`` when the study has no
    ``sr`` axis with both values.
    """
    from scipy import stats

    if "sr" not in long.columns or long.sr.nunique() < 2:
        return None
    axes = [c for c in long.columns[1 : long.columns.get_loc("utterance")] if c not in SR_AXES]
    metrics = [m for m in SR_METRICS if m in long.columns]
    per_utt = long.groupby([*axes, "sr", "utterance"], sort=False)[metrics].mean().reset_index()
    rows = []
    for keys, group in per_utt.groupby(axes, sort=False):
        off = group[~group.sr.astype(bool)].set_index("utterance")
        on = group[group.sr.astype(bool)].set_index("utterance")
        shared = off.index.intersection(on.index)
        for metric in metrics:
            a, b = off.loc[shared, metric], on.loc[shared, metric]
            valid = a.notna() & b.notna()
            if not valid.any():
                continue
            a, b = a[valid].to_numpy(), b[valid].to_numpy()
            row = dict(zip(axes, keys if isinstance(keys, tuple) else (keys,), strict=True))
            row["metric"] = metric
            for label, values in (("off", a), ("on", b), ("delta", b - a)):
                row[label], row[f"{label}_ci95"] = mean_ci(values)
            row["p_value"] = float(stats.ttest_rel(b, a).pvalue) if len(a) > 1 else float("nan")
            row["n_utterances"] = len(a)
            rows.append(row)
    return pd.DataFrame(rows)


def _on_off(table: pd.DataFrame) -> pd.DataFrame:
    """Boolean axis values (YAML's on/off) shown as on/off."""
    shown = table.copy()
    for column in shown.columns:
        if shown[column].dtype == bool:
            shown[column] = shown[column].map({True: "on", False: "off"})
    return shown


def _sr_markdown(table: pd.DataFrame) -> str:
    shown = _on_off(table)
    shown["metric"] = shown.metric.map(SR_METRICS)
    for label in ("off", "on", "delta"):
        shown[f"SR {label} (dB)" if label != "delta" else "delta (dB)"] = [
            f"{m:+.2f} ± {h:.2f}" if label == "delta" else f"{m:.2f} ± {h:.2f}"
            for m, h in zip(table[label], table[f"{label}_ci95"], strict=True)
        ]
        shown = shown.drop(columns=[label, f"{label}_ci95"])
    shown["p (paired t)"] = [f"{p:.2g}" for p in table.p_value]
    return shown.drop(columns=["p_value"]).to_markdown(index=False) + "\n"


def _markdown(table: pd.DataFrame) -> str:
    shown = _on_off(table)
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
    sr = sr_table(long)
    if sr is not None:
        paths["sr_csv"], paths["sr_md"] = out / "sr.csv", out / "sr.md"
        sr.to_csv(paths["sr_csv"], index=False, float_format="%.6f")
        paths["sr_md"].write_text(_sr_markdown(sr))
    log.info("report: %d cells, tables in %s", len(ablation), out)
    return paths
