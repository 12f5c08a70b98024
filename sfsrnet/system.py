"""The separation system: downsample -> separator -> upsample back to the full rate.

This is the seam where the super-resolution add-on plugs in (it refines the upsampled estimates
with the full-rate mixture); see DESIGN.md, Contracts.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from sfsrnet.audio import fit_length, resample
from sfsrnet.errors import ConfigError

Mode = Literal["resample", "stride"]
MODES: tuple[str, ...] = ("resample", "stride")


def separator_rate(sample_rate: int, factor: int, mode: str) -> int:
    """The rate the separator runs at for a system at ``sample_rate`` with factor ``factor``.

    ``resample`` runs it at ``sample_rate / factor``; ``stride`` at the full rate, with its
    encoder's kernel and stride multiplied by ``factor`` instead (see ``registry.strided_args``).
    """
    if factor < 1:
        raise ConfigError(f"factor must be a positive integer, got {factor} (system.factor)")
    if mode not in MODES:
        raise ConfigError(f"unknown downsampling mode {mode!r} (system.mode); known: {MODES}")
    if mode == "resample":
        if sample_rate % factor:
            raise ConfigError(
                f"factor {factor} does not divide the sample rate {sample_rate} Hz (system.factor)"
            )
        return sample_rate // factor
    return sample_rate


def keep_below(
    low: torch.Tensor, high: torch.Tensor, cutoff_hz: float, sample_rate: int
) -> torch.Tensor:
    """``low``'s spectrum below ``cutoff_hz`` joined to ``high``'s from ``cutoff_hz`` up.

    Both ``(..., T)``, same shape; returns ``(..., T)``. One FFT over the whole signal (not an
    STFT) so that the result's spectrum from the cutoff up is ``high``'s exactly: the refine
    control must leave the band above the low-rate Nyquist as the separator gave it.

    >>> x, y = torch.randn(2, 3, 800), torch.randn(2, 3, 800)
    >>> z = keep_below(x, y, 1000.0, 8000)
    >>> bins = torch.fft.rfftfreq(800, 1 / 8000) >= 1000
    >>> bool(torch.allclose(torch.fft.rfft(z)[..., bins], torch.fft.rfft(y)[..., bins], atol=1e-4))
    True
    """
    length = low.shape[-1]
    freqs = torch.fft.rfftfreq(length, 1 / sample_rate, device=low.device)
    below = freqs < cutoff_hz
    spec = torch.where(below, torch.fft.rfft(low.float()), torch.fft.rfft(high.float()))
    return torch.fft.irfft(spec, n=length).to(low.dtype)


class SeparationSystem(nn.Module):
    """A separator wrapped so that its sequence is ``factor`` times shorter than at full rate.

    In ``resample`` mode the mixture is resampled to ``sample_rate / factor``, separated there and
    the estimates are resampled back; they carry nothing above the low-rate Nyquist frequency. In
    ``stride`` mode the separator (built with a ``factor`` times larger encoder stride and kernel)
    runs on the full-rate mixture directly.

    Separators that expose ``intermediate_estimates`` after a forward pass (SFSRNet's per-block
    estimates) have them brought to the full rate too, in ``self.intermediate_estimates``.

    With ``sr`` (the super-resolution add-on, any module mapping ``(mix (B, T), est (B, C, T))``
    to ``(B, C, T)``) the upsampled estimates are refined with the full-rate mixture; the
    separator's own estimate is kept in ``self.separator_estimate`` for the joint loss. With
    ``refine_only`` (the ``refine`` control) the SR output is kept below the low-rate Nyquist
    ``sample_rate / (2 * factor)`` only and the upsampled estimate above it, so SR can refine
    the band the separator covers but restores nothing (:func:`keep_below`).

    Args:
        separator: maps ``(batch, time_low)`` to ``(batch, n_src, time_low)`` at its own rate.
        sample_rate: the full rate of mixtures and estimates.
        factor: downsampling factor ``d`` (1 = no downsampling).
        mode: ``"resample"`` or ``"stride"``.
        sr: optional SR add-on.
        refine_only: restrict the SR output to the band below the low-rate Nyquist.

    >>> from sfsrnet.separators import build_separator
    >>> sep = build_separator("convtasnet", n_src=2, sample_rate=4000, n_blocks=2, n_repeats=1)
    >>> system = SeparationSystem(sep, sample_rate=8000, factor=2)
    >>> system(torch.randn(3, 8001)).shape
    torch.Size([3, 2, 8001])
    """

    def __init__(
        self,
        separator: nn.Module,
        sample_rate: int,
        factor: int = 1,
        mode: Mode = "resample",
        sr: nn.Module | None = None,
        refine_only: bool = False,
    ) -> None:
        super().__init__()
        low_rate = separator_rate(sample_rate, factor, mode)
        if int(separator.sample_rate) != low_rate:
            raise ConfigError(
                f"the separator runs at {separator.sample_rate} Hz but factor {factor} in {mode} "
                f"mode needs {low_rate} Hz"
            )
        self.separator = separator
        self.sample_rate = sample_rate
        self.factor = factor
        self.mode = mode
        self.n_src = int(separator.n_src)
        self.sr = sr
        self.refine_only = refine_only
        self.spec: dict = {}
        self.intermediate_estimates: list[torch.Tensor] = []
        self.separator_estimate: torch.Tensor | None = None

    @property
    def low_rate(self) -> int:
        """Rate of the separator's input (Hz)."""
        return separator_rate(self.sample_rate, self.factor, self.mode)

    def _to_full_rate(self, est: torch.Tensor, length: int) -> torch.Tensor:
        return fit_length(resample(est, self.low_rate, self.sample_rate), length)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """Separate ``mix`` ``(batch, time)`` into ``(batch, n_src, time)`` at the full rate."""
        if mix.dim() != 2:
            raise ValueError(f"mix must be (batch, time), got shape {tuple(mix.shape)}")
        length = mix.shape[-1]
        est = self.separator(resample(mix, self.sample_rate, self.low_rate))
        blocks = getattr(self.separator, "intermediate_estimates", None) or []
        self.intermediate_estimates = [self._to_full_rate(e, length) for e in blocks]
        est = self._to_full_rate(est, length)
        if self.sr is None:
            self.separator_estimate = None
            return est
        self.separator_estimate = est
        out = self.sr(mix, est)
        if self.refine_only and self.factor > 1:  # at factor 1 every band is the separator's
            out = keep_below(out, est, self.sample_rate / (2 * self.factor), self.sample_rate)
        return out
