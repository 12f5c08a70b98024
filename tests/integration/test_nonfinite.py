"""A non-finite loss or gradient stops training with a message naming cell, epoch and step and
keeps the last good checkpoint; `train.nonfinite: skip` skips such batches instead.

The failure comes from a separator registered by a module of the user's own
(`separator.module: probe_separator`, see probe_separator.py), through the CLI's real path.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from sfsrnet.__main__ import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"

pytestmark = pytest.mark.slow

CELL = "probe/ds1/seed0"


@pytest.fixture(autouse=True)
def _forget_the_probe():
    """The probe registers itself when a config imports it; unregister it after each test."""
    yield
    from sfsrnet.registry import _FACTORIES

    _FACTORIES.pop("probe", None)
    sys.modules.pop("probe_separator", None)


@pytest.fixture
def run(small_config, tmp_path, capsys):
    """Train the probe separator (3 steps an epoch, 2 epochs) with its args and train keys."""

    def train(args: dict, **train_keys) -> tuple[int, str]:
        config = {
            **small_config,
            "separator": {"name": "probe", "module": "probe_separator", "args": args},
            "train": {**small_config["train"], "epochs": 2, **train_keys},
            "cell": {"name": CELL, "axes": {}},
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        code = main(["train", "--config", str(path), "--out", str(tmp_path / "cell")])
        return code, capsys.readouterr().err

    return train


def _state(path) -> dict:
    return torch.load(path, weights_only=True)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(run, tmp_path):
    code, err = run({"fail_at": 5})  # the 5th training step: epoch 2, step 2 of 3
    message = " ".join(err.split())
    assert code == 2 and "Traceback" not in err
    assert f"cell {CELL}: non-finite loss (nan) at epoch 2, step 2 of 3" in message
    assert "the last good checkpoint" in message and "(epoch 1) is kept" in message
    assert "train.nonfinite: skip" in message
    last = _state(tmp_path / "cell" / "last.pt")
    best = _state(tmp_path / "cell" / "checkpoint.pt")
    assert last["epoch"] == 1 and best["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())
    assert not (tmp_path / "cell" / "train.json").exists()
    # The message as docs/errors.md shows it.
    shown = message.replace(str(tmp_path / "cell"), "<cell dir>").replace(CELL, "<cell>")
    assert f"| `{shown.split(' (run with')[0]}` |" in DOC.read_text()


def test_infinite_gradient_stops_before_any_update(run, tmp_path):
    code, err = run({"fail_at": 2, "poison": "grad"})
    message = " ".join(err.split())
    assert code == 2
    assert f"cell {CELL}: non-finite gradient norm" in message and "epoch 1, step 2 of 3" in message
    assert "no checkpoint had been written yet" in message
    assert not (tmp_path / "cell" / "last.pt").exists()


def test_skip_mode_skips_and_counts_the_batch(run, tmp_path):
    code, err = run({"fail_at": 2}, nonfinite="skip")
    assert code == 0, err
    summary = json.loads((tmp_path / "cell" / "train.json").read_text())
    assert summary["skipped_batches"] == 1 and summary["nonfinite"] == "skip"
    log = pd.read_csv(tmp_path / "cell" / "train_log.csv")
    assert log.skipped_batches.tolist() == [1, 0]
    weights = _state(tmp_path / "cell" / "checkpoint.pt")["state_dict"]
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_skip_mode_stops_after_the_limit(run):
    code, err = run({"fail_at": 2}, nonfinite="skip", max_skipped_batches=0)
    assert code == 2 and "more than train.max_skipped_batches=0" in " ".join(err.split())
