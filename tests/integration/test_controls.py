"""Issue 14's training controls on a real tiny training: epoch 0 of a staged SR cell (the
separator alone) is kept when SR makes validation worse, and a budget cell trains the SR-off
twin further, unfrozen, for sr.epochs."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from sfsrnet.checkpoint import load_checkpoint
from sfsrnet.train import train_cell

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def config(small_config, tmp_path_factory):
    """ConvTasNet (tiny preset), factor 1, one short epoch."""
    return {
        **small_config,
        "results_dir": str(tmp_path_factory.mktemp("results")),
        "train": {**small_config["train"], "epochs": 1, "segment": 0.5},
    }


@pytest.fixture(scope="module")
def twin(config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sr-off")
    train_cell(config, out, threads=1)
    return out


def _separator_weights(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {k: v for k, v in state.items() if k.startswith("separator.")}


def test_staged_sr_that_makes_validation_worse_keeps_epoch_0(config, twin, tmp_path):
    # A learning rate far too large: every SR epoch moves SR away from the identity it starts
    # as and validates worse than the separator alone, which epoch 0 is.
    staged = {
        **config,
        "train": {**config["train"], "lr": 1.0},
        "sr": {
            **config["sr"],
            "enabled": True,
            "training": "staged",
            "epochs": 2,
            "init_from": str(twin / "checkpoint.pt"),
            "args": {"channels": [4, 8, 4], "kernels": [3, 3, 3, 3], "phase": "hybrid"},
        },
    }
    summary = train_cell(staged, tmp_path, threads=1)
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert log.epoch.tolist() == [0, 1, 2]
    assert math.isnan(log.train_loss[0])  # epoch 0 trains nothing
    assert (log.valid_si_snr[1:] < log.valid_si_snr[0]).all()
    assert summary["best_epoch"] == 0
    # The kept checkpoint is the twin's separator with SR as it starts: the identity.
    system, payload = load_checkpoint(tmp_path / "checkpoint.pt")
    assert payload["epoch"] == 0 and system.sr is not None
    twin_weights = _separator_weights(twin / "checkpoint.pt")
    kept = _separator_weights(tmp_path / "checkpoint.pt")
    assert kept.keys() == twin_weights.keys()
    assert all(torch.equal(kept[k], twin_weights[k]) for k in kept)
    assert payload["valid_si_snr"] == pytest.approx(log.valid_si_snr[0])
    separator_alone, _ = load_checkpoint(twin / "checkpoint.pt")
    mix = torch.randn(1, 8000)
    with torch.no_grad():
        assert torch.allclose(system.eval()(mix), separator_alone.eval()(mix), atol=1e-4)


def test_budget_cell_trains_the_twin_further_for_sr_epochs(config, twin, tmp_path):
    budget = {
        **config,
        "sr": {
            **config["sr"],
            "enabled": False,
            "control": "budget",
            "epochs": 2,
            "init_from": str(twin / "checkpoint.pt"),
        },
    }
    summary = train_cell(budget, tmp_path, threads=1)
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert log.epoch.tolist() == [0, 1, 2] and summary["epochs"] == 2
    twin_log = pd.read_csv(twin / "train_log.csv")
    # Epoch 0 is the twin itself; the separator is not frozen, so it moves.
    assert log.valid_si_snr[0] == pytest.approx(twin_log.valid_si_snr.max(), abs=1e-4)
    last = torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=True)["state_dict"]
    start = _separator_weights(twin / "checkpoint.pt")
    assert any(not torch.equal(last[k], start[k]) for k in start)
