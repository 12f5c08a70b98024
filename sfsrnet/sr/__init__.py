"""The super-resolution add-on: refines upsampled estimates with the full-rate mixture.

:class:`SuperResolution` maps ``(mix (B, T), est (B, n_src, T))`` to refined ``(B, n_src, T)``;
:func:`heuristic_high_band` is the paper's "corrected" high-band magnitude it can take as input.
"""

from sfsrnet.sr.network import PHASES, STFT, SuperResolution, heuristic_high_band, unit_phasor

__all__ = ["PHASES", "STFT", "SuperResolution", "heuristic_high_band", "unit_phasor"]
