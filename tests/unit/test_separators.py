"""The generic contract every registered separator meets, in both downsampling modes."""

from pathlib import Path

import pytest
import torch

import sfsrnet
from sfsrnet.checkpoint import build_system, load_checkpoint, save_checkpoint
from sfsrnet.config import load_yaml
from sfsrnet.losses import SeparationLoss

SEPARATORS_DIR = Path(__file__).resolve().parents[2] / "config" / "separators"
NAMES = sorted(p.stem for p in SEPARATORS_DIR.glob("*.yaml"))


def _spec(name: str, n_src: int = 2, factor: int = 1, mode: str = "resample") -> dict:
    return {
        "separator": name,
        "separator_args": load_yaml(SEPARATORS_DIR / f"{name}.yaml")["presets"]["tiny"],
        "n_src": n_src,
        "sample_rate": 8000,
        "factor": factor,
        "mode": mode,
    }


def test_every_registered_separator_has_a_preset_file():
    assert sfsrnet.list_separators() == NAMES


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", ["resample", "stride"])
@pytest.mark.parametrize("factor", [1, 2, 4])
def test_output_shape_for_odd_lengths_and_three_sources(name, mode, factor):
    torch.manual_seed(0)
    for n_src, length in [(2, 4000), (3, 4003)]:
        system = build_system(_spec(name, n_src, factor, mode)).eval()
        with torch.no_grad():
            out = system(torch.randn(2, length))
        assert out.shape == (2, n_src, length), (n_src, length)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("factor", [2, 4])
def test_stride_mode_multiplies_the_encoder_stride(name, factor):
    plain = build_system(_spec(name, factor=1, mode="stride")).separator.encoder.filterbank
    strided = build_system(_spec(name, factor=factor, mode="stride")).separator.encoder.filterbank
    assert strided.stride == factor * plain.stride
    assert strided.kernel_size == factor * plain.kernel_size


@pytest.mark.parametrize("name", NAMES)
def test_save_and_reload_give_identical_output(name, tmp_path):
    spec = _spec(name, factor=2)
    system = build_system(spec).eval()
    mix = torch.randn(1, 3001)
    with torch.no_grad():
        before = system(mix)
    save_checkpoint(tmp_path / "model.pt", system, spec)
    reloaded, payload = load_checkpoint(tmp_path / "model.pt")
    assert payload["spec"] == spec
    with torch.no_grad():
        assert torch.equal(before, reloaded(mix))


@pytest.mark.parametrize("name", NAMES)
def test_a_few_training_steps_lower_the_loss(name):
    """Overfit one fixed batch: the loss must fall, or gradients do not reach the weights."""
    torch.manual_seed(0)
    system = build_system(_spec(name)).train()
    ref = torch.randn(2, 2, 2000) * torch.linspace(0.2, 1.0, 2)[None, :, None]
    mix = ref.sum(1)
    loss_fn = SeparationLoss(8000, "rising-rate")
    optimizer = torch.optim.Adam(system.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = loss_fn(system(mix), ref, system.intermediate_estimates)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5, losses


def test_intermediate_estimates_reach_the_full_rate():
    system = build_system(_spec("sfsrnet", factor=2)).train()
    est = system(torch.randn(2, 4001))
    n_blocks = system.separator.masker.blocks.__len__()
    assert len(system.intermediate_estimates) == n_blocks - 1
    assert all(e.shape == est.shape for e in system.intermediate_estimates)
    system.eval()
    with torch.no_grad():
        system(torch.randn(1, 800))
    assert system.intermediate_estimates == []


def test_unregistered_stride_args_refuse_stride_mode():
    from torch import nn

    from sfsrnet.errors import ConfigError
    from sfsrnet.registry import _FACTORIES, strided_args

    class Plain(nn.Module):
        def __init__(self, n_src: int, sample_rate: int) -> None:
            super().__init__()
            self.n_src, self.sample_rate = n_src, sample_rate

    sfsrnet.register_separator("plain_for_test", Plain)
    try:
        with pytest.raises(ConfigError, match="resample"):
            strided_args("plain_for_test", {}, 2)
    finally:
        _FACTORIES.pop("plain_for_test")


@pytest.mark.parametrize(
    ("name", "with_sr", "published_M", "tolerance"),
    [("sepformer", False, 26.0, 0.05), ("sfsrnet", True, 59.0, 0.10)],
)
def test_published_presets_match_the_published_sizes(name, with_sr, published_M, tolerance):
    """PAPER.md: SepFormer 26 M parameters; SFSRNet (separator + SR) 59 M."""
    args = load_yaml(SEPARATORS_DIR / f"{name}.yaml")["presets"]["published"]
    model = sfsrnet.build_separator(name, n_src=2, sample_rate=8000, **args)
    n_params = sum(p.numel() for p in model.parameters())
    if with_sr:
        from sfsrnet.sr import SuperResolution

        sr_args = load_yaml(SEPARATORS_DIR.parent / "sr.yaml")["presets"]["published"]
        n_params += sum(p.numel() for p in SuperResolution(2, 8000, **sr_args).parameters())
    assert abs(n_params / 1e6 - published_M) / published_M < tolerance, n_params
