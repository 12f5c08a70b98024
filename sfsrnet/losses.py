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

    Call with ``est`` ``(B, n_src, T)``, ``ref`` ``(B, n_src, T)`` and the intermediate estimates
    (each ``(B, n_src, T)``, blocks 1..K-1); returns the scalar loss.
    """

    def __init__(self, sample_rate: int, multiloss: MultiLoss = "rising-rate") -> None:
        self.sample_rate = sample_rate
        self.multiloss = multiloss
        self.pit = pit_si_snr_loss()

    def __call__(
        self, est: torch.Tensor, ref: torch.Tensor, intermediate: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        # YAML reads a bare `off` as false; both mean "final estimate only".
        multi = self.multiloss not in ("off", False)
        blocks = [*(intermediate or []), est] if multi else [est]
        rates = block_rates(len(blocks), self.sample_rate, self.multiloss)
        losses = [
            self.pit(e.float(), band_limit(ref, self.sample_rate, r))
            for e, r in zip(blocks, rates, strict=True)
        ]
        return torch.stack(losses).mean()

    def for_system(
        self, system: torch.nn.Module, est: torch.Tensor, ref: torch.Tensor, staged: bool = False
    ) -> torch.Tensor:
        """The training loss of a :class:`~sfsrnet.system.SeparationSystem` after its forward.

        Without SR: this loss of ``est``. With SR (PAPER.md): the separator's loss (per block when
        it has intermediate estimates) plus the PIT SI-SNR loss of the SR output; ``staged``
        (separator frozen) leaves only the SR term.
        """
        if system.sr is None:
            return self(est, ref, system.intermediate_estimates)
        sr_loss = self.pit(est.float(), ref)
        if staged:
            return sr_loss
        return self(system.separator_estimate, ref, system.intermediate_estimates) + sr_loss
