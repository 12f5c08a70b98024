import numpy as np
import pytest
import torch

from sfsrnet.metrics import best_permutation, sdr, si_snr, utterance_metrics


def _orthogonal_noise(ref: torch.Tensor, snr_db: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    noise -= noise.mean()
    r = ref - ref.mean()
    noise -= (noise @ r) / (r @ r) * r
    return noise * torch.sqrt((r @ r) / (noise @ noise) / 10 ** (snr_db / 10))


def test_si_snr_of_a_known_construction():
    ref = torch.randn(8000, dtype=torch.float64)
    est = 0.3 * (ref - ref.mean()) + _orthogonal_noise(0.3 * ref, 10.0)
    assert si_snr(est, ref).item() == pytest.approx(10.0, abs=1e-6)
    assert si_snr(-2.0 * ref + 5.0, ref).item() > 100  # scale and offset do not matter


def _speech_pair() -> np.ndarray:
    from sfsrnet.audio import resample
    from sfsrnet.data import tts

    waves = []
    for voice, text in [
        (tts.Voice("espeak", "en-us+m3"), "The birch canoe slid on the smooth planks."),
        (tts.Voice("espeak", "en-gb-x-rp+f2"), "Glue the sheet to the dark blue background."),
    ]:
        wav, rate = tts.synthesize(voice, text)
        waves.append(resample(torch.from_numpy(wav), rate, 8000).numpy()[:12000])
    n = min(len(w) for w in waves)
    return np.stack([w[:n] for w in waves]).astype(np.float64)


def _cases():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 8000))
    yield "random", ref, ref + 0.5 * rng.standard_normal((2, 8000))
    # Correlated: each estimate leaks the other source and is filtered (within the 512 taps).
    kernel = np.array([0.6, 0.3, 0.1])
    leak = np.stack(
        [np.convolve(ref[0], kernel, "same") + 0.4 * ref[1], 0.8 * ref[1] - 0.3 * ref[0]]
    )
    yield "correlated", ref, leak + 0.05 * rng.standard_normal((2, 8000))
    speech = _speech_pair()
    mix = speech.sum(0)
    yield "speech", speech, np.stack([0.7 * speech[0] + 0.2 * mix, speech[1] + 0.1 * mix])
    yield "three sources", rng.standard_normal((3, 4000)), rng.standard_normal((3, 4000))


@pytest.mark.parametrize(
    ("name", "ref", "est"), list(_cases()), ids=lambda x: x if isinstance(x, str) else ""
)
def test_fast_sdr_matches_mir_eval(name, ref, est):
    """Aligned as given, and swapped: the fast path must not search its own permutation."""
    for order in (slice(None), slice(None, None, -1)):
        fast = sdr(est[order], ref, backend="fast")
        reference = sdr(est[order], ref, backend="mir_eval")
        assert np.max(np.abs(fast - reference)) < 0.01, (name, fast, reference)


@pytest.mark.parametrize("backend", ["fast", "mir_eval"])
def test_swapped_estimates_are_realigned(backend):
    rng = np.random.default_rng(1)
    ref = torch.from_numpy(rng.standard_normal((2, 8000)))
    est = ref + 0.3 * torch.from_numpy(rng.standard_normal((2, 8000)))
    mix = ref.sum(0)
    straight = utterance_metrics(mix, est, ref, backend)
    swapped = utterance_metrics(mix, est.flip(0), ref, backend)
    assert best_permutation(est.flip(0), ref) == (1, 0)
    assert [r["permutation"] for r in swapped] == [1, 0]
    for a, b in zip(straight, swapped, strict=True):
        for key in ("si_snr", "sdr", "si_snr_i", "sdr_i"):
            assert a[key] == pytest.approx(b[key], abs=1e-9)
    # The swapped order scored as given would be far worse: the permutation search matters.
    assert si_snr(est.flip(0), ref).max() < 0
    # Improvements are relative to the mixture's own scores.
    for row in straight:
        assert row["si_snr_i"] == pytest.approx(row["si_snr"] - row["input_si_snr"])
        assert row["sdr_i"] == pytest.approx(row["sdr"] - row["input_sdr"])


def test_band_snr_of_a_band_limited_estimate():
    """An estimate that is the reference below 1 kHz and silent above it: very high SNR below,
    0 dB above (the error there is the reference itself), whatever its overall gain."""
    from sfsrnet.metrics import band_edges, band_snr

    torch.manual_seed(0)
    ref = torch.randn(2, 8000, dtype=torch.float64)
    spec = torch.fft.rfft(ref, dim=-1)
    freqs = torch.fft.rfftfreq(8000, 1 / 8000)
    low = torch.fft.irfft(spec * (freqs < 1000), n=8000)
    edges = band_edges(8000, 4)
    assert edges == [0.0, 1000.0, 4000.0]
    snr = band_snr(3.0 * low, ref, 8000, edges)
    assert (snr[:, 0] > 100).all()
    assert torch.allclose(snr[:, 1], torch.zeros(2, dtype=torch.float64), atol=0.2)


def test_band_without_reference_energy_is_missing_not_inf():
    from sfsrnet.metrics import band_snr

    t = torch.arange(8000) / 8000
    ref = torch.sin(2 * torch.pi * 300 * t)[None].double()  # nothing above 1 kHz
    snr = band_snr(ref + 0.01, ref, 8000, [0.0, 1000.0, 4000.0])
    assert torch.isfinite(snr[0, 0]) and torch.isnan(snr[0, 1])
