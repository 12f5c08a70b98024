"""Plots of a study (PNG and SVG): band SNR against frequency, accuracy against cost, curves."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

if TYPE_CHECKING:
    from sfsrnet.report import Study

matplotlib.use("Agg")  # files only; no display on a cluster node
# Reproducible SVG files: no date, fixed ids.
plt.rcParams["svg.hashsalt"] = "sfsrnet"
_METADATA = {"svg": {"Date": None}, "png": {}}


def _save(fig: plt.Figure, out: Path, name: str) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for ext in ("png", "svg"):
        path = out / f"{name}.{ext}"
        fig.savefig(path, dpi=150, bbox_inches="tight", metadata=_METADATA[ext])
        paths[f"plot_{name}_{ext}"] = path
    plt.close(fig)
    return paths


def _panels(n: int) -> tuple[plt.Figure, np.ndarray]:
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def _factors(values: pd.Series) -> dict[int, tuple]:
    colours = plt.get_cmap("tab10")
    return {f: colours(i % 10) for i, f in enumerate(sorted(values.unique()))}


def band_plot(bands: pd.DataFrame, out: Path) -> dict[str, Path]:
    """Band SNR against band centre, one panel per separator, one line per factor, solid without
    and dashed with SR; the low-rate Nyquist of each factor is a dotted line.

    ``bands`` is :func:`sfsrnet.report.band_table`'s output.
    """
    separators = list(dict.fromkeys(bands.separator))
    fig, axes = _panels(len(separators))
    colour = _factors(bands.factor)
    for ax, separator in zip(axes, separators, strict=False):
        sub = bands[bands.separator == separator]
        for factor, rows in sub.groupby("factor", sort=True):
            rows = rows.sort_values("band_lo_hz")
            edges = np.append(rows.band_lo_hz.to_numpy(), rows.band_hi_hz.iloc[-1])
            for side, style in (("off", "-"), ("on", "--")):
                y = rows[f"band_snr_{side}"].to_numpy()
                if np.isfinite(y).any():
                    ax.stairs(
                        y,
                        edges,
                        ls=style,
                        lw=1.5,
                        color=colour[factor],
                        label=f"d={factor}, SR {side}",
                        baseline=None,
                    )
            # None in stride mode (nothing removed by resampling): no line drawn.
            below = rows.above_low_nyquist.map({True: True, False: False}).eq(False)
            nyquist = rows[below & rows.above_low_nyquist.notna()].band_hi_hz.max()
            if factor > 1 and np.isfinite(nyquist):
                ax.axvline(nyquist, color=colour[factor], ls=":", lw=1)
        ax.set_title(separator)
        ax.set_xlabel("frequency (Hz)")
        ax.set_ylabel("band SNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Band SNR without (solid) and with (dashed) SR; dotted: low-rate Nyquist")
    return _save(fig, out, "bands")


def cost_plot(study: Study, out: Path) -> dict[str, Path]:
    """SI-SNRi against MACs per second of audio (separator + SR), one point per cell."""
    cells = study.cells
    per_cell = study.utterances.groupby("cell").si_snr_i.mean()
    fig, ax = plt.subplots(figsize=(6, 4.5), layout="constrained")
    markers = dict(zip(dict.fromkeys(cells.separator), "osD^vP*X", strict=False))
    colour = _factors(cells.factor)
    for _, cell in cells.iterrows():
        macs = cell.get("macs_per_second_separator", np.nan) + (
            cell.get("macs_per_second_sr", 0.0) if cell.sr else 0.0
        )
        ax.scatter(
            macs / 1e9,
            per_cell[cell.cell],
            marker=markers[cell.separator],
            facecolors=colour[cell.factor] if cell.sr else "none",
            edgecolors=colour[cell.factor],
            s=40,
        )
    for separator, marker in markers.items():
        ax.scatter([], [], marker=marker, facecolors="none", edgecolors="k", label=separator)
    for factor, c in colour.items():
        ax.scatter([], [], marker="s", color=c, label=f"d={factor}")
    ax.scatter([], [], marker="o", facecolors="k", edgecolors="k", label="SR on (filled)")
    ax.set_xscale("log")
    ax.set_xlabel("GMAC per second of audio (separator + SR)")
    ax.set_ylabel("SI-SNRi (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Accuracy against inference cost (one point per cell)")
    return _save(fig, out, "cost")


def curves_plot(study: Study, out: Path) -> dict[str, Path]:
    """Training loss and validation SI-SNR per epoch, one column per separator."""
    curves = study.curves
    separators = list(dict.fromkeys(study.cells.separator))
    fig, axes = plt.subplots(
        2,
        len(separators),
        figsize=(4 * len(separators), 6),
        squeeze=False,
        sharex="col",
        layout="constrained",
    )
    colour = _factors(study.cells.factor)
    for col, separator in enumerate(separators):
        sub = curves[curves.separator == separator]
        for cell, rows in sub.groupby("cell", sort=False):
            first = rows.iloc[0]
            style = "--" if first.sr else "-"
            kwargs = {"color": colour[first.factor], "ls": style, "marker": ".", "lw": 1}
            axes[0, col].plot(rows.epoch, rows.train_loss, label=cell, **kwargs)
            axes[1, col].plot(rows.epoch, rows.valid_si_snr, **kwargs)
        axes[0, col].set_title(separator)
        axes[0, col].set_ylabel("training loss")
        axes[1, col].set_ylabel("validation SI-SNR (dB)")
        axes[1, col].set_xlabel("epoch")
        axes[1, col].xaxis.set_major_locator(MaxNLocator(integer=True))
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
        axes[0, col].legend(fontsize=6)
    fig.suptitle("Training curves (dashed: SR on)")
    return _save(fig, out, "curves")


def write_plots(study: Study, bands: pd.DataFrame, out: str | Path) -> dict[str, Path]:
    """Every plot of a study into ``out``; returns the written paths by name."""
    out = Path(out)
    paths = band_plot(bands, out)
    paths |= cost_plot(study, out)
    paths |= curves_plot(study, out)
    return paths
