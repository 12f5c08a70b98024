"""What a system costs: parameters, MACs per second of audio, inference time and peak memory,
for the separator and the SR add-on apart. MACs come from torch's own FLOP counter."""

from __future__ import annotations

import resource
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from sfsrnet.audio import resample
from sfsrnet.system import SeparationSystem


def count_macs(fn, *args: torch.Tensor) -> float:
    """Multiply-accumulates of ``fn(*args)`` (half the FLOPs torch's counter reports)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn(*args)
    return counter.get_total_flops() / 2


def _params(module: torch.nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def peak_memory_mib() -> dict[str, float]:
    """Peak resident memory of this process (CPU) and peak CUDA allocation when there is a GPU."""
    out = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available():
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


@torch.no_grad()
def system_cost(system: SeparationSystem, seconds: float = 1.0, repeats: int = 3) -> dict[str, Any]:
    """Params, MACs per second of audio and CPU real-time factor of ``system``, SR apart.

    MACs are counted on ``seconds`` of noise at the full rate (the separator on its own input:
    the resampled mixture in ``resample`` mode); the real-time factor is the median wall time of
    ``repeats`` forward passes divided by ``seconds``, with and without SR.
    """
    system = system.eval()
    device = next(system.parameters()).device
    mix = torch.randn(1, round(seconds * system.sample_rate), device=device)
    low = resample(mix, system.sample_rate, system.low_rate)
    est = torch.randn(1, system.n_src, mix.shape[-1], device=device)
    out: dict[str, Any] = {
        "params_separator": _params(system.separator),
        "params_sr": _params(system.sr),
        "macs_per_second_separator": count_macs(system.separator, low) / seconds,
        "macs_per_second_sr": (count_macs(system.sr, mix, est) / seconds) if system.sr else 0.0,
    }

    def rtf() -> float:
        system(mix)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            system(mix)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2] / seconds

    out["rtf"] = rtf()
    if system.sr is not None:
        sr, system.sr = system.sr, None
        try:
            out["rtf_without_sr"] = rtf()
        finally:
            system.sr = sr
    return out
