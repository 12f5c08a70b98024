"""The SR add-on: heuristic maths, exact STFT round trip, shapes, gradients."""

import pytest
import torch

from sfsrnet.checkpoint import build_system
from sfsrnet.losses import SeparationLoss
from sfsrnet.sr import STFT, SuperResolution, heuristic_high_band

TINY_SR = {"channels": (4, 4, 4), "kernels": (3, 3, 3, 3)}


def test_heuristic_uses_the_low_band_ratio_per_frame():
    """Mixture twice the estimate in the low band at frame 0, four times at frame 1."""
    torch.manual_seed(0)
    est = torch.rand(1, 2, 10, 2) + 0.1  # (B, C, F, frames)
    mix = torch.rand(1, 10, 2) + 0.1
    split = 4
    low_mix = mix[0, :split].sum(0)  # (frames,)
    est[0, 0, :split] = est[0, 0, :split] * (low_mix / (2 * est[0, 0, :split].sum(0)))
    est[0, 0, :split, 1] *= 0.5
    high = heuristic_high_band(mix, est, split, eps=0.0)
    assert torch.allclose(high[0, 0, split:, 0], 2 * mix[0, split:, 0])
    assert torch.allclose(high[0, 0, split:, 1], 4 * mix[0, split:, 1])
    assert (high[:, :, :split] == 0).all()
    inverse = heuristic_high_band(mix, est, split, ratio="estimate/mixture", eps=0.0)
    assert torch.allclose(inverse[0, 0, split:, 0], 0.5 * mix[0, split:, 0])


def test_heuristic_eps_keeps_a_silent_estimate_finite():
    high = heuristic_high_band(torch.ones(1, 8, 3), torch.zeros(1, 2, 8, 3), 4, eps=1e-8)
    assert torch.isfinite(high).all()


@pytest.mark.parametrize("sample_rate", [8000, 16000])
@pytest.mark.parametrize("length", [8000, 8001, 777])
@pytest.mark.parametrize("window", ["hann", "hamming", "sqrt_hann"])
def test_stft_round_trip_is_exact(sample_rate, length, window):
    stft = STFT(sample_rate, window=window)
    assert stft.n_fft == 256 * sample_rate // 8000 and stft.hop == 64 * sample_rate // 8000
    x = torch.randn(2, 3, length, dtype=torch.float64)
    stft.window = stft.window.double()
    assert torch.allclose(stft.inverse(stft(x), length), x, atol=1e-10)


def test_stft_has_129_bins_at_8k():
    assert STFT(8000)(torch.randn(1, 8000)).shape[-2] == 129


@pytest.mark.parametrize("n_src", [2, 3])
@pytest.mark.parametrize("length", [4000, 4001, 1234])
@pytest.mark.parametrize("heuristic", [True, False])
def test_sr_output_shape_and_length(n_src, length, heuristic):
    sr = SuperResolution(n_src, 8000, heuristic=heuristic, **TINY_SR)
    out = sr(torch.randn(2, length), torch.randn(2, n_src, length))
    assert out.shape == (2, n_src, length)


def test_published_sr_size_matches_the_paper_arithmetic():
    sr = SuperResolution(2, 8000)
    n_params = sum(p.numel() for p in sr.parameters())
    assert 6.5e6 < n_params < 6.9e6  # PAPER.md: about 6.7 M for C = 2


def test_sr_with_zero_correction_returns_the_estimate():
    """delta = 0 (last layer zeroed): the output is the estimate, through the exact iSTFT."""
    sr = SuperResolution(2, 8000, phase="estimate", **TINY_SR)
    last = sr.net[-1]
    torch.nn.init.zeros_(last.weight), torch.nn.init.zeros_(last.bias)
    est = torch.randn(1, 2, 3001)
    assert torch.allclose(sr(torch.randn(1, 3001), est), est, atol=1e-4)


def _spec(sr: dict | None, factor: int = 2) -> dict:
    return {
        "separator": "convtasnet",
        "separator_args": {
            "n_blocks": 1,
            "n_repeats": 1,
            "n_filters": 16,
            "bn_chan": 8,
            "hid_chan": 8,
            "skip_chan": 8,
        },
        "n_src": 2,
        "sample_rate": 8000,
        "factor": factor,
        "mode": "resample",
        "sr": sr,
    }


def test_joint_gradients_reach_sr_and_separator():
    system = build_system(_spec(TINY_SR)).train()
    ref = torch.randn(2, 2, 2000)
    loss = SeparationLoss(8000).for_system(system, system(ref.sum(1)), ref, staged=False)
    loss.backward()
    assert all(p.grad is not None for p in system.sr.parameters())
    # Asteroid's last TCN block has a residual conv whose output nothing uses: no gradient there.
    unused = {n for n, p in system.separator.named_parameters() if p.grad is None}
    assert unused <= {"masker.TCN.0.res_conv.weight", "masker.TCN.0.res_conv.bias"}
    for part in (system.sr, system.separator):
        assert any(p.grad.abs().sum() > 0 for p in part.parameters() if p.grad is not None)


def test_staged_loss_is_the_sr_output_loss_only():
    system = build_system(_spec(TINY_SR)).train()
    system.separator.requires_grad_(False)
    ref = torch.randn(2, 2, 2000)
    est = system(ref.sum(1))
    loss = SeparationLoss(8000).for_system(system, est, ref, staged=True)
    assert loss.item() == pytest.approx(SeparationLoss(8000).pit(est, ref).item())
    loss.backward()
    assert all(p.grad is None for p in system.separator.parameters())
    assert any(p.grad is not None for p in system.sr.parameters())


def test_fresh_sr_is_the_identity():
    """A new SR network leaves the upsampled estimate unchanged until it has learned something."""
    system = build_system(_spec(TINY_SR, factor=4)).eval()
    with torch.no_grad():
        out = system(torch.randn(1, 8000))
    assert torch.allclose(out, system.separator_estimate, atol=1e-5)


def test_sr_can_put_energy_above_the_low_rate_nyquist():
    """With a non-zero correction and the hybrid phase, SR puts energy above 1 kHz at factor 4,
    where the upsampled estimate has none (with the estimate's phase it could not)."""
    system = build_system({**_spec({**TINY_SR, "phase": "hybrid"}, factor=4)}).eval()
    torch.manual_seed(0)
    torch.nn.init.normal_(system.sr.net[-1].weight, std=0.1)
    mix = torch.randn(1, 8000)
    with torch.no_grad():
        out = system(mix)
    spec = torch.fft.rfft(out[0], dim=-1).abs() ** 2
    sep = torch.fft.rfft(system.separator_estimate[0], dim=-1).abs() ** 2
    freqs = torch.fft.rfftfreq(8000, 1 / 8000)
    high = freqs > 1100
    assert spec[:, high].sum() > 100 * sep[:, high].sum()


def test_counted_sr_macs_match_the_conv_arithmetic():
    """torch's FLOP counter, halved, against the layer-by-layer count of the SR's convolutions."""
    from sfsrnet.cost import count_macs

    sr = SuperResolution(2, 8000, channels=(8, 16, 8), kernels=(3, 5, 5, 3))
    length = 8000
    frames = length // 64 + 1
    widths, kernels = [5, 8, 16, 8, 2], [3, 5, 5, 3]
    per_bin = sum(a * b * k * k for a, b, k in zip(widths, widths[1:], kernels, strict=False))
    expected = per_bin * 129 * frames
    counted = count_macs(sr, torch.randn(1, length), torch.randn(1, 2, length))
    assert counted == pytest.approx(expected, rel=0.05)


def _band_limited(x: torch.Tensor, factor: int, rate: int = 8000) -> torch.Tensor:
    """``x`` through the resample path of a system at ``factor``: empty above rate / (2 d)."""
    from sfsrnet.audio import fit_length, resample

    if factor == 1:
        return x
    return fit_length(
        resample(resample(x, rate, rate // factor), rate // factor, rate), x.shape[-1]
    )


@pytest.mark.parametrize("factor", [1, 2, 4])
@pytest.mark.parametrize("phase", ["estimate", "mixture", "hybrid", "complex"])
@pytest.mark.parametrize("silent", [False, True])
def test_gradient_through_sr_stays_near_the_gradient_without(factor, phase, silent):
    """MSE against a reference: the gradient into the (upsampled) estimate through SR, once its
    last layer has moved away from zero, within 10x of the same loss on the estimate itself,
    also where one source's estimate is near silent (the old phase term divided by it)."""
    torch.manual_seed(0)
    ref = torch.randn(2, 2, 8000)
    base = 0.5 * ref + 0.1 * torch.randn_like(ref)
    if silent:
        base[:, 1] *= 1e-5
    base = _band_limited(base, factor)
    sr = SuperResolution(2, 8000, factor=factor, phase=phase, **TINY_SR)
    torch.nn.init.normal_(sr.net[-1].weight, std=0.01)
    norms = []
    for through_sr in (False, True):
        est = base.clone().requires_grad_(True)
        out = sr(ref.sum(1), est) if through_sr else est
        torch.nn.functional.mse_loss(out, ref).backward()
        norms.append(est.grad.norm().item())
    assert norms[1] < 10 * norms[0] and norms[0] < 10 * norms[1], norms


@pytest.mark.parametrize(("factor", "split_hz"), [(1, 2000.0), (2, 2000.0), (4, 1000.0)])
def test_heuristic_split_defaults_to_the_low_rate_nyquist(factor, split_hz):
    sr = SuperResolution(2, 8000, factor=factor, **TINY_SR)
    assert sr.split_hz == split_hz
    assert SuperResolution(2, 16000, factor=factor, **TINY_SR).split_hz == 2 * split_hz


def test_build_system_gives_sr_the_factor_and_mode():
    system = build_system(_spec(TINY_SR, factor=4))
    assert (system.sr.factor, system.sr.mode, system.sr.split_hz) == (4, "resample", 1000.0)


def test_heuristic_ratio_max_bounds_a_silent_estimate():
    high = heuristic_high_band(torch.ones(1, 8, 3), torch.zeros(1, 2, 8, 3), 4, ratio_max=50.0)
    assert torch.allclose(high[:, :, 4:], torch.full_like(high[:, :, 4:], 50.0))


@pytest.mark.parametrize("phase", ["estimate", "mixture", "hybrid", "complex"])
@pytest.mark.parametrize("factor", [1, 4])
def test_fresh_sr_is_the_identity_for_every_phase(phase, factor):
    sr = SuperResolution(2, 8000, factor=factor, phase=phase, **TINY_SR)
    est = _band_limited(torch.randn(1, 2, 3001), factor)
    with torch.no_grad():
        assert torch.allclose(sr(torch.randn(1, 3001), est), est, atol=1e-4)


def test_complex_sr_has_two_output_channels_per_source():
    sr = SuperResolution(3, 8000, phase="complex", **TINY_SR)
    assert sr.net[-1].out_channels == 6


def _voices(seconds: float = 2.0, shift: float = 0.0) -> torch.Tensor:
    """Two synthetic harmonic voices ``(2, time)`` at 8 kHz, with syllable-like envelopes that
    mostly alternate (speech is sparse in time-frequency), full band up to 3.9 kHz."""
    t = torch.arange(round(seconds * 8000)) / 8000
    voices = []
    for f0, offset in ((130.0, 0.0), (210.0, 0.5)):
        phase_t = 2 * torch.pi * f0 * (1 + shift) * (t + 0.05 * torch.sin(3 * t))
        tone = sum(torch.sin(k * phase_t) / k**0.5 for k in range(1, int(3900 / f0)))
        voices.append(tone * torch.sin(torch.pi * (3 * t + offset)) ** 4)
    return torch.stack(voices)


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("phase", ["estimate", "mixture", "hybrid"])
def test_oracle_magnitude_restores_the_band_above_the_nyquist(factor, phase):
    """The true magnitude above rate / (2 d), put there by SR's own phase rule on the band-limited
    reference, scores at least +12 dB there in resample mode (the estimate's residue phase gave
    about 0 dB); synthetic harmonic voices with sparse spectra, like speech."""
    from sfsrnet.metrics import band_snr

    torch.manual_seed(1)
    ref = _voices()[None]
    mix = ref.sum(1)
    sr = SuperResolution(2, 8000, factor=factor, phase=phase, **TINY_SR)
    low = _band_limited(ref, factor)
    est_spec, mix_spec, ref_spec = sr.stft(low), sr.stft(mix), sr.stft(ref)
    mag = est_spec.abs().clone()
    mag[..., sr.nyquist_bin :, :] = ref_spec.abs()[..., sr.nyquist_bin :, :]
    out = sr.stft.inverse(sr.apply_magnitude(mix_spec, est_spec, mag), ref.shape[-1])
    nyquist = 4000 / factor
    snr = band_snr(out[0], ref[0], 8000, [0.0, nyquist, 4000.0])
    assert (snr[:, 1] >= 12).all(), snr


def test_sr_oracle_bench_runs_on_a_tiny_corpus(tmp_path):
    """Two utterances of a generic-layout corpus: every row, and the default phase restores the
    band above the low-rate Nyquist in resample mode (the residue phase does not)."""
    from sfsrnet.audio import write_wav
    from sfsrnet.bench import bench_sr_oracle

    for n in range(2):
        ref = _voices(1.0, shift=0.1 * n)
        write_wav(tmp_path / "c" / "test" / "mix" / f"{n}.wav", ref.sum(0), 8000)
        for c in range(2):
            write_wav(tmp_path / "c" / "test" / f"s{c + 1}" / f"{n}.wav", ref[c], 8000)
    table = bench_sr_oracle(tmp_path / "out", tmp_path / "c", n_utterances=2)
    assert len(table) == 2 * 2 * 4 * 6 and (table.utterances == 2).all()
    assert (tmp_path / "out" / "sr_oracle.csv").is_file()
    oracle = table[(table["mode"] == "resample") & (table.magnitude == "oracle")]
    above = oracle.set_index(["factor", "phase"]).above_nyquist_db
    for factor in (2, 4):
        assert above[factor, "default"] >= 12 and above[factor, "residue"] < 3, above


def test_checkpoints_from_before_sr_knew_the_factor_load_with_their_inputs(tmp_path):
    """A checkpoint without ``sr_args`` was trained with the split at rate / 4 and raw inputs:
    it loads (same state keys) with those; a new one keeps the current defaults."""
    from sfsrnet.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint, write_payload

    spec = _spec(TINY_SR, factor=4)
    save_checkpoint(tmp_path / "new.pt", build_system(spec), spec)
    new = load_checkpoint(tmp_path / "new.pt")[0].sr
    assert (new.split_hz, new.input_norm, new.ratio_max) == (1000.0, "log", 100.0)
    payload = read_checkpoint(tmp_path / "new.pt")
    del payload["sr_args"]
    write_payload(tmp_path / "old.pt", payload)
    old = load_checkpoint(tmp_path / "old.pt")[0].sr
    assert (old.split_hz, old.input_norm, old.ratio_max) == (2000.0, "none", None)
    assert (old.factor, old.mode) == (4, "resample")


def test_sr_oracle_bench_adds_a_checkpoints_sr_magnitude(tmp_path):
    from sfsrnet.audio import write_wav
    from sfsrnet.bench import bench_sr_oracle
    from sfsrnet.checkpoint import save_checkpoint

    ref = _voices(0.5)
    write_wav(tmp_path / "c" / "test" / "mix" / "0.wav", ref.sum(0), 8000)
    for c in range(2):
        write_wav(tmp_path / "c" / "test" / f"s{c + 1}" / "0.wav", ref[c], 8000)
    spec = _spec(TINY_SR, factor=2)
    save_checkpoint(tmp_path / "ckpt.pt", build_system(spec), spec)
    table = bench_sr_oracle(
        tmp_path / "out", tmp_path / "c", 1, tmp_path / "ckpt.pt", factors=(2,), modes=("resample",)
    )
    fresh = table[table.magnitude == "sr"].set_index("phase")
    none = table[table.magnitude == "none"].set_index("phase")
    # A fresh SR is the identity: its magnitude is the oracle low band's own.
    assert len(fresh) == 6
    assert abs(fresh.above_nyquist_db["default"] - none.above_nyquist_db["default"]) < 0.5
