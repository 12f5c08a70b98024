"""Evaluation of one trained cell on a corpus split: per-utterance metrics and a summary."""

from __future__ import annotations

import itertools
import json
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from sfsrnet.audio import load_audio, resample, write_wav
from sfsrnet.checkpoint import load_checkpoint
from sfsrnet.cost import peak_memory_mib, system_cost
from sfsrnet.data.folder import SeparationFolder
from sfsrnet.metrics import SdrBackend, band_edges, band_snr, utterance_metrics
from sfsrnet.stats import mean_ci

log = logging.getLogger(__name__)

METRICS = ("si_snr", "si_snr_i", "sdr", "sdr_i", "input_si_snr", "input_sdr")
UTTERANCE_CSV = "metrics.csv"
BANDS_CSV = "bands.csv"
COST_JSON = "cost.json"
SUMMARY_JSON = "summary.json"


def cell_band_edges(
    spec: dict[str, Any], band_edges_hz: tuple[float, ...] = (500.0, 1000.0, 2000.0)
) -> list[float]:
    """Band edges (Hz) of a system spec: ``band_edges_hz``, the low-rate Nyquist and the SR
    split, whether SR is on or off, so an SR-on cell and its SR-off twin share their bands.

    Specs written before ``sr_split_hz`` fall back to the SR network's split (or its default,
    a quarter of the rate).

    >>> spec = {"sample_rate": 16000, "factor": 2, "sr": None, "sr_split_hz": 4000.0}
    >>> cell_band_edges(spec) == cell_band_edges({**spec, "sr": {}})
    True
    """
    split = spec.get("sr_split_hz")
    if split is None:
        split = (spec.get("sr") or {}).get("split_hz") or spec["sample_rate"] / 4
    extra = (*band_edges_hz, float(split))
    return list(band_edges(spec["sample_rate"], spec["factor"], extra))


@torch.no_grad()
def evaluate_checkpoint(
    checkpoint: str | Path,
    root: str | Path,
    split: str = "test",
    out_dir: str | Path | None = None,
    max_utterances: int | None = None,
    n_examples: int = 0,
    sdr_backend: SdrBackend = "fast",
    progress: bool = True,
    band_edges_hz: tuple[float, ...] = (500.0, 1000.0, 2000.0),
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Separate every mixture of ``root/split`` with the checkpoint's system and score it.

    Returns the per-utterance table (one row per utterance and source; columns ``utterance``,
    ``source``, ``permutation`` and :data:`METRICS`) and a summary mapping (mean and 95 % CI of
    each metric over utterances). With ``out_dir`` both are written there, with the per-band
    table (``bands.csv``: band SNR per utterance, source and band; the edges are
    ``band_edges_hz`` plus the low-rate Nyquist and the SR split), the cost (``cost.json``:
    params, MACs per second, real-time factor with and without SR, median training step, peak
    memory) and ``n_examples`` separated examples under ``examples/``.
    """
    system, payload = load_checkpoint(checkpoint)
    spec = payload["spec"]
    dataset = SeparationFolder(
        root, split, spec["n_src"], spec["sample_rate"], limit=max_utterances
    )
    edges = cell_band_edges(spec, band_edges_hz)
    nyquist_low = spec["sample_rate"] / (2 * spec["factor"])
    # Only resampling removes the band above rate/(2*factor); a strided encoder runs at the full
    # rate, so there its bands are not "above the low-rate Nyquist" (the edge stays, as the
    # encoder's effective rate).
    removed = spec["factor"] > 1 and spec["mode"] == "resample"
    rows, band_rows = [], []
    start = time.monotonic()
    separate_seconds = 0.0
    audio_seconds = 0.0
    for i in tqdm(
        range(len(dataset)), desc=f"evaluate {split}", disable=not progress, mininterval=2
    ):
        mix, ref, name = dataset[i]
        t0 = time.perf_counter()
        est = system(mix[None])[0]
        separate_seconds += time.perf_counter() - t0
        audio_seconds += mix.shape[-1] / spec["sample_rate"]
        scores = utterance_metrics(mix, est, ref, sdr_backend)
        rows += [{"utterance": name, **row} for row in scores]
        aligned = est[[row["permutation"] for row in scores]]  # the pairing of the scores above
        snr = band_snr(aligned, ref, spec["sample_rate"], edges)
        for c in range(ref.shape[0]):
            for b, (lo, hi) in enumerate(itertools.pairwise(edges)):
                band_rows.append(
                    {
                        "utterance": name,
                        "source": c,
                        "band_lo_hz": lo,
                        "band_hi_hz": hi,
                        "above_low_nyquist": removed and lo >= nyquist_low,
                        "band_snr": float(snr[c, b]),
                    }
                )
        if out_dir is not None and i < n_examples:
            folder = Path(out_dir) / "examples" / name
            write_wav(folder / "mix.wav", mix, spec["sample_rate"])
            for c in range(spec["n_src"]):
                write_wav(folder / f"est{c + 1}.wav", est[c], spec["sample_rate"])
                write_wav(folder / f"ref{c + 1}.wav", ref[c], spec["sample_rate"])
    table = pd.DataFrame(rows)
    bands = pd.DataFrame(band_rows)
    per_utt = table.groupby("utterance")[list(METRICS)].mean()
    summary: dict[str, Any] = {
        "split": split,
        "n_utterances": int(per_utt.shape[0]),
        "sdr_backend": sdr_backend,
        "checkpoint_epoch": payload.get("epoch"),
        "seconds": round(time.monotonic() - start, 1),
        "real_time_factor": separate_seconds / max(audio_seconds, 1e-9),
    }
    for metric in METRICS:
        mean, half = mean_ci(per_utt[metric].to_numpy())
        summary[metric] = mean
        summary[f"{metric}_ci95"] = half
    summary["band_snr_missing"] = int(bands.band_snr.isna().sum())
    high = bands[bands.above_low_nyquist].groupby("utterance").band_snr.mean()
    mean, half = mean_ci(high.to_numpy()) if len(high) else (float("nan"), float("nan"))
    summary["band_snr_above_low_nyquist"] = mean
    summary["band_snr_above_low_nyquist_ci95"] = half
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        cost = system_cost(system)
        train_json = Path(checkpoint).parent / "train.json"
        if train_json.is_file():
            cost["median_train_step_seconds"] = json.loads(train_json.read_text()).get(
                "median_step_seconds"
            )
        cost |= peak_memory_mib()
        (out / COST_JSON).write_text(json.dumps(cost, indent=2))
        table.to_csv(out / UTTERANCE_CSV, index=False, float_format="%.6f")
        bands.to_csv(out / BANDS_CSV, index=False, float_format="%.6f")
        (out / SUMMARY_JSON).write_text(json.dumps(summary, indent=2))
    log.info(
        "%s: SI-SNRi %.2f dB, SDRi %.2f dB over %d utterances",
        split,
        summary["si_snr_i"],
        summary["sdr_i"],
        summary["n_utterances"],
    )
    return table, summary


@torch.no_grad()
def separate_files(
    checkpoint: str | Path, wavs: list[str | Path], out_dir: str | Path
) -> list[Path]:
    """Separate each mono audio file with the checkpoint's system; writes ``<stem>_s<c>.wav``.

    A file at another sample rate is resampled to the system's rate first (with the harness's
    resampler); the sources are written at the system's rate. Returns the written paths.
    """
    system, payload = load_checkpoint(checkpoint)
    rate = payload["spec"]["sample_rate"]
    out = Path(out_dir)
    written = []
    for wav in wavs:
        data, file_rate = load_audio(wav)
        mix = resample(torch.from_numpy(data), file_rate, rate)
        if file_rate != rate:
            log.info("%s: resampled from %d Hz to the model's %d Hz", wav, file_rate, rate)
        est = system(mix[None])[0]
        for c in range(est.shape[0]):
            path = out / f"{Path(wav).stem}_s{c + 1}.wav"
            write_wav(path, est[c], rate)
            written.append(path)
    return written
