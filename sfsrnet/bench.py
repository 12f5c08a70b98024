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
    from sfsrnet.config import load_yaml
    from sfsrnet.registry import list_separators

    root = Path(__file__).resolve().parents[1] / "config" / "separators"
    cases = []
    for name in names or tuple(list_separators()):
        preset_file = load_yaml(root / f"{name}.yaml")["presets"]
        for preset in presets:
            for mode in modes:
                for factor in factors:
                    cases.append(
                        {
                            "separator": name,
                            "preset": preset,
                            "separator_args": preset_file[preset],
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
    """Params, MACs per second of audio (torch's FLOP counter) and CPU inference time per second
    of audio of one system, with the SR add-on measured apart."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from sfsrnet.checkpoint import build_system

    torch.set_num_threads(case["threads"])
    spec = {
        k: case[k]
        for k in ("separator", "separator_args", "n_src", "sample_rate", "factor", "mode", "sr")
    }
    system = build_system(spec).eval()
    seconds = case["seconds"]
    mix = torch.randn(1, int(seconds * case["sample_rate"]))

    def macs(fn) -> float:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            fn()
        return counter.get_total_flops() / 2 / seconds

    sep_macs = macs(
        lambda: system.separator(mix[:, :: case["factor"]] if case["mode"] == "resample" else mix)
    )
    row = {
        "separator": case["separator"],
        "preset": case["preset"],
        "sr_preset": case["sr_preset"],
        "factor": case["factor"],
        "mode": case["mode"],
        "separator_params_M": sum(p.numel() for p in system.separator.parameters()) / 1e6,
        "separator_GMAC_per_s": sep_macs / 1e9,
    }
    with torch.no_grad():
        system(mix)  # warm-up
        t0 = time.perf_counter()
        for _ in range(case["repeats"]):
            system(mix)
        row["rtf_with_sr" if system.sr is not None else "rtf"] = (
            (time.perf_counter() - t0) / case["repeats"] / seconds
        )
    if system.sr is not None:
        est = torch.randn(1, case["n_src"], mix.shape[-1])
        row["sr_params_M"] = sum(p.numel() for p in system.sr.parameters()) / 1e6
        row["sr_GMAC_per_s"] = macs(lambda: system.sr(mix, est)) / 1e9
        sr, system.sr = system.sr, None
        with torch.no_grad():
            t0 = time.perf_counter()
            for _ in range(case["repeats"]):
                system(mix)
            row["rtf"] = (time.perf_counter() - t0) / case["repeats"] / seconds
        system.sr = sr
    return row


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
    from sfsrnet.config import load_yaml
    from sfsrnet.registry import list_separators

    root = Path(__file__).resolve().parents[1] / "config"
    sr_presets = load_yaml(root / "sr.yaml")["presets"]
    cases = []
    for name in list_separators():
        sep_presets = load_yaml(root / "separators" / f"{name}.yaml")["presets"]
        for preset in presets:
            cases.append(
                {
                    "separator": name,
                    "preset": preset,
                    "separator_args": sep_presets[preset],
                    "sr_preset": preset,
                    "sr": sr_presets[preset],
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
