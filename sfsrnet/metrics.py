"""Separation metrics: SI-SNR, BSS-Eval v3 SDR and their improvements over the mixture.

SDR is the SDR of ``mir_eval.separation.bss_eval_sources`` (512-tap distortion filter). The
default backend computes it with ``fast_bss_eval`` (same definition, solved faster);
``sdr_backend="mir_eval"`` calls mir_eval itself, and a test holds the two within 0.01 dB.
"""

from __future__ import annotations

import itertools
from typing import Literal

import fast_bss_eval
import numpy as np
import torch

SdrBackend = Literal["fast", "mir_eval"]
SDR_FILTER_LENGTH = 512


def si_snr(est: torch.Tensor, ref: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SNR in dB along the last axis.

    Args:
        est, ref: ``(..., time)``, broadcastable.
    Returns:
        ``(...)``.

    >>> ref = torch.randn(2, 8000)
    >>> bool((si_snr(3 * ref, ref) > 100).all())
    True
    """
    est = est - est.mean(dim=-1, keepdim=True)
    ref = ref - ref.mean(dim=-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = scale * ref
    noise = est - target
    return 10 * torch.log10(target.pow(2).sum(-1) / (noise.pow(2).sum(-1) + eps) + eps)


def best_permutation(est: torch.Tensor, ref: torch.Tensor) -> tuple[int, ...]:
    """The order of ``est`` rows that maximises the mean SI-SNR against ``ref``.

    Args:
        est, ref: ``(n_src, time)``.
    Returns:
        ``perm`` such that ``est[list(perm)]`` is aligned with ``ref``.
    """
    n_src = ref.shape[0]
    pair = si_snr(est[:, None, :], ref[None, :, :])  # (est, ref)
    perms = list(itertools.permutations(range(n_src)))
    scores = [sum(float(pair[p[c], c]) for c in range(n_src)) for p in perms]
    return perms[int(np.argmax(scores))]


def sdr(est: np.ndarray, ref: np.ndarray, backend: SdrBackend = "fast") -> np.ndarray:
    """BSS-Eval v3 SDR (dB) of each estimate against the reference in the same row.

    Args:
        est, ref: ``(n_src, time)``, already aligned (no permutation is searched).
    Returns:
        ``(n_src,)``.
    """
    est64 = np.asarray(est, dtype=np.float64)
    ref64 = np.asarray(ref, dtype=np.float64)
    if backend == "fast":
        # fast_bss_eval.sdr searches the best permutation itself; one source per batch item
        # keeps the given alignment (a source's SDR depends on its own reference only).
        pairs = fast_bss_eval.sdr(ref64[:, None], est64[:, None], filter_length=SDR_FILTER_LENGTH)
        return np.asarray(pairs)[:, 0]
    if backend == "mir_eval":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from mir_eval.separation import bss_eval_sources

            return bss_eval_sources(ref64, est64, compute_permutation=False)[0]
    raise ValueError(f"unknown SDR backend {backend!r}; use 'fast' or 'mir_eval'")


def utterance_metrics(
    mix: torch.Tensor, est: torch.Tensor, ref: torch.Tensor, sdr_backend: SdrBackend = "fast"
) -> list[dict[str, float]]:
    """Per-source metrics of one utterance under the best permutation.

    Args:
        mix: ``(time,)``. est, ref: ``(n_src, time)``.
    Returns:
        One dict per reference source with ``source``, ``permutation`` (the estimate index aligned
        to it), ``si_snr``, ``si_snr_i``, ``sdr``, ``sdr_i``, ``input_si_snr``, ``input_sdr``.
    """
    est, ref, mix = est.double().cpu(), ref.double().cpu(), mix.double().cpu()
    perm = best_permutation(est, ref)
    est = est[list(perm)]
    mix_as_est = mix.expand_as(ref)
    si = si_snr(est, ref)
    si_in = si_snr(mix_as_est, ref)
    sdr_est = sdr(est.numpy(), ref.numpy(), sdr_backend)
    sdr_in = sdr(mix_as_est.numpy(), ref.numpy(), sdr_backend)
    return [
        {
            "source": c,
            "permutation": int(perm[c]),
            "si_snr": float(si[c]),
            "si_snr_i": float(si[c] - si_in[c]),
            "sdr": float(sdr_est[c]),
            "sdr_i": float(sdr_est[c] - sdr_in[c]),
            "input_si_snr": float(si_in[c]),
            "input_sdr": float(sdr_in[c]),
        }
        for c in range(ref.shape[0])
    ]


def band_edges(sample_rate: int, factor: int, extra_hz: tuple[float, ...] = ()) -> list[float]:
    """Band edges in Hz from 0 to Nyquist: ``extra_hz`` plus the low-rate Nyquist
    ``sample_rate / (2 * factor)`` (so "above the low-rate Nyquist" is always a band).

    >>> band_edges(8000, 4, (2000.0,))
    [0.0, 1000.0, 2000.0, 4000.0]
    """
    nyquist = sample_rate / 2
    edges = {0.0, nyquist, *(float(e) for e in extra_hz if 0 < e < nyquist)}
    if factor > 1:
        edges.add(nyquist / factor)
    return sorted(edges)


def band_snr(
    est: torch.Tensor, ref: torch.Tensor, sample_rate: int, edges: list[float], floor: float = 1e-6
) -> torch.Tensor:
    """SNR in dB of the estimate in each frequency band, after the best global scaling.

    The estimate is scaled to fit the reference (SI-SNR-trained separators have no fixed gain),
    then the reference's energy and the error's energy are summed over the FFT bins of each band
    ``[edges[i], edges[i+1])``. A band holding less than ``floor`` of the reference's energy
    (-60 dB) is ``nan``: missing, not a silent inf.

    Args:
        est, ref: ``(n_src, time)``, aligned. edges: ascending, in Hz.
    Returns:
        ``(n_src, len(edges) - 1)``.
    """
    est, ref = est.double(), ref.double()
    scale = (est * ref).sum(-1, keepdim=True) / ((est * est).sum(-1, keepdim=True) + 1e-12)
    err = torch.fft.rfft(scale * est - ref, dim=-1).abs().pow(2)
    sig = torch.fft.rfft(ref, dim=-1).abs().pow(2)
    freqs = torch.fft.rfftfreq(ref.shape[-1], 1 / sample_rate, dtype=torch.float64)
    out = torch.full((ref.shape[0], len(edges) - 1), float("nan"), dtype=torch.float64)
    total = sig.sum(-1)
    for b, (lo, hi) in enumerate(itertools.pairwise(edges)):
        in_band = (freqs >= lo) & ((freqs < hi) if hi < sample_rate / 2 else (freqs <= hi))
        s, e = sig[:, in_band].sum(-1), err[:, in_band].sum(-1)
        ok = s > floor * total
        out[ok, b] = 10 * torch.log10(s[ok] / (e[ok] + 1e-20))
    return out
