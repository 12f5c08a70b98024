"""SFSRNet's super-resolution network (PAPER.md, "SR network"), with every point the paper leaves
open as a parameter defaulting to PAPER.md's choice.

Per source c, from the STFTs of the full-rate mixture ``X`` and the upsampled estimate ``S_c``:
the input channels are ``[|X|, |S_1..C|, H_1..C]`` where ``H_c`` is the heuristic high band; four
Conv2d + norm layers (128, 256, 128, C channels; kernels 5, 9, 11, 11; "same" padding) predict a
magnitude correction ``delta_c``; the output ``|S_c| + delta_c`` takes the estimate's phase and is
inverted to the input length.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Ratio = Literal["mixture/estimate", "estimate/mixture"]
Norm = Literal["gln", "cln", "none"]
Activation = Literal["relu", "prelu", "gelu"]
Window = Literal["hann", "hamming", "sqrt_hann"]
Phase = Literal["estimate", "mixture", "hybrid"]
# Hybrid phase: a bin where the estimate is this far below the mixture has no phase of its own
# (above the low-rate Nyquist frequency in resample mode), so the mixture's is used there.
_HYBRID_FLOOR = 1e-3


class STFT(nn.Module):
    """STFT / inverse STFT pair with a frame and hop given at 8 kHz and scaled with the rate.

    ``frame=256, hop=64`` at 8 kHz (129 bins) become 512 / 128 at 16 kHz. The inverse returns
    exactly ``length`` samples and inverts the forward transform to float precision.

    >>> stft = STFT(8000)
    >>> x = torch.randn(2, 8001)
    >>> bool(torch.allclose(stft.inverse(stft(x), 8001), x, atol=1e-5))
    True
    """

    def __init__(
        self, sample_rate: int, frame_8k: int = 256, hop_8k: int = 64, window: Window = "hann"
    ) -> None:
        super().__init__()
        self.n_fft = frame_8k * sample_rate // 8000
        self.hop = hop_8k * sample_rate // 8000
        if window == "hann":
            win = torch.hann_window(self.n_fft)
        elif window == "hamming":
            win = torch.hamming_window(self.n_fft)
        elif window == "sqrt_hann":
            win = torch.hann_window(self.n_fft).sqrt()
        else:
            raise ValueError(f"unknown STFT window {window!r}")
        self.register_buffer("window", win, persistent=False)

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """``(..., T)`` -> complex ``(..., n_bins, frames)``."""
        shape = wav.shape
        spec = torch.stft(
            wav.reshape(-1, shape[-1]),
            self.n_fft,
            self.hop,
            window=self.window,
            center=True,
            return_complex=True,
        )
        return spec.reshape(*shape[:-1], *spec.shape[-2:])

    def inverse(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """complex ``(..., n_bins, frames)`` -> ``(..., length)``."""
        shape = spec.shape
        wav = torch.istft(
            spec.reshape(-1, *shape[-2:]),
            self.n_fft,
            self.hop,
            window=self.window,
            center=True,
            length=length,
        )
        return wav.reshape(*shape[:-2], length)


def heuristic_high_band(
    mix_mag: torch.Tensor,
    est_mag: torch.Tensor,
    split_bin: int,
    ratio: Ratio = "mixture/estimate",
    eps: float = 1e-8,
) -> torch.Tensor:
    """The paper's corrected high-band magnitude of each source.

    ``r_c(t) = sum_{f < split} |X| / (sum_{f < split} |S_c| + eps)`` (or its inverse with
    ``ratio="estimate/mixture"``), then ``H_c = |X| * r_c(t)`` above the split and 0 below.

    Args:
        mix_mag: ``(B, F, frames)``. est_mag: ``(B, n_src, F, frames)``.
        split_bin: first bin of the high band.
    Returns:
        ``(B, n_src, F, frames)``.
    """
    low_mix = mix_mag[:, None, :split_bin].sum(dim=-2, keepdim=True)  # (B, 1, 1, frames)
    low_est = est_mag[:, :, :split_bin].sum(dim=-2, keepdim=True)  # (B, C, 1, frames)
    if ratio == "mixture/estimate":
        r = low_mix / (low_est + eps)
    elif ratio == "estimate/mixture":
        r = low_est / (low_mix + eps)
    else:
        raise ValueError(f"unknown heuristic ratio {ratio!r}")
    high = mix_mag[:, None] * r
    high[:, :, :split_bin] = 0
    return high


def _norm(kind: Norm, channels: int) -> nn.Module:
    if kind == "gln":
        return nn.GroupNorm(1, channels, eps=1e-8)  # over channels, frequency and time
    if kind == "cln":
        return _ChannelLayerNorm(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


class _ChannelLayerNorm(nn.Module):
    """LayerNorm over channels at each (frequency, frame)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


def _activation(kind: Activation) -> nn.Module:
    return {"relu": nn.ReLU, "prelu": nn.PReLU, "gelu": nn.GELU}[kind]()


class SuperResolution(nn.Module):
    """Refines upsampled estimates with the full-rate mixture (any separator, any factor).

    Args:
        n_src: sources C. sample_rate: full rate (Hz).
        channels: hidden conv channels; the last layer always has C channels.
        kernels: square kernel of each of the ``len(channels) + 1`` conv layers.
        heuristic: feed the heuristic high band ``H`` as extra input channels.
        split_hz: the heuristic's split frequency (default ``sample_rate / 4``: 2 kHz at 8 kHz).
        ratio, eps: the heuristic's ratio direction and its eps.
        norm: ``gln`` (GroupNorm over C, F, T), ``cln`` (LayerNorm over channels) or ``none``.
        activation: between layers. frame_8k, hop_8k, window: the STFT.
        clamp: keep the refined magnitude non-negative.
        phase: of the output: the estimate's (the paper), the mixture's, or ``hybrid`` (the
            estimate's where it has energy, the mixture's where it has none).

    >>> sr = SuperResolution(2, 8000, channels=(8, 8, 8), kernels=(3, 3, 3, 3))
    >>> sr(torch.randn(1, 4001), torch.randn(1, 2, 4001)).shape
    torch.Size([1, 2, 4001])
    """

    def __init__(
        self,
        n_src: int,
        sample_rate: int,
        channels: tuple[int, ...] = (128, 256, 128),
        kernels: tuple[int, ...] = (5, 9, 11, 11),
        heuristic: bool = True,
        split_hz: float | None = None,
        ratio: Ratio = "mixture/estimate",
        eps: float = 1e-8,
        norm: Norm = "gln",
        activation: Activation = "relu",
        frame_8k: int = 256,
        hop_8k: int = 64,
        window: Window = "hann",
        clamp: bool = True,
        phase: Phase = "estimate",
    ) -> None:
        super().__init__()
        channels, kernels = tuple(channels), tuple(kernels)
        if len(kernels) != len(channels) + 1:
            raise ValueError(
                f"SR needs one kernel per layer: {len(channels) + 1} layers, got kernels {kernels}"
            )
        if any(k % 2 == 0 for k in kernels):
            raise ValueError(f"SR kernels must be odd for 'same' padding, got {kernels}")
        self.n_src = n_src
        self.sample_rate = sample_rate
        self.stft = STFT(sample_rate, frame_8k, hop_8k, window)
        self.heuristic = heuristic
        self.split_hz = sample_rate / 4 if split_hz is None else float(split_hz)
        if not 0 < self.split_hz < sample_rate / 2:
            raise ValueError(f"SR split_hz must lie in (0, {sample_rate / 2}), got {split_hz}")
        self.split_bin = round(self.split_hz * self.stft.n_fft / sample_rate)
        self.ratio = ratio
        self.eps = eps
        self.clamp = clamp
        if phase not in ("estimate", "mixture", "hybrid"):
            raise ValueError(f"unknown SR phase {phase!r}")
        self.phase = phase
        widths = [1 + (2 if heuristic else 1) * n_src, *channels, n_src]
        layers: list[nn.Module] = []
        for i, k in enumerate(kernels):
            layers.append(nn.Conv2d(widths[i], widths[i + 1], k, padding=k // 2))
            if i < len(kernels) - 1:
                layers += [_norm(norm, widths[i + 1]), _activation(activation)]
        self.net = nn.Sequential(*layers)
        # The last layer starts at zero, so SR starts as the identity (the estimate's own STFT
        # and inverse): training can only learn a refinement, never start by damaging a good
        # separator's output with random weights, which matters most for staged training.
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)

    def forward(self, mix: torch.Tensor, est: torch.Tensor) -> torch.Tensor:
        """``mix`` ``(B, T)`` and upsampled ``est`` ``(B, C, T)`` -> refined ``(B, C, T)``."""
        length = est.shape[-1]
        mix_spec = self.stft(mix)  # (B, F, N)
        est_spec = self.stft(est)  # (B, C, F, N)
        mix_mag, est_mag = mix_spec.abs(), est_spec.abs()
        features = [mix_mag[:, None], est_mag]
        if self.heuristic:
            features.append(
                heuristic_high_band(mix_mag, est_mag, self.split_bin, self.ratio, self.eps)
            )
        delta = self.net(torch.cat(features, dim=1))
        mag = est_mag + delta
        if self.clamp:
            mag = torch.relu(mag)
        est_phase = est_spec / (est_mag + 1e-12)
        mix_phase = (mix_spec / (mix_mag + 1e-12))[:, None]
        if self.phase == "estimate":
            phase = est_phase
        elif self.phase == "mixture":
            phase = mix_phase.expand_as(est_phase)
        else:
            own = est_mag > _HYBRID_FLOOR * mix_mag[:, None]
            phase = torch.where(own, est_phase, mix_phase)
        return self.stft.inverse(mag * phase, length)
