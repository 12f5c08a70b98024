import pytest
import torch

from sfsrnet import SeparationSystem, build_separator
from sfsrnet.audio import resample
from sfsrnet.errors import ConfigError


def _system(factor: int, n_src: int = 2, name: str = "convtasnet") -> SeparationSystem:
    args = {
        "convtasnet": {
            "n_blocks": 2,
            "n_repeats": 1,
            "n_filters": 32,
            "bn_chan": 16,
            "hid_chan": 16,
            "skip_chan": 16,
        },
        "dprnn": {"n_filters": 16, "bn_chan": 16, "hid_size": 16, "chunk_size": 20, "n_repeats": 1},
    }[name]
    sep = build_separator(name, n_src=n_src, sample_rate=8000 // factor, **args)
    return SeparationSystem(sep, sample_rate=8000, factor=factor)


@pytest.mark.parametrize("name", ["convtasnet", "dprnn"])
@pytest.mark.parametrize("factor", [1, 2, 4])
@pytest.mark.parametrize("length", [4000, 4001, 3999])
def test_output_shape_matches_the_full_rate_input(name, factor, length):
    system = _system(factor, n_src=3 if length % 2 else 2, name=name)
    out = system(torch.randn(2, length))
    assert out.shape == (2, system.n_src, length)


def test_downsampled_estimates_have_no_high_band():
    """At factor 4 the estimates are band-limited to 1 kHz: the SR add-on's reason to exist."""
    system = _system(4).eval()
    with torch.no_grad():
        est = system(torch.randn(1, 8000))
    spec = torch.fft.rfft(est[0], dim=-1).abs() ** 2
    freqs = torch.fft.rfftfreq(8000, 1 / 8000)
    high = spec[:, freqs > 1100].sum() / spec.sum()
    assert high < 1e-3


def test_resampler_round_trip_keeps_the_low_band():
    t = torch.arange(8000) / 8000
    tone = torch.sin(2 * torch.pi * 300 * t)
    back = resample(resample(tone, 8000, 2000), 2000, 8000)
    assert torch.allclose(back[200:-200], tone[200:-200], atol=1e-2)


def test_factor_that_does_not_divide_the_rate_is_a_config_error():
    sep = build_separator("convtasnet", n_src=2, sample_rate=8000, n_blocks=1, n_repeats=1)
    with pytest.raises(ConfigError, match="factor 3"):
        SeparationSystem(sep, sample_rate=8000, factor=3)


def test_separator_at_the_wrong_rate_is_refused():
    sep = build_separator("convtasnet", n_src=2, sample_rate=8000, n_blocks=1, n_repeats=1)
    with pytest.raises(ConfigError, match="needs 4000 Hz"):
        SeparationSystem(sep, sample_rate=8000, factor=2)


def _spec(control: str | None) -> dict:
    spec = {
        "separator": "convtasnet",
        "module": None,
        "separator_args": {"n_blocks": 1, "n_repeats": 1, "n_filters": 16, "bn_chan": 8},
        "n_src": 2,
        "sample_rate": 8000,
        "factor": 2,
        "mode": "resample",
        "sr": {"channels": [4, 8, 4], "kernels": [3, 3, 3, 3]},
        "sr_split_hz": 2000.0,
    }
    return spec if control is None else {**spec, "sr_control": control}


def test_refine_control_leaves_the_estimate_above_the_low_nyquist_untouched():
    """Refine only: below 2 kHz (the low-rate Nyquist at factor 2) the SR output, above it the
    upsampled estimate itself, bin for bin."""
    from sfsrnet.checkpoint import build_system

    torch.manual_seed(0)
    refine = build_system(_spec("refine")).eval()
    with torch.no_grad():  # an SR network far from the identity it may start as
        for param in refine.sr.parameters():
            param.add_(0.5 * torch.randn_like(param))
    plain = build_system(_spec("none")).eval()
    plain.load_state_dict(refine.state_dict())
    mix = torch.randn(2, 4000)
    with torch.no_grad():
        out, full = refine(mix), plain(mix)
    est = refine.separator_estimate
    freqs = torch.fft.rfftfreq(4000, 1 / 8000)
    spec_out, spec_est, spec_full = (torch.fft.rfft(x) for x in (out, est, full))
    high, low = freqs >= 2000, freqs < 2000
    assert torch.allclose(spec_out[..., high], spec_est[..., high], atol=1e-3)
    assert torch.allclose(spec_out[..., low], spec_full[..., low], atol=1e-3)
    # The plain SR network does change the band above (else the control would test nothing).
    assert not torch.allclose(spec_full[..., high], spec_est[..., high], atol=1e-2)


def test_a_checkpoint_spec_without_sr_control_builds_plain_sr():
    from sfsrnet.checkpoint import build_system

    assert build_system(_spec(None)).refine_only is False
    assert build_system(_spec("refine")).refine_only is True
