"""SFSRNet's super-resolution network (PAPER.md, "SR network"), with every point the paper leaves
open as a parameter; ``ratio_max=None, input_norm="none", phase="estimate"`` is the paper's.

Per source c, from the STFTs of the full-rate mixture ``X`` and the upsampled estimate ``S_c``:
the input channels are ``[|X|, |S_1..C|, H_1..C]`` where ``H_c`` is the heuristic high band; four
Conv2d + norm layers (128, 256, 128, C channels; kernels 5, 9, 11, 11; "same" padding) predict a
magnitude correction ``delta_c``; the output ``|S_c| + delta_c`` takes the estimate's phase (the
mixture's above the low-rate Nyquist in resample mode, where the estimate is empty) and is
inverted to the input length. ``phase="complex"`` predicts a complex correction instead.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Ratio = Literal["mixture/estimate", "estimate/mixture"]
Norm = Literal["gln", "cln", "none"]
Activation = Literal["relu", "prelu", "gelu"]
Window = Literal["hann", "hamming", "sqrt_hann"]
Phase = Literal["estimate", "mixture", "hybrid", "complex"]
PHASES: tuple[str, ...] = ("estimate", "mixture", "hybrid", "complex")
InputNorm = Literal["log", "none"]
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
    ratio_max: float | None = None,
) -> torch.Tensor:
    """The paper's corrected high-band magnitude of each source.

    ``r_c(t) = sum_{f < split} |X| / (sum_{f < split} |S_c| + eps)`` (or its inverse with
    ``ratio="estimate/mixture"``), then ``H_c = |X| * r_c(t)`` above the split and 0 below.
    With ``ratio_max`` the ratio is bounded by it: where the estimate is silent the unbounded
    ratio reaches ``|X| / eps`` (and its gradient ``r / sum |S_c|``).

    Args:
        mix_mag: ``(B, F, frames)``. est_mag: ``(B, n_src, F, frames)``.
        split_bin: first bin of the high band.
        ratio_max: upper bound of ``r`` (``None``: unbounded, the paper).
    Returns:
        ``(B, n_src, F, frames)``.
    """
    low_mix = mix_mag[:, None, :split_bin].sum(dim=-2, keepdim=True)  # (B, 1, 1, frames)
    low_est = est_mag[:, :, :split_bin].sum(dim=-2, keepdim=True)  # (B, C, 1, frames)
    if ratio == "mixture/estimate":
        den = low_est + eps
        if ratio_max is not None:
            # A floor on the denominator (not a clamp of the quotient) keeps the gradient
            # bounded too: below the floor it is zero.
            den = torch.maximum(den, low_mix / ratio_max)
        r = low_mix / den
    elif ratio == "estimate/mixture":
        r = low_est / (low_mix + eps)
        if ratio_max is not None:
            r = r.clamp(max=ratio_max)
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


def unit_phasor(spec: torch.Tensor, floor: torch.Tensor | float = 1e-12) -> torch.Tensor:
    """``spec / |spec|`` (complex, any shape), and 0 where ``|spec| <= floor``.

    Where the spectrum is (near) zero its angle is noise; 0 there makes the caller fall back
    to another phase rather than divide by a vanishing magnitude.
    """
    mag = spec.abs()
    return torch.where(mag > floor, spec / mag.clamp_min(1e-30), torch.zeros_like(spec))


class SuperResolution(nn.Module):
    """Refines upsampled estimates with the full-rate mixture (any separator, any factor).

    The network predicts a magnitude correction ``delta`` (or, with ``phase="complex"``, a
    complex one). The output spectrum is the estimate's own plus the correction:
    ``S_c + (|S_c|' - |S_c|) * u_c`` where ``|S_c|' = relu(|S_c| + delta)`` and ``u_c`` is the
    unit phasor of the chosen phase, so a zero correction (a fresh network) is the identity for
    every phase setting. ``u_c`` is detached: the separator's phase is trained through ``S_c``
    itself, and the phasor's gradient (``1 / |S_c|``) is what made SR starve the separator
    where the estimate is near silent.

    In ``resample`` mode with ``factor > 1`` the upsampled estimate holds only resampler
    residue above the low-rate Nyquist frequency ``sample_rate / (2 * factor)``: there ``u_c`` is
    always the mixture's phase (``complex``: the predicted value), whatever ``phase`` says.

    Args:
        n_src: sources C. sample_rate: full rate (Hz).
        factor, mode: the system's downsampling factor and mode (``sfsrnet.system``).
        channels: hidden conv channels; the last layer has C channels (2C for ``complex``).
        kernels: square kernel of each of the ``len(channels) + 1`` conv layers.
        heuristic: feed the heuristic high band ``H`` as extra input channels.
        split_hz: the heuristic's split frequency (default: the low-rate Nyquist
            ``sample_rate / (2 * factor)`` when ``factor > 1``, else the paper's
            ``sample_rate / 4``).
        ratio, eps: the heuristic's ratio direction and its eps.
        ratio_max: bound of the heuristic's ratio (``None``: unbounded, the paper).
        input_norm: ``log``: the network sees ``log1p(|.| / level)`` with ``level`` the
            mixture's mean STFT magnitude per utterance, and its correction is in units of
            ``level``; ``none``: raw magnitudes and an absolute correction (the paper).
        norm: ``gln`` (GroupNorm over C, F, T), ``cln`` (LayerNorm over channels) or ``none``.
        activation: between layers. frame_8k, hop_8k, window: the STFT.
        clamp: keep the refined magnitude non-negative (magnitude phases only).
        phase: direction of the magnitude correction below the low-rate Nyquist: the
            estimate's (the paper; a bin under 1e-6 of the mixture's magnitude has no phase of
            its own and takes the mixture's), the mixture's, or ``hybrid`` (the estimate's where
            it is above 1e-3 of the mixture, the mixture's elsewhere); ``complex``: the network
            predicts a complex correction (real and imaginary part per source) added to ``S_c``.

    >>> sr = SuperResolution(2, 8000, factor=2, channels=(8, 8, 8), kernels=(3, 3, 3, 3))
    >>> sr(torch.randn(1, 4001), torch.randn(1, 2, 4001)).shape
    torch.Size([1, 2, 4001])
    >>> sr.split_hz, sr.nyquist_bin
    (2000.0, 64)
    """

    def __init__(
        self,
        n_src: int,
        sample_rate: int,
        factor: int = 1,
        mode: str = "resample",
        channels: tuple[int, ...] = (128, 256, 128),
        kernels: tuple[int, ...] = (5, 9, 11, 11),
        heuristic: bool = True,
        split_hz: float | None = None,
        ratio: Ratio = "mixture/estimate",
        eps: float = 1e-8,
        ratio_max: float | None = 100.0,
        input_norm: InputNorm = "log",
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
        if int(factor) < 1:
            raise ValueError(f"SR factor must be a positive integer, got {factor}")
        if mode not in ("resample", "stride"):
            raise ValueError(f"unknown SR mode {mode!r}")
        if phase not in PHASES:
            raise ValueError(f"unknown SR phase {phase!r}; known: {PHASES}")
        if input_norm not in ("log", "none"):
            raise ValueError(f"unknown SR input_norm {input_norm!r}")
        if ratio_max is not None and not ratio_max > 0:
            raise ValueError(f"SR ratio_max must be positive or null, got {ratio_max}")
        self.n_src = n_src
        self.sample_rate = sample_rate
        self.factor = int(factor)
        self.mode = mode
        self.stft = STFT(sample_rate, frame_8k, hop_8k, window)
        self.heuristic = heuristic
        low_nyquist = sample_rate / (2 * self.factor)
        if split_hz is None:
            split_hz = low_nyquist if self.factor > 1 else sample_rate / 4
        self.split_hz = float(split_hz)
        if not 0 < self.split_hz < sample_rate / 2:
            raise ValueError(f"SR split_hz must lie in (0, {sample_rate / 2}), got {split_hz}")
        self.split_bin = round(self.split_hz * self.stft.n_fft / sample_rate)
        # First bin the upsampled estimate cannot fill (None: it may fill every bin).
        self.nyquist_bin: int | None = None
        if mode == "resample" and self.factor > 1:
            self.nyquist_bin = round(low_nyquist * self.stft.n_fft / sample_rate)
        self.ratio = ratio
        self.eps = eps
        self.ratio_max = None if ratio_max is None else float(ratio_max)
        self.input_norm = input_norm
        self.clamp = clamp
        self.phase = phase
        out = 2 * n_src if phase == "complex" else n_src
        widths = [1 + (2 if heuristic else 1) * n_src, *channels, out]
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

    def _level(self, mix_mag: torch.Tensor) -> torch.Tensor:
        """The mixture's mean STFT magnitude per utterance, ``(B, 1, 1, 1)``, detached."""
        return mix_mag.detach().mean(dim=(-2, -1)).clamp_min(1e-8)[:, None, None, None]

    def direction(self, mix_spec: torch.Tensor, est_spec: torch.Tensor) -> torch.Tensor:
        """The detached unit phasor ``u`` along which a magnitude correction is applied.

        Args:
            mix_spec: complex ``(B, F, frames)``. est_spec: complex ``(B, C, F, frames)``.
        Returns:
            complex ``(B, C, F, frames)``.
        """
        mix_spec, est_spec = mix_spec.detach(), est_spec.detach()
        mix_mag = mix_spec.abs()[:, None]
        mix_u = unit_phasor(mix_spec)[:, None].expand_as(est_spec)
        if self.phase == "mixture":
            u = mix_u
        else:
            # An estimate this far below the mixture has no phase of its own: the mixture's.
            floor = (_HYBRID_FLOOR if self.phase == "hybrid" else 1e-6) * mix_mag
            est_u = unit_phasor(est_spec, floor)
            u = torch.where(est_spec.abs() > floor, est_u, mix_u)
        if self.nyquist_bin is not None:
            u = u.clone()
            u[..., self.nyquist_bin :, :] = mix_u[..., self.nyquist_bin :, :]
        return u

    def apply_magnitude(
        self, mix_spec: torch.Tensor, est_spec: torch.Tensor, mag: torch.Tensor
    ) -> torch.Tensor:
        """``S + (mag - |S|) * u``: the estimate's spectrum with its magnitude moved to ``mag``
        along :meth:`direction` (the bench composes oracle magnitudes with this too).

        Args:
            mix_spec: complex ``(B, F, frames)``. est_spec: complex ``(B, C, F, frames)``.
            mag: target magnitude ``(B, C, F, frames)``.
        Returns:
            complex ``(B, C, F, frames)``.
        """
        return est_spec + (mag - est_spec.abs()) * self.direction(mix_spec, est_spec)

    def forward(self, mix: torch.Tensor, est: torch.Tensor) -> torch.Tensor:
        """``mix`` ``(B, T)`` and upsampled ``est`` ``(B, C, T)`` -> refined ``(B, C, T)``."""
        length = est.shape[-1]
        mix_spec = self.stft(mix)  # (B, F, N)
        est_spec = self.stft(est)  # (B, C, F, N)
        mix_mag, est_mag = mix_spec.abs(), est_spec.abs()
        features = [mix_mag[:, None], est_mag]
        if self.heuristic:
            features.append(
                heuristic_high_band(
                    mix_mag, est_mag, self.split_bin, self.ratio, self.eps, self.ratio_max
                )
            )
        x = torch.cat(features, dim=1)
        scale: torch.Tensor | float = 1.0
        if self.input_norm == "log":
            # Magnitudes span orders of magnitude (and the heuristic up to ratio_max times the
            # mixture): log-compress them relative to the mixture's level before the convs.
            scale = self._level(mix_mag)
            x = torch.log1p(x / scale)
        delta = self.net(x) * scale
        if self.phase == "complex":
            re, im = delta.chunk(2, dim=1)
            return self.stft.inverse(est_spec + torch.complex(re, im), length)
        mag = est_mag + delta
        if self.clamp:
            mag = torch.relu(mag)
        return self.stft.inverse(self.apply_magnitude(mix_spec, est_spec, mag), length)
