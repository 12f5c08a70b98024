"""Training losses: permutation-invariant SI-SNR and SFSRNet's multi-resolution loss."""

from __future__ import annotations

from typing import Literal

import torch
from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr

from sfsrnet.audio import fit_length, resample

MultiLoss = Literal["off", "same-rate", "rising-rate"] | bool
# PAPER.md: block k of 8 is scored against targets band-limited to these sample rates (at 8 kHz).
PAPER_BLOCK_RATES_8K = (500, 1000, 2000, 3000, 4000, 5000, 8000, 8000)


def pit_si_snr_loss() -> PITLossWrapper:
    """Negative SI-SNR under the best permutation, averaged over the batch."""
    return PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx")


def masked_pairwise_neg_si_snr(
    est: torch.Tensor, ref: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """Negative SI-SNR (dB) of every (estimate, reference) pair over each item's first
    ``lengths`` samples only: means, projections and energies never see the padding.

    ``est`` and ``ref`` are ``(batch, n_src, time)``, ``lengths`` ``(batch,)``; returns
    ``(batch, n_src, n_src)`` indexed ``[b, estimate, reference]``, as Asteroid's
    ``pairwise_neg_sisdr`` (which it equals when nothing is padded).
    """
    time = est.shape[-1]
    mask = (torch.arange(time, device=est.device) < lengths.to(est.device)[:, None]).to(est.dtype)
    mask = mask[:, None, :]  # (batch, 1, time)
    count = mask.sum(-1, keepdim=True).clamp_min(1)
    est = (est - (est * mask).sum(-1, keepdim=True) / count) * mask
    ref = (ref - (ref * mask).sum(-1, keepdim=True) / count) * mask
    est, ref = est[:, :, None], ref[:, None]  # (batch, n_src, 1, time), (batch, 1, n_src, time)
    dot = (est * ref).sum(-1, keepdim=True)
    proj = dot * ref / (ref.pow(2).sum(-1, keepdim=True) + eps)
    ratio = proj.pow(2).sum(-1) / ((est - proj).pow(2).sum(-1) + eps)
    return -10 * torch.log10(ratio + eps)


def block_rates(n_blocks: int, sample_rate: int, schedule: MultiLoss) -> list[int]:
    """Target rate of each block's estimate (the last block is always at ``sample_rate``).

    ``rising-rate`` follows the paper's 8-block schedule scaled to ``sample_rate`` and, for other
    block counts, picks from it evenly; ``same-rate`` scores every block at full rate.

    >>> block_rates(8, 8000, "rising-rate")
    [500, 1000, 2000, 3000, 4000, 5000, 8000, 8000]
    >>> block_rates(4, 16000, "rising-rate")
    [1000, 4000, 8000, 16000]
    """
    if schedule == "same-rate" or n_blocks == 1:
        return [sample_rate] * n_blocks
    scaled = [r * sample_rate // 8000 for r in PAPER_BLOCK_RATES_8K]
    rates = [scaled[(k * len(scaled)) // n_blocks] for k in range(n_blocks)]
    return [*rates[:-1], sample_rate]


def band_limit(ref: torch.Tensor, sample_rate: int, rate: int) -> torch.Tensor:
    """``ref`` ``(..., time)`` with nothing above ``rate / 2`` Hz (down to ``rate`` and back)."""
    if rate >= sample_rate:
        return ref
    return fit_length(resample(resample(ref, sample_rate, rate), rate, sample_rate), ref.shape[-1])


class SeparationLoss:
    """PIT SI-SNR of the final estimate, averaged with the per-block losses when the separator
    exposes intermediate estimates and ``multiloss`` is not ``off``.

    Call with ``est`` ``(B, n_src, T)``, ``ref`` ``(B, n_src, T)``, the intermediate estimates
    (each ``(B, n_src, T)``, blocks 1..K-1) and, for a padded batch, ``lengths`` ``(B,)`` (the
    real samples of each item: the padding after them does not count); returns the scalar loss.
    """

    def __init__(self, sample_rate: int, multiloss: MultiLoss = "rising-rate") -> None:
        self.sample_rate = sample_rate
        self.multiloss = multiloss
        self._pit = pit_si_snr_loss()
        self._masked_pit = PITLossWrapper(masked_pairwise_neg_si_snr, pit_from="pw_mtx")

    def pit(
        self, est: torch.Tensor, ref: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        """PIT SI-SNR loss of ``(B, n_src, T)`` estimates, masked past ``lengths`` ``(B,)``."""
        if lengths is None or bool((lengths >= est.shape[-1]).all()):
            return self._pit(est, ref)  # nothing padded: Asteroid's loss, bit for bit
        return self._masked_pit(est, ref, lengths=lengths)

    def __call__(
        self,
        est: torch.Tensor,
        ref: torch.Tensor,
        intermediate: list[torch.Tensor] | None = None,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # YAML reads a bare `off` as false; both mean "final estimate only".
        multi = self.multiloss not in ("off", False)
        blocks = [*(intermediate or []), est] if multi else [est]
        rates = block_rates(len(blocks), self.sample_rate, self.multiloss)
        losses = [
            self.pit(e.float(), band_limit(ref, self.sample_rate, r), lengths)
            for e, r in zip(blocks, rates, strict=True)
        ]
        return torch.stack(losses).mean()

    def for_system(
        self,
        system: torch.nn.Module,
        est: torch.Tensor,
        ref: torch.Tensor,
        staged: bool = False,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The training loss of a :class:`~sfsrnet.system.SeparationSystem` after its forward.

        Without SR: this loss of ``est``. With SR (PAPER.md): the separator's loss (per block when
        it has intermediate estimates) plus the PIT SI-SNR loss of the SR output; ``staged``
        (separator frozen) leaves only the SR term. ``lengths`` as for :meth:`__call__`.
        """
        if system.sr is None:
            return self(est, ref, system.intermediate_estimates, lengths)
        sr_loss = self.pit(est.float(), ref, lengths)
        if staged:
            return sr_loss
        separator = self(system.separator_estimate, ref, system.intermediate_estimates, lengths)
        return separator + sr_loss
