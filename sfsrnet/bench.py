"""Benchmarks (not tests): training-step time and peak memory of separators.

``python -m sfsrnet bench separators`` times a few training steps of every registered separator's
presets at several factors in both downsampling modes, each case in a fresh process so that its
peak memory is its own, and writes ``results/bench/separators.{csv,md}``.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import resource
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    import torch


def _step_case(case: dict[str, Any]) -> dict[str, Any]:
    """One case, in its own process: median step time and peak RSS growth while stepping."""
    import torch

    from sfsrnet.checkpoint import build_system
    from sfsrnet.losses import SeparationLoss

    torch.set_num_threads(case["threads"])
    torch.manual_seed(0)
    spec = {
        k: case[k]
        for k in ("separator", "separator_args", "n_src", "sample_rate", "factor", "mode")
    }
    system = build_system(spec).train()
    length = int(case["seconds"] * case["sample_rate"])
    ref = torch.randn(case["batch"], case["n_src"], length)
    mix = ref.sum(1)
    loss_fn = SeparationLoss(case["sample_rate"])
    optimizer = torch.optim.Adam(system.parameters(), lr=1e-4)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for i in range(case["steps"] + 1):
        t0 = time.perf_counter()
        loss = loss_fn(system(mix), ref, system.intermediate_estimates)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - t0)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "separator": case["separator"],
        "preset": case["preset"],
        "mode": case["mode"],
        "factor": case["factor"],
        "params_M": sum(p.numel() for p in system.parameters()) / 1e6,
        "batch": case["batch"],
        "seconds_audio": case["seconds"],
        "step_s": statistics.median(times),
        "peak_rss_growth_MiB": (rss_after - rss_before) / 1024,
        "peak_rss_MiB": rss_after / 1024,
    }


def bench_separators(
    out_dir: str | Path,
    presets: tuple[str, ...] = ("tiny", "published"),
    factors: tuple[int, ...] = (1, 2, 4, 8),
    modes: tuple[str, ...] = ("resample", "stride"),
    names: tuple[str, ...] | None = None,
    steps: int = 3,
    threads: int = 2,
) -> pd.DataFrame:
    """Time training steps of each separator preset; writes ``separators.csv`` and ``.md``.

    Tiny presets step on a batch of 4 two-second mixtures, published ones on one 1-second mixture
    (CPU-sized; the ratios across factors are what the table is for).
    """
    from sfsrnet.separators import list_separators
    from sfsrnet.study import preset_args

    cases = []
    for name in names or tuple(list_separators()):
        for preset in presets:
            for mode in modes:
                for factor in factors:
                    cases.append(
                        {
                            "separator": name,
                            "preset": preset,
                            "separator_args": preset_args("separator", name, preset),
                            "mode": mode,
                            "factor": factor,
                            "n_src": 2,
                            "sample_rate": 8000,
                            "batch": 4 if preset == "tiny" else 1,
                            "seconds": 2.0 if preset == "tiny" else 1.0,
                            "steps": steps,
                            "threads": threads,
                        }
                    )
    rows = []
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(1, mp_context=context, max_tasks_per_child=1) as pool:
        for case, row in zip(cases, pool.map(_step_case, cases), strict=True):
            rows.append(row)
            print(
                f"{case['separator']:>10} {case['preset']:>9} {case['mode']:>8} "
                f"d={case['factor']}: {row['step_s']:.3f} s/step, "
                f"+{row['peak_rss_growth_MiB']:.0f} MiB",
                flush=True,
            )
    table = pd.DataFrame(rows)
    base = table[table.factor == 1].set_index(["separator", "preset", "mode"]).step_s
    table["speedup_vs_d1"] = [
        base[(r.separator, r.preset, r.mode)] / r.step_s for r in table.itertuples()
    ]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "separators.csv", index=False, float_format="%.4f")
    (out / "separators.md").write_text(table.to_markdown(index=False, floatfmt=".3f") + "\n")
    return table


def _cost_case(case: dict[str, Any]) -> dict[str, Any]:
    """One system's cost (:func:`sfsrnet.cost.system_cost`), in its own process."""
    import torch

    from sfsrnet.checkpoint import build_system
    from sfsrnet.cost import system_cost

    torch.set_num_threads(case["threads"])
    keys = ("separator", "separator_args", "n_src", "sample_rate", "factor", "mode", "sr")
    cost = system_cost(build_system({k: case[k] for k in keys}), case["seconds"], case["repeats"])
    return {
        "separator": case["separator"],
        "preset": case["preset"],
        "factor": case["factor"],
        "separator_params_M": cost["params_separator"] / 1e6,
        "sr_params_M": cost["params_sr"] / 1e6,
        "separator_GMAC_per_s": cost["macs_per_second_separator"] / 1e9,
        "sr_GMAC_per_s": cost["macs_per_second_sr"] / 1e9,
        "rtf_without_sr": cost["rtf_without_sr"],
        "rtf_with_sr": cost["rtf"],
    }


def bench_sr_cost(
    out_dir: str | Path,
    presets: tuple[str, ...] = ("tiny", "published"),
    factor: int = 4,
    threads: int = 2,
    seconds: float = 2.0,
    repeats: int = 3,
) -> pd.DataFrame:
    """SR cost next to each separator's: writes ``sr_cost.csv`` and ``.md``.

    Each separator preset is paired with the SR preset of the same name, at ``factor`` in
    ``resample`` mode, 8 kHz, two sources. ``rtf`` is CPU seconds per second of audio.
    """
    from sfsrnet.separators import list_separators
    from sfsrnet.study import preset_args

    cases = []
    for name in list_separators():
        for preset in presets:
            cases.append(
                {
                    "separator": name,
                    "preset": preset,
                    "separator_args": preset_args("separator", name, preset),
                    "sr_preset": preset,
                    "sr": preset_args("sr", "sr", preset),
                    "factor": factor,
                    "mode": "resample",
                    "n_src": 2,
                    "sample_rate": 8000,
                    "threads": threads,
                    "seconds": seconds,
                    "repeats": repeats,
                }
            )
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(1, mp_context=context, max_tasks_per_child=1) as pool:
        rows = list(pool.map(_cost_case, cases))
    table = pd.DataFrame(rows)
    table["sr_share_of_macs"] = table.sr_GMAC_per_s / (
        table.sr_GMAC_per_s + table.separator_GMAC_per_s
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "sr_cost.csv", index=False, float_format="%.4f")
    (out / "sr_cost.md").write_text(table.to_markdown(index=False, floatfmt=".3f") + "\n")
    return table


def bench_metrics(
    out_dir: str | Path,
    root: str | Path,
    checkpoint: str | Path | None = None,
    n_utterances: int = 200,
) -> pd.DataFrame:
    """Our evaluator against Asteroid's ``get_metrics`` and against mir_eval on test utterances.

    Estimates come from ``checkpoint`` when given, else from a fixed degradation of the
    references (each source leaks 30 % of the other, plus noise at 20 dB). Per utterance it
    times :func:`sfsrnet.metrics.utterance_metrics` (SI-SNR and SDR of estimates and mixture),
    Asteroid's ``get_metrics(..., ["si_sdr", "sdr"], compute_permutation=True)`` and mir_eval's
    ``bss_eval_sources``, and records the largest SDR and SI-SNR differences in dB. Writes
    ``metrics.csv`` and ``metrics.md`` (a one-row summary).
    """
    import numpy as np
    import torch
    from asteroid.metrics import get_metrics

    from sfsrnet.checkpoint import load_checkpoint
    from sfsrnet.data.folder import SeparationFolder
    from sfsrnet.metrics import sdr as sdr_of
    from sfsrnet.metrics import utterance_metrics

    torch.set_num_threads(1)
    system = load_checkpoint(checkpoint)[0] if checkpoint else None
    data = SeparationFolder(root, "test", 2, 8000, limit=n_utterances)
    gen = torch.Generator().manual_seed(0)
    rows = []
    for i in range(len(data)):
        mix, ref, name = data[i]
        if system is not None:
            with torch.no_grad():
                est = system(mix[None])[0]
        else:
            est = ref + 0.3 * ref.flip(0)
            est = est + 0.1 * est.std() * torch.randn(est.shape, generator=gen)
        t0 = time.perf_counter()
        ours = utterance_metrics(mix, est, ref)
        t_ours = time.perf_counter() - t0
        m, r, e = mix.double().numpy(), ref.double().numpy(), est.double().numpy()
        t0 = time.perf_counter()
        theirs = get_metrics(
            m,
            r,
            e,
            sample_rate=8000,
            metrics_list=["si_sdr", "sdr"],
            average=False,
            compute_permutation=True,
        )
        t_asteroid = time.perf_counter() - t0
        perm = [row["permutation"] for row in ours]
        t0 = time.perf_counter()
        mir = sdr_of(e[perm], r, backend="mir_eval")
        mir_in = sdr_of(np.stack([m] * 2), r, backend="mir_eval")
        t_mir = time.perf_counter() - t0
        ours_sdr = np.array([row["sdr"] for row in ours])
        ours_si = np.array([row["si_snr"] for row in ours])
        rows.append(
            {
                "utterance": name,
                "ours_s": t_ours,
                "asteroid_s": t_asteroid,
                "mir_eval_s": t_mir,
                "max_diff_sdr_vs_mir_eval": float(np.abs(ours_sdr - mir).max()),
                "max_diff_input_sdr_vs_mir_eval": float(
                    np.abs(np.array([row["input_sdr"] for row in ours]) - mir_in).max()
                ),
                "max_diff_sdr_vs_asteroid": float(
                    np.abs(np.sort(ours_sdr) - np.sort(theirs["sdr"])).max()
                ),
                "max_diff_si_snr_vs_asteroid": float(
                    np.abs(np.sort(ours_si) - np.sort(theirs["si_sdr"])).max()
                ),
            }
        )
    table = pd.DataFrame(rows)
    summary = pd.DataFrame(
        [
            {
                "utterances": len(table),
                "ours_ms": 1000 * table.ours_s.mean(),
                "asteroid_ms": 1000 * table.asteroid_s.mean(),
                "mir_eval_ms": 1000 * table.mir_eval_s.mean(),
                "speedup_vs_asteroid": table.asteroid_s.sum() / table.ours_s.sum(),
                "max_diff_sdr_vs_mir_eval_dB": table.max_diff_sdr_vs_mir_eval.max(),
                "max_diff_input_sdr_vs_mir_eval_dB": table.max_diff_input_sdr_vs_mir_eval.max(),
                "max_diff_sdr_vs_asteroid_dB": table.max_diff_sdr_vs_asteroid.max(),
                "max_diff_si_snr_vs_asteroid_dB": table.max_diff_si_snr_vs_asteroid.max(),
            }
        ]
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "metrics.csv", index=False, float_format="%.6g")
    (out / "metrics.md").write_text(summary.to_markdown(index=False, floatfmt=".4g") + "\n")
    return summary


def _training_items_per_second(separator: str, batch: int, seconds: float, steps: int) -> float:
    """Training mixtures per second that a tiny preset consumes (one process, CPU)."""
    import torch

    from sfsrnet.checkpoint import build_system
    from sfsrnet.losses import SeparationLoss
    from sfsrnet.study import preset_args

    args = preset_args("separator", separator, "tiny")
    spec = {
        "separator": separator,
        "separator_args": args,
        "n_src": 2,
        "sample_rate": 8000,
        "factor": 1,
        "mode": "resample",
    }
    system = build_system(spec).train()
    ref = torch.randn(batch, 2, int(seconds * 8000))
    loss_fn = SeparationLoss(8000)
    optimizer = torch.optim.Adam(system.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss = loss_fn(system(ref.sum(1)), ref, system.intermediate_estimates)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i:
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def bench_loader(
    out_dir: str | Path,
    items: int = 320,
    threads: int = 2,
    batch: int = 8,
    segment: float = 1.0,
    workers: tuple[int, ...] = (0, 2),
) -> pd.DataFrame:
    """Training items per second of the data pipeline on a fake Libri2Mix tree.

    A fake Libri2Mix (:mod:`sfsrnet.data.fake`; 400 training mixtures of 2 to 4 s at 16 kHz) is
    prepared at 8 kHz, then ``items`` training items (within one epoch, after a first batch that
    starts the workers) are read in batches of ``batch`` crops of ``segment`` s, from the static
    mixtures and from dynamic mixing, with each number of ``workers``. Beside them: the items
    per second that the ConvTasNet and SFSRNet tiny presets consume in training (``threads``
    CPU threads, factor 1), which the loader must exceed. Writes ``loader.csv`` and
    ``loader.md``.
    """
    import tempfile

    import torch

    from sfsrnet.config import validate
    from sfsrnet.data.fake import write_fake_corpus
    from sfsrnet.data.loaders import train_loaders
    from sfsrnet.data.prepare import prepare_corpus

    torch.set_num_threads(threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = write_fake_corpus(
            "libri2mix", Path(tmp) / "LibriMix", n_mixtures=(400, 10, 10), seconds=(2.0, 4.0)
        )
        write_seconds = time.perf_counter() - t0
        base = {"corpus": "libri2mix", "root": str(root), "prepared": f"{tmp}/prepared"}
        t0 = time.perf_counter()
        prepare_corpus(validate({"data": base})["data"], base["prepared"])
        prepare_seconds = time.perf_counter() - t0
        print(f"fake tree {write_seconds:.1f} s, prepared at 8 kHz in {prepare_seconds:.1f} s")
        for dm in (False, True):
            for n_workers in workers:
                config = validate(
                    {
                        "data": {
                            **base,
                            "dynamic_mixing": {"enabled": dm, "n_items": items + batch},
                        },
                        "train": {
                            "batch_size": batch,
                            "segment": segment,
                            "num_workers": n_workers,
                        },
                    }
                )
                loader, _ = train_loaders(config, torch.Generator().manual_seed(0))
                count, start = 0, time.perf_counter()
                for b, (mix, _, _) in enumerate(loader):
                    if b == 0:  # the first batch pays for starting the workers
                        start = time.perf_counter()
                        continue
                    count += mix.shape[0]
                    if count >= items:
                        break
                seconds = time.perf_counter() - start
                rows.append(
                    {
                        "pipeline": "dynamic mixing" if dm else "static",
                        "workers": n_workers,
                        "items": count,
                        "items_per_s": count / seconds,
                        "batch": batch,
                        "segment_s": segment,
                    }
                )
                print(rows[-1], flush=True)
    for name in ("convtasnet", "sfsrnet"):
        rows.append(
            {
                "pipeline": f"training consumes ({name} tiny, {threads} threads)",
                "workers": None,
                "items": None,
                "items_per_s": _training_items_per_second(name, batch, segment, steps=3),
                "batch": batch,
                "segment_s": segment,
            }
        )
    table = pd.DataFrame(rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "loader.csv", index=False, float_format="%.2f")
    (out / "loader.md").write_text(table.to_markdown(index=False, floatfmt=".1f") + "\n")
    return table


SR_ORACLE_PHASES: tuple[str, ...] = ("estimate", "mixture", "hybrid", "default", "residue", "true")


def oracle_low_band(ref: torch.Tensor, sample_rate: int, factor: int, mode: str) -> torch.Tensor:
    """The reference as a perfect separator's estimate reaches SR at ``factor`` in ``mode``.

    ``resample``: the reference through the system's own path (resampled to
    ``sample_rate / factor`` and back, :class:`sfsrnet.system.SeparationSystem`), so above the
    low-rate Nyquist it holds the resampler's residue. ``stride``: a strided separator's
    estimate is full band in principle, and how much of the high band it gets right depends on
    the separator; the oracle here is the reference with every STFT bin (SR's STFT) at or above
    the low-rate Nyquist set to zero: the band SR is meant to restore, empty, with no residue.

    Args:
        ref: ``(..., time)`` at ``sample_rate``.
    Returns:
        ``(..., time)``.
    """
    from sfsrnet.audio import fit_length, resample
    from sfsrnet.sr import STFT

    if factor == 1:
        return ref
    if mode == "resample":
        low = resample(
            resample(ref, sample_rate, sample_rate // factor), sample_rate // factor, sample_rate
        )
        return fit_length(low, ref.shape[-1])
    stft = STFT(sample_rate)
    spec = stft(ref)
    spec[..., round(stft.n_fft / (2 * factor)) :, :] = 0
    return stft.inverse(spec, ref.shape[-1])


def _default_sr_phase(config_path: str | Path) -> str:
    """The phase the harness's config gives SR: its ``sr.args`` over its ``sr.preset``."""
    from sfsrnet import config as cfg
    from sfsrnet.study import preset_args

    sr = cfg.load(config_path)["sr"]
    args = {**preset_args("sr", "sr", sr["preset"]), **(sr.get("args") or {})}
    return str(args.get("phase", "estimate"))


def _oracle_corpus(root: str | Path | None, config_path: str | Path) -> Path:
    """``root``, or the config's corpus folder, built (embedded corpus) when it is missing."""
    from sfsrnet import config as cfg
    from sfsrnet.data.identity import corpus_folder, read_manifest, resolve_corpus

    if root is not None:
        return Path(root)
    data = resolve_corpus(cfg.load(config_path))
    folder = Path(corpus_folder(data))
    if read_manifest(folder) is None:
        if data["corpus"] != "embedded":
            raise FileNotFoundError(
                f"corpus {folder} is not prepared: run python -m sfsrnet make-corpus first"
            )
        from sfsrnet.data.embedded import CorpusSpec, make_corpus

        make_corpus(CorpusSpec.from_config(data), folder)
    return folder


def bench_sr_oracle(
    out_dir: str | Path,
    root: str | Path | None = None,
    n_utterances: int = 20,
    checkpoint: str | Path | None = None,
    factors: tuple[int, ...] = (2, 4),
    modes: tuple[str, ...] = ("resample", "stride"),
    config_path: str | Path | None = None,
) -> pd.DataFrame:
    """How much of the band above the low-rate Nyquist each magnitude and phase rule restores.

    For each test utterance, factor and mode, the oracle low band (:func:`oracle_low_band`)
    gets, above the low-rate Nyquist ``sample_rate / (2 * factor)``, the magnitude ``none`` (its
    own), ``heuristic`` (the SR heuristic's corrected high band, SR's default ``ratio_max``;
    ``heuristic_em`` with the ratio ``estimate/mixture``),
    ``oracle`` (the reference's) or ``sr`` (the magnitude of ``checkpoint``'s SR output, where
    the checkpoint's factor and mode match), combined by
    :meth:`sfsrnet.sr.SuperResolution.apply_magnitude` with each phase setting (``default`` is
    the config's SR phase), plus ``residue`` (the estimate's own phase everywhere: the rule
    before SR knew the factor) and ``true`` (the reference's phase above the Nyquist).

    Writes ``sr_oracle.csv`` and ``sr_oracle.md`` under ``out_dir``; means over utterances and
    sources of band SNR above / below the low-rate Nyquist and SI-SNR, in dB. ``config_path``
    (default: the checkout's ``config/config.yaml``) names the corpus and the default phase.
    """
    import torch

    from sfsrnet.study import CONFIG_DIR

    config_path = CONFIG_DIR / "config.yaml" if config_path is None else config_path

    from sfsrnet.data.folder import SeparationFolder
    from sfsrnet.data.identity import read_manifest
    from sfsrnet.metrics import band_snr, si_snr
    from sfsrnet.sr import SuperResolution, heuristic_high_band, unit_phasor

    torch.set_num_threads(1)
    folder = _oracle_corpus(root, config_path)
    manifest = read_manifest(folder) or {}
    rate = int(manifest.get("sample_rate") or (manifest.get("spec") or {}).get("sample_rate", 8000))
    n_src = int((manifest.get("spec") or {}).get("n_src", 2))
    data = SeparationFolder(folder, "test", n_src, rate, limit=n_utterances)
    default_phase = _default_sr_phase(config_path)
    system = None
    if checkpoint is not None:
        from sfsrnet.checkpoint import load_checkpoint

        system = load_checkpoint(checkpoint)[0]
        if system.sr is None:
            raise ValueError(f"checkpoint {checkpoint} has no SR add-on")
    tiny = {"channels": (1,), "kernels": (1, 1)}  # only the STFT and the phase rules are used
    rows = []
    for mode in modes:
        for factor in factors:
            srs = {
                p: SuperResolution(n_src, rate, factor=factor, mode=mode, phase=p, **tiny)
                for p in ("estimate", "mixture", "hybrid", default_phase)
            }
            sr0 = srs["estimate"]
            nyq = round(sr0.stft.n_fft / (2 * factor))
            edges = [0.0, rate / (2 * factor), rate / 2]
            magnitudes = ["none", "heuristic", "heuristic_em", "oracle"]
            use_sr = system is not None and (system.factor, system.mode) == (factor, mode)
            if use_sr:
                magnitudes.append("sr")
            for i in range(len(data)):
                mix, ref, _ = data[i]
                mix, ref = mix[None], ref[None]
                low = oracle_low_band(ref, rate, factor, mode)
                mix_spec, est_spec, ref_spec = sr0.stft(mix), sr0.stft(low), sr0.stft(ref)
                est_mag = est_spec.abs()
                highs = {
                    "none": est_mag,
                    "heuristic": heuristic_high_band(
                        mix_spec.abs(), est_mag, nyq, ratio_max=sr0.ratio_max
                    ),
                    "heuristic_em": heuristic_high_band(
                        mix_spec.abs(), est_mag, nyq, "estimate/mixture", ratio_max=sr0.ratio_max
                    ),
                    "oracle": ref_spec.abs(),
                }
                if use_sr:
                    with torch.no_grad():
                        highs["sr"] = sr0.stft(system.sr(mix, low)).abs()
                for magnitude in magnitudes:
                    mag = est_mag.clone()
                    mag[..., nyq:, :] = highs[magnitude][..., nyq:, :]
                    for phase in SR_ORACLE_PHASES:
                        if phase == "residue":
                            spec = mag * unit_phasor(est_spec)
                        elif phase == "true":
                            spec = srs["estimate"].apply_magnitude(mix_spec, est_spec, mag)
                            spec[..., nyq:, :] = (mag * unit_phasor(ref_spec))[..., nyq:, :]
                        else:
                            rule = default_phase if phase == "default" else phase
                            spec = srs[rule].apply_magnitude(mix_spec, est_spec, mag)
                        out = sr0.stft.inverse(spec, ref.shape[-1])[0]
                        bands = band_snr(out, ref[0], rate, edges)
                        rows.append(
                            {
                                "mode": mode,
                                "factor": factor,
                                "magnitude": magnitude,
                                "phase": default_phase if phase == "default" else phase,
                                "phase_setting": phase,
                                "above_nyquist_db": float(bands[:, 1].nanmean()),
                                "below_nyquist_db": float(bands[:, 0].nanmean()),
                                "si_snr_db": float(si_snr(out, ref[0]).mean()),
                            }
                        )
    keys = ["mode", "factor", "magnitude", "phase_setting"]
    table = (
        pd.DataFrame(rows)
        .groupby(keys, sort=False)
        .agg(
            phase_rule=("phase", "first"),
            above_nyquist_db=("above_nyquist_db", "mean"),
            below_nyquist_db=("below_nyquist_db", "mean"),
            si_snr_db=("si_snr_db", "mean"),
            utterances=("si_snr_db", "size"),
        )
        .reset_index()
        .rename(columns={"phase_setting": "phase"})
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "sr_oracle.csv", index=False, float_format="%.4f")
    (out / "sr_oracle.md").write_text(table.to_markdown(index=False, floatfmt=".2f") + "\n")
    return table
