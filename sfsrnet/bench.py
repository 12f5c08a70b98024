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
from typing import Any

import pandas as pd


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
