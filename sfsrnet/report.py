"""Study tables from the cell folders alone (or from MLflow alone, see :func:`report_from_mlflow`).

A cell folder holds ``config.yaml`` (with ``cell.name`` and ``cell.axes``), ``metrics.csv``,
``bands.csv``, ``summary.json``, ``cost.json``, ``train.json`` and ``train_log.csv``; see
:mod:`sfsrnet.evaluate` and :mod:`sfsrnet.train`. Every table is written as CSV (raw numbers),
Markdown and LaTeX (booktabs) under ``<study>/tables``; the plots go to ``<study>/plots``.

Statistics: sources are averaged within an utterance first; means come with a 95 % percentile
bootstrap interval over utterances (two-stage, seeds then utterances, when a configuration has
several seeds); "SR on" is compared with its "SR off" twin on the same utterances and seeds, by
the bootstrap interval of the difference and a Wilcoxon signed-rank test. Control cells
(``sr.control``: ``refine``, ``budget``) are compared the same way (:data:`COMPARISONS`), and
every p-value column gets a Holm adjustment across the rows of its table (``*_p_holm``).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from sfsrnet.config import load_yaml
from sfsrnet.data.identity import read_manifest
from sfsrnet.errors import DataError
from sfsrnet.evaluate import BANDS_CSV, COST_JSON, SUMMARY_JSON, UTTERANCE_CSV
from sfsrnet.stats import bootstrap_ci, holm, paired_p_value
from sfsrnet.study import SR_AXES

log = logging.getLogger(__name__)

TABLE_METRICS = {"si_snr_i": "SI-SNRi", "sdr_i": "SDRi"}
# Columns every cell has, whether or not they are grid axes.
FIXED = ("separator", "factor", "sr", "seed", "control")
# The cells a row of the paired tables compares: the plain SR-off twin, plain SR on, and the
# controls (sr.control refine: SR restricted below the low-rate Nyquist; budget: the SR-off twin
# trained further). Keyed by (SR on, sr.control).
GROUPS = {(False, "none"): "off", (True, "none"): "on", (True, "refine"): "refine"}
GROUPS[(False, "budget")] = "budget"
LEVELS = {"off": "SR off", "on": "SR on", "refine": "refine only", "budget": "budget"}
# Paired differences (column infix, later group - earlier group, shown label). ``delta`` is the
# SR gain; refine_gain + restoration = delta; beyond_budget = delta - budget_gain.
COMPARISONS = {
    "delta": ("on", "off", "Δ SR (on - off)"),
    "refine_gain": ("refine", "off", "Δ refinement (refine - off)"),
    "restoration": ("on", "refine", "Δ restoration (on - refine)"),
    "budget_gain": ("budget", "off", "Δ budget (budget - off)"),
    "beyond_budget": ("on", "budget", "Δ SR beyond budget (on - budget)"),
}


@dataclass
class Study:
    """Everything the tables need, read from a study's cell folders.

    ``cells``: one row per cell (``cell``, the key columns, ``seed``, cost and training fields);
    ``utterances``: one row per (cell, utterance, source) with the metrics of ``metrics.csv``;
    ``bands``: one row per (cell, utterance, source, band) from ``bands.csv``;
    ``curves``: one row per (cell, epoch) from ``train_log.csv``.
    ``keys`` are the columns that name a configuration: separator, factor and every other grid
    axis but ``sr`` and ``seed``.
    """

    name: str
    keys: list[str]
    cells: pd.DataFrame
    utterances: pd.DataFrame
    bands: pd.DataFrame
    curves: pd.DataFrame
    corpus: str
    corpora: list[dict[str, Any]] = field(default_factory=list)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def corpus_identity(data: dict[str, Any]) -> dict[str, Any]:
    """``corpus`` (the corpus folder's name, e.g. ``embedded-<key>``), ``corpus_key`` and
    ``engines`` of the corpus a cell's resolved ``data`` section read, from the corpus's
    ``manifest.json``; without a manifest (a moved or deleted corpus), what the config says."""
    folder = data.get("root") if data.get("corpus") == "embedded" else data.get("prepared")
    manifest = read_manifest(folder) if folder and Path(folder).is_dir() else None
    engines = (manifest or {}).get("engines")
    if engines is None and data.get("corpus") == "embedded":
        engines = data.get("embedded", {}).get("engines")
    return {
        "corpus": Path(folder).name if folder else data.get("corpus"),
        "corpus_key": (manifest or {}).get("key"),
        "engines": ", ".join(engines) if isinstance(engines, list) else (engines or ""),
    }


def _corpus_line(corpora: list[dict[str, Any]]) -> str:
    """``Corpus: embedded-<key> (engines: espeak)``, one entry per corpus of the study."""
    parts = []
    for item in corpora:
        text = item["corpus"]
        if item["corpus_key"] and item["corpus_key"] not in text:
            text += f" (key {item['corpus_key']})"
        if item["engines"]:
            text += f" (engines: {item['engines']})"
        parts.append(text)
    return f"Corpus: {'; '.join(parts)}\n\n" if parts else ""


def read_study(study_dir: str | Path) -> Study:
    """Read every evaluated cell (a folder under ``study_dir/cells`` with ``summary.json``)."""
    study_dir = Path(study_dir)
    cell_dirs = sorted(p.parent for p in (study_dir / "cells").rglob(SUMMARY_JSON))
    if not cell_dirs:
        raise DataError(f"no evaluated cell under {study_dir / 'cells'}: nothing to report")
    axes: list[str] = []
    cells, utts, bands, curves = [], [], [], []
    corpora = set()
    for cell_dir in cell_dirs:
        config = load_yaml(cell_dir / "config.yaml")
        cell_axes = config.get("cell", {}).get("axes", {})
        axes += [a for a in cell_axes if a not in axes]
        name = config.get("cell", {}).get("name", cell_dir.name)
        row: dict[str, Any] = {
            "cell": name,
            "separator": config["separator"]["name"],
            "factor": config["system"]["factor"],
            "sr": bool(config["sr"]["enabled"]),
            "seed": config["seed"],
            "control": config["sr"].get("control", "none"),
            "mode": config["system"]["mode"],
            **{a: v for a, v in cell_axes.items() if a not in FIXED},
            "sr_trained": (config["sr"]["training"] if config["sr"]["enabled"] else None),
            "epochs": config["train"]["epochs"],
        }
        row |= corpus_identity(config["data"])
        row |= {f"train_{k}": v for k, v in _read_json(cell_dir / "train.json").items()}
        row |= _read_json(cell_dir / COST_JSON)
        cells.append(row)
        ident = {"cell": name}
        table = pd.read_csv(cell_dir / UTTERANCE_CSV)
        utts.append(table.assign(**ident))
        if (cell_dir / BANDS_CSV).is_file():
            bands.append(pd.read_csv(cell_dir / BANDS_CSV).assign(**ident))
        if (cell_dir / "train_log.csv").is_file():
            curves.append(pd.read_csv(cell_dir / "train_log.csv").assign(**ident))
        corpora.add(config["data"]["corpus"])
    keys = ["separator", "factor"] + [a for a in axes if a not in FIXED]
    cells_df = pd.DataFrame(cells)

    def with_keys(frames: list[pd.DataFrame]) -> pd.DataFrame:
        if not frames:
            return pd.DataFrame(columns=["cell", *keys, "sr", "control", "seed"])
        frame = pd.concat(frames, ignore_index=True)
        columns = ["cell", *keys, "sr", "control", "seed"]
        return frame.merge(cells_df[columns], on="cell", how="left")

    return Study(
        name=study_dir.name,
        keys=keys,
        cells=cells_df,
        utterances=with_keys(utts),
        bands=with_keys(bands),
        curves=with_keys(curves),
        corpus=", ".join(sorted(corpora)),
        corpora=(
            cells_df[["corpus", "corpus_key", "engines"]]
            .drop_duplicates()
            .replace({np.nan: None})
            .to_dict("records")
        ),
    )


def long_table(study: Study) -> pd.DataFrame:
    """Every (cell, utterance, source) row with the cell's key columns, SR state and seed."""
    first = ["cell", *study.keys, "sr", "control", "seed"]
    rest = [c for c in study.utterances.columns if c not in first]
    return study.utterances[first + rest]


def _matrix(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    """``(seed, utterance)`` matrix of ``value`` averaged over sources (and anything else)."""
    per_utt = frame.groupby(["seed", "utterance"])[value].mean()
    return per_utt.unstack("utterance")


def _configurations(study: Study) -> list[tuple[dict[str, Any], dict[str, list[str]]]]:
    """``(key values, cells by group)`` per row of the paired tables, in grid order; the groups
    are :data:`GROUPS`' values (``off``, ``on``, ``refine``, ``budget``), each a list of cells.

    An SR-on configuration (plain or refine) is paired with the SR-off cells (plain or budget)
    that share its key values but those of the SR-only axes (``heuristic``, ``sr_training``);
    an SR-off configuration without any SR-on partner gets a row of its own.
    """
    keys = study.keys
    base = [k for k in keys if k not in SR_AXES]
    cells = study.cells.assign(
        group=[
            GROUPS.get((sr, c), "")
            for sr, c in zip(study.cells.sr, study.cells.control, strict=True)
        ]
    )
    rows: dict[tuple, tuple[dict[str, Any], dict[str, list[str]]]] = {}
    paired_off: set[tuple] = set()
    off_by_base: dict[tuple, dict[str, list[str]]] = {}
    for _, cell in cells[~cells.sr].iterrows():
        group = off_by_base.setdefault(tuple(cell[base]), {"off": [], "budget": []})
        group.setdefault(cell.group, []).append(cell.cell)
    for _, cell in cells[cells.sr].iterrows():
        key = tuple(cell[keys])
        if key not in rows:
            base_key = tuple(cell[base])
            paired_off.add(base_key)
            groups = {g: list(c) for g, c in off_by_base.get(base_key, {}).items()}
            rows[key] = (dict(zip(keys, key, strict=True)), groups)
        rows[key][1].setdefault(cell.group, []).append(cell.cell)
    for _, cell in cells[~cells.sr].iterrows():
        base_key = tuple(cell[base])
        if base_key in paired_off:
            continue
        key = tuple(cell[keys])
        if key not in rows:
            rows[key] = (dict(zip(keys, key, strict=True)), {})
        rows[key][1].setdefault(cell.group, []).append(cell.cell)
    # Grid order: a row sits where its first cell does.
    order = {name: i for i, name in enumerate(cells.cell)}
    ranked = sorted(
        rows.values(), key=lambda r: min(order[c] for group in r[1].values() for c in group)
    )
    # Each SR-off cell once per twin; with an SR-only axis on the off side, keep its first value.
    out = []
    for values, groups in ranked:
        for side in ("off", "budget"):
            seen, unique = set(), []
            for name in groups.get(side, []):
                seed = int(cells.loc[cells.cell == name, "seed"].iloc[0])
                if seed not in seen:
                    seen.add(seed)
                    unique.append(name)
            groups[side] = unique
        out.append((values, {g: groups.get(g, []) for g in LEVELS}))
    return out


def _paired(mats: dict[str, pd.DataFrame | None], prefix: str) -> dict[str, Any]:
    """Mean and bootstrap interval of each group's ``(seed, utterance)`` matrix, and of each
    paired difference of :data:`COMPARISONS` (on the seeds and utterances both groups have)
    with the Wilcoxon p of the pairs (``<prefix>_p`` for the SR gain, ``<prefix>_<name>_p``
    for the others). Groups without cells are NaN."""
    row: dict[str, Any] = {}
    for label in LEVELS:
        mat = mats.get(label)
        mean, low, high = bootstrap_ci(mat.to_numpy()) if mat is not None else (np.nan,) * 3
        row |= {f"{prefix}_{label}": mean, f"{prefix}_{label}_low": low}
        row[f"{prefix}_{label}_high"] = high
    for name, (later, earlier, _) in COMPARISONS.items():
        a, b = mats.get(earlier), mats.get(later)
        if a is not None and b is not None:
            seeds = a.index.intersection(b.index)
            utts = a.columns.intersection(b.columns)
            a, b = a.loc[seeds, utts], b.loc[seeds, utts]
            mean, low, high = bootstrap_ci((b - a).to_numpy())
            p = paired_p_value(b.mean(axis=0).to_numpy(), a.mean(axis=0).to_numpy())
        else:
            mean = low = high = p = np.nan
        row |= {f"{prefix}_{name}": mean, f"{prefix}_{name}_low": low}
        row[f"{prefix}_{name}_high"] = high
        row[_p_column(prefix, name)] = p
    return row


def _p_column(prefix: str, name: str) -> str:
    return f"{prefix}_p" if name == "delta" else f"{prefix}_{name}_p"


def _finish(table: pd.DataFrame, prefixes: list[str]) -> pd.DataFrame:
    """Drop the columns of control groups no row has, then add ``<p column>_holm``: the Holm
    adjustment of each p-value column across the table's rows (the family the reader scans)."""
    if table.empty:
        return table
    drop = []
    for prefix in prefixes:
        for group in ("refine", "budget"):
            if table[f"{prefix}_{group}"].isna().all():
                drop += [c for c in table.columns if c.startswith(f"{prefix}_{group}")]
                for name, (later, earlier, _) in COMPARISONS.items():
                    if group in (later, earlier):
                        drop += [f"{prefix}_{name}{s}" for s in ("", "_low", "_high")]
                        drop.append(_p_column(prefix, name))
    table = table.drop(columns=sorted(set(drop) & set(table.columns)))
    for prefix in prefixes:
        for name in COMPARISONS:
            column = _p_column(prefix, name)
            if column in table.columns:
                at = table.columns.get_loc(column) + 1
                table.insert(at, f"{column}_holm", holm(table[column].to_numpy(dtype=float)))
    return table


def ablation_table(study: Study) -> pd.DataFrame:
    """Rows: configurations (separator x factor x other axes). Columns per metric: the mean and
    ``_low``/``_high`` of the 95 % bootstrap interval of SR off, on and of the control cells
    present (``refine``, ``budget``), of the paired differences of :data:`COMPARISONS`
    (``delta`` = on - off, ``refine_gain``, ``restoration`` = on - refine, ``budget_gain``,
    ``beyond_budget`` = on - budget) with their Wilcoxon p (raw, and ``_holm`` adjusted across
    the rows). Columns of a control no configuration has are left out.
    """
    utt = study.utterances
    rows = []
    for values, groups in _configurations(study):
        row = dict(values)
        names = [c for group in groups.values() for c in group]
        for metric in TABLE_METRICS:
            mats = {g: _matrix(utt[utt.cell.isin(c)], metric) for g, c in groups.items() if c}
            row |= _paired(mats, metric)
        row["n_seeds"] = len(set(study.cells[study.cells.cell.isin(names)].seed))
        row["n_utterances"] = int(utt[utt.cell.isin(names)].utterance.nunique())
        rows.append(row)
    return _finish(pd.DataFrame(rows), list(TABLE_METRICS))


def band_table(study: Study) -> pd.DataFrame:
    """Band SNR per configuration and band, in :func:`ablation_table`'s layout (Holm across
    every row of the band table).

    ``above_low_nyquist`` is True / False, or None (shown "n/a") for a configuration whose
    cells all run in stride mode: their separator runs at the full rate, so no band was removed
    by resampling and there is nothing above a low-rate Nyquist to restore. Bands whose
    reference holds too little energy are NaN in ``bands.csv`` and left out.
    """
    bands = study.bands
    cells = study.cells
    rows = []
    for values, groups in _configurations(study):
        names = [c for group in groups.values() for c in group]
        stride = bool((cells[cells.cell.isin(names)]["mode"] == "stride").all())
        sub = bands[bands.cell.isin(names)]
        edges = sub[["band_lo_hz", "band_hi_hz"]].drop_duplicates()
        for _, (lo, hi) in edges.sort_values("band_lo_hz").iterrows():
            band = sub[(sub.band_lo_hz == lo) & (sub.band_hi_hz == hi)]
            mats = {g: _matrix(band[band.cell.isin(c)], "band_snr") for g, c in groups.items() if c}
            row = dict(values) | {"band_lo_hz": lo, "band_hi_hz": hi}
            row["above_low_nyquist"] = None if stride else bool(band.above_low_nyquist.any())
            rows.append(row | _paired(mats, "band_snr"))
    return _finish(pd.DataFrame(rows), ["band_snr"])


COST_COLUMNS = {
    "params_separator": "separator params (M)",
    "params_sr": "SR params (M)",
    "macs_per_second_separator": "separator GMAC/s",
    "macs_per_second_sr": "SR GMAC/s",
    "train_median_step_seconds": "train step (s)",
    "rtf_without_sr": "RTF without SR",
    "rtf": "RTF",
    "peak_rss_mib": "peak RSS (MiB)",
    "peak_cuda_mib": "peak CUDA (MiB)",
    "train_train_seconds": "train time (s)",
}


def cost_table(study: Study) -> pd.DataFrame:
    """One row per configuration and SR state: parameters, MACs per second of audio, training
    step time, real-time factor and peak memory, separator and SR apart (mean over seeds).

    ``trained`` says what the training step updated: the separator, SR alone (staged) or both.
    """
    cells = study.cells.copy()
    cells["trained"] = [
        "separator" if not sr else ("SR only" if how == "staged" else "separator + SR")
        for sr, how in zip(cells.sr, cells.sr_trained, strict=True)
    ]
    if "rtf_without_sr" in cells.columns:  # without SR, the system's RTF is the separator's
        cells["rtf_without_sr"] = cells.rtf_without_sr.where(cells.sr, cells.rtf)
    columns = [c for c in COST_COLUMNS if c in cells.columns]
    # Control cells apart from the plain ones (a budget cell trains longer than its twin).
    controls = ["control"] if (cells.control != "none").any() else []
    group = [*study.keys, "sr", *controls, "trained"]
    table = cells.groupby(group, sort=False, dropna=False)[columns].mean().reset_index()
    table.insert(
        len(group), "n_seeds", cells.groupby(group, sort=False, dropna=False).size().to_numpy()
    )
    return table


def published_results() -> dict[str, Any]:
    """The published numbers of ``sfsrnet/published.yaml`` (PAPER.md's tables)."""
    text = resources.files("sfsrnet").joinpath("published.yaml").read_text()
    return yaml.safe_load(text)


def paper_table(study: Study, ablation: pd.DataFrame) -> pd.DataFrame:
    """Each published result beside this study's matching configuration (when it has one).

    The published numbers are THEIRS (their corpus, their training budget); ours come from this
    study's corpus and budget. The table is for orientation, not a like-for-like comparison.
    """
    published = published_results()
    rows = []
    for entry in published["results"]:
        match = entry["match"]
        candidates = ablation
        for key, want in match.items():
            if key == "sr":
                continue
            if key not in candidates.columns:
                candidates = candidates.iloc[0:0]
            else:
                candidates = candidates[candidates[key] == want]
        side = "on" if match.get("sr") else "off"
        theirs = {
            "published model": entry["model"],
            "published corpus": entry["corpus"],
            "published SI-SNRi": entry.get("si_snr_i", np.nan),
            "published SDRi": entry.get("sdr_i", np.nan),
        }
        found = False
        for _, ours in candidates.iterrows():
            if np.isnan(ours[f"si_snr_i_{side}"]):
                continue
            found = True
            config = " ".join(f"{k}={ours[k]}" for k in study.keys)
            rows.append(
                theirs
                | {
                    "our configuration": f"{config} sr={side}",
                    "our corpus": study.corpus,
                    "our SI-SNRi": ours[f"si_snr_i_{side}"],
                    "our SDRi": ours[f"sdr_i_{side}"],
                }
            )
        if not found:
            rows.append(
                theirs
                | {
                    "our configuration": "not in this study",
                    "our corpus": study.corpus,
                    "our SI-SNRi": np.nan,
                    "our SDRi": np.nan,
                }
            )
    return pd.DataFrame(rows)


def cells_table(study: Study) -> pd.DataFrame:
    """One row per cell: SI-SNRi and SDRi with bootstrap intervals, params, training minutes."""
    rows = []
    for _, cell in study.cells.iterrows():
        sub = study.utterances[study.utterances.cell == cell.cell]
        row = {"cell": cell.cell, **{k: cell[k] for k in study.keys}, "sr": cell.sr}
        row["seed"] = cell.seed
        for metric in TABLE_METRICS:
            mean, low, high = bootstrap_ci(_matrix(sub, metric).to_numpy())
            row |= {metric: mean, f"{metric}_low": low, f"{metric}_high": high}
        row["n_utterances"] = int(sub.utterance.nunique())
        row["params"] = cell.get("train_n_params")
        row["train_minutes"] = round(cell.get("train_train_seconds", np.nan) / 60, 2)
        row |= {k: cell.get(k) for k in ("corpus", "corpus_key", "engines")}
        rows.append(row)
    return pd.DataFrame(rows)


# --- presentation -------------------------------------------------------------------------


def _value(mean: float, low: float, high: float, signed: bool = False) -> str:
    if not np.isfinite(mean):
        return "–"
    text = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    if np.isfinite(low):
        text += f" [{low:.2f}, {high:.2f}]"
    return text


def _p(p: float) -> str:
    return "–" if not np.isfinite(p) else f"{p:.2g}"


def _on_off(values: pd.Series) -> pd.Series:
    return values.map({True: "on", False: "off"}) if values.dtype == bool else values


def _show_keys(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return pd.DataFrame({k: _on_off(table[k]) for k in keys if k in table.columns})


def show_ablation(table: pd.DataFrame, keys: list[str], prefixes: dict[str, str]) -> pd.DataFrame:
    """The human view of a paired table: ``mean [low, high]`` per group and difference present,
    each difference followed by its Holm-adjusted p (the raw p stays in the CSV)."""
    shown = _show_keys(table, keys)
    for prefix, label in prefixes.items():
        for group, title in LEVELS.items():
            cols = [f"{prefix}_{group}{s}" for s in ("", "_low", "_high")]
            if cols[0] in table.columns:
                shown[f"{label} {title}"] = [_value(*v) for v in table[cols].to_numpy()]
        for name, (_, _, title) in COMPARISONS.items():
            cols = [f"{prefix}_{name}{s}" for s in ("", "_low", "_high")]
            if cols[0] not in table.columns:
                continue
            shown[f"{label} {title}"] = [_value(*v, signed=True) for v in table[cols].to_numpy()]
            holm_column = f"{_p_column(prefix, name)}_holm"
            suffix = "p" if name == "delta" else f"p {name.replace('_', ' ')}"
            shown[f"{label} {suffix} (Holm)"] = [_p(p) for p in table[holm_column]]
    return shown


def _show_bands(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    shown = _show_keys(table, keys)
    shown["band (Hz)"] = [
        f"{lo:.0f}–{hi:.0f}" for lo, hi in table[["band_lo_hz", "band_hi_hz"]].to_numpy()
    ]
    shown["above low Nyquist"] = [
        "n/a (stride)" if v is None or v != v else ("yes" if v else "no")
        for v in table.above_low_nyquist
    ]
    return pd.concat([shown, show_ablation(table, [], {"band_snr": "band SNR"})], axis=1)


def _show_cost(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    shown = _show_keys(table, [*keys, "sr", "control", "trained", "n_seeds"])
    scale = {"params_separator": 1e6, "params_sr": 1e6}
    scale |= {"macs_per_second_separator": 1e9, "macs_per_second_sr": 1e9}
    for column, label in COST_COLUMNS.items():
        if column in table.columns:
            values = table[column] / scale.get(column, 1)
            digits = 3 if column.startswith(("rtf", "train_median", "params", "macs")) else 1
            shown[label] = [f"{v:.{digits}f}" if np.isfinite(v) else "–" for v in values]
    return shown


def _show_paper(table: pd.DataFrame) -> pd.DataFrame:
    shown = table.copy()
    for column in ("published SI-SNRi", "published SDRi", "our SI-SNRi", "our SDRi"):
        shown[column] = [f"{v:.2f}" if np.isfinite(v) else "–" for v in table[column]]
    return shown


def _show_cells(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    shown = pd.concat([table[["cell"]], _show_keys(table, [*keys, "sr", "seed"])], axis=1)
    for metric, label in TABLE_METRICS.items():
        cols = [metric, f"{metric}_low", f"{metric}_high"]
        shown[f"{label} (dB)"] = [_value(*v) for v in table[cols].to_numpy()]
    shown["utterances"] = table.n_utterances
    shown["params"] = table.params
    shown["train minutes"] = table.train_minutes
    if "corpus" in table:
        shown["corpus"] = table.corpus
        shown["engines"] = table.engines
    return shown


def _latex(shown: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs table for pdflatex: special characters escaped, no Unicode left."""
    styler = shown.style.hide(axis="index").format(escape="latex")
    styler = styler.format_index(escape="latex", axis=1)
    tex = styler.to_latex(hrules=True, caption=caption, label=f"tab:{label}", position="t")
    for char, macro in (("Δ", r"$\Delta$"), ("–", "--"), ("×", r"$\times$")):
        tex = tex.replace(char, macro)
    return tex


CAPTIONS = {
    "ablation": "SI-SNRi and SDRi (dB) with and without the SR add-on: mean [95 % bootstrap "
    "interval over utterances (and seeds)], the difference on the same utterances, and the "
    "Wilcoxon signed-rank p-value of the pairs, Holm-adjusted across the rows of the table (raw "
    "p in the CSV). With control cells: refine only (SR output kept below the low-rate Nyquist), "
    "so SR gain = refinement + restoration (on - refine); budget (the SR-off twin trained the "
    "extra epochs staged SR gets), so SR beyond budget = on - budget.",
    "bands": "Band SNR (dB) per frequency band with and without SR (and the control cells), "
    "differences as in the ablation table, p Holm-adjusted across the rows; bands above the "
    "separator's low-rate Nyquist are what SR must restore (n/a in stride mode, where the "
    "separator runs at the full rate).",
    "cost": "Cost per configuration: parameters and multiply-accumulates per second of audio "
    "(separator and SR apart), median training step, real-time factor, peak memory.",
    "paper": "Published numbers (theirs: their corpus and training budget) beside this study's "
    "matching configurations (ours). For orientation only, not a like-for-like comparison.",
    "cells": "Every cell of the study: SI-SNRi and SDRi (dB) with 95 % bootstrap intervals, and "
    "the corpus it read (folder named by the corpus key, speech engines).",
}


def _write(out: Path, name: str, raw: pd.DataFrame, shown: pd.DataFrame, note: str = "") -> dict:
    paths = {f"{name}_{ext}": out / f"{name}.{ext}" for ext in ("csv", "md", "tex")}
    raw.to_csv(paths[f"{name}_csv"], index=False, float_format="%.8g")
    # No number parsing: tabulate would reformat the strings we formatted.
    markdown = shown.to_markdown(index=False, disable_numparse=True) if len(shown) else "(no rows)"
    paths[f"{name}_md"].write_text(f"{note}{markdown}\n")
    paths[f"{name}_tex"].write_text(_latex(shown, CAPTIONS[name], name))
    return paths


def build_report(
    study_dir: str | Path, out_dir: str | Path | None = None, plots_dir: str | Path | None = None
) -> dict[str, Path]:
    """Write every table (CSV, Markdown, LaTeX) and plot (PNG, SVG) of a study.

    Tables go to ``out_dir`` (default ``study_dir/tables``): ``long.csv`` (every utterance and
    source of every cell), ``ablation``, ``bands``, ``cost``, ``paper`` and ``cells``. Plots go
    to ``plots_dir`` (default ``out_dir/../plots``). Returns the written paths by name.
    """
    from sfsrnet import plots

    study_dir = Path(study_dir)
    study = read_study(study_dir)
    out = Path(out_dir) if out_dir else study_dir / "tables"
    plot_out = Path(plots_dir) if plots_dir else out.parent / "plots"
    out.mkdir(parents=True, exist_ok=True)
    keys = study.keys
    ablation = ablation_table(study)
    bands = band_table(study)
    cost = cost_table(study)
    paper = paper_table(study, ablation)
    cells = cells_table(study)
    paths = {"long": out / "long.csv"}
    long_table(study).to_csv(paths["long"], index=False, float_format="%.6f")
    corpus_line = _corpus_line(study.corpora)
    shown = show_ablation(ablation, keys, TABLE_METRICS)
    paths |= _write(out, "ablation", ablation, shown, corpus_line)
    paths |= _write(out, "bands", bands, _show_bands(bands, keys))
    paths |= _write(out, "cost", cost, _show_cost(cost, keys))
    source = published_results()["source"]
    note = (
        f"Published numbers are theirs ({source}); ours are from this study "
        f"(corpus: {study.corpus}).\n\n"
    )
    paths |= _write(out, "paper", paper, _show_paper(paper), note)
    paths |= _write(out, "cells", cells, _show_cells(cells, keys), corpus_line)
    paths |= plots.write_plots(study, bands, plot_out)
    log.info("report: %d cells, tables in %s, plots in %s", len(cells), out, plot_out)
    return paths


def report_from_mlflow(
    uri: str,
    study: str,
    out_dir: str | Path,
    experiment: str | None = None,
    plots_dir: str | Path | None = None,
) -> dict[str, Path]:
    """Rebuild every table and plot from an MLflow store alone.

    The study's parent run is found by its tags and each child run's artifacts (the cell
    folder's files, see :data:`sfsrnet.tracking.CELL_FILES`) are downloaded into a scratch
    folder laid out like the study's, then :func:`build_report` runs on it: the same numbers as
    from the cell folders.
    """
    import os

    from mlflow.artifacts import download_artifacts

    from sfsrnet.tracking import CELL_TAG, study_runs

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    _, children = study_runs(uri, study, experiment)
    if not children:
        raise DataError(f"MLflow store {uri}: study {study!r} has no cell runs")
    with tempfile.TemporaryDirectory(prefix="sfsrnet-report-") as tmp:
        root = Path(tmp) / study
        for run in children:
            cell = run.data.tags[CELL_TAG]
            target = root / "cells" / cell
            target.mkdir(parents=True, exist_ok=True)
            fetched = Path(
                download_artifacts(run_id=run.info.run_id, tracking_uri=uri, dst_path=tmp + "/dl")
            )
            for item in fetched.iterdir():
                if item.is_file():
                    shutil.move(str(item), target / item.name)
            shutil.rmtree(fetched, ignore_errors=True)
            if not (target / SUMMARY_JSON).is_file():
                log.warning("MLflow run of cell %s has no %s: left out", cell, SUMMARY_JSON)
                shutil.rmtree(target)
        out = Path(out_dir)
        return build_report(root, out, plots_dir or out.parent / "plots")
