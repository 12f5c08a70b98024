"""Interrupted trainings lose nothing: a SIGKILLed `python -m sfsrnet train` resumes from last.pt
and ends bit-identical (on CPU) to an uninterrupted run; the same seed gives the same result."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from sfsrnet import train as train_module
from sfsrnet.evaluate import evaluate_checkpoint
from sfsrnet.resume import TrainingState, load_resume_state, training_identity
from sfsrnet.train import train_cell

pytestmark = pytest.mark.slow

CELL = "convtasnet/ds1/seed0"


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, different[:5]


def _log(cell_dir: Path) -> pd.DataFrame:
    return pd.read_csv(cell_dir / "train_log.csv")[["epoch", "train_loss", "valid_si_snr", "lr"]]


def _metrics(cell_dir: Path, corpus: Path) -> pd.DataFrame:
    table, _ = evaluate_checkpoint(cell_dir / "checkpoint.pt", corpus, progress=False)
    return table


@pytest.fixture(scope="module")
def config(small_config, tmp_path_factory):
    """ConvTasNet (tiny preset), factor 1, 3 short epochs of 3 steps; about 1 s an epoch."""
    return {
        **small_config,
        "results_dir": str(tmp_path_factory.mktemp("results")),
        "train": {**small_config["train"], "epochs": 3, "segment": 0.5},
        "cell": {"name": CELL, "axes": {"separator": "convtasnet", "factor": 1, "seed": 0}},
    }


@pytest.fixture(scope="module")
def uninterrupted(config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    train_cell(config, out, threads=1)
    return out


def _start_training(config: dict, out: Path) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "sfsrnet", "train", "--config", str(out / "config.yaml")]
    cmd += ["--out", str(out), "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _kill_inside_epoch_two(process: subprocess.Popen, last: Path) -> int:
    """SIGKILL the training once epoch 1's last.pt is on disk; returns last.pt's epoch then."""
    deadline = time.monotonic() + 300
    while not last.exists():
        assert process.poll() is None, process.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "no last.pt after 300 s"
        time.sleep(0.01)
    # A moment for the best checkpoint to be written too: the process is then in epoch 2.
    time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    return int(torch.load(last, weights_only=True)["epoch"])


def test_killed_training_resumes_to_identical_weights_and_metrics(
    config, uninterrupted, small_corpus, tmp_path
):
    cell_dir = tmp_path / "killed"
    epoch_at_kill = _kill_inside_epoch_two(_start_training(config, cell_dir), cell_dir / "last.pt")
    assert 1 <= epoch_at_kill < config["train"]["epochs"]
    assert not (cell_dir / "train.json").exists(), "the kill came after the training ended"
    # What Snakemake does to a failed job: its declared outputs are removed; last.pt is not one.
    for name in ("checkpoint.pt", "train_log.csv"):
        (cell_dir / name).unlink(missing_ok=True)

    again = _start_training(config, cell_dir)
    output = again.communicate()[0]
    assert again.returncode == 0, output[-3000:]
    assert f"resuming {CELL} from epoch {epoch_at_kill}" in output

    pd.testing.assert_frame_equal(_log(cell_dir), _log(uninterrupted), check_exact=True)
    _assert_same_weights(cell_dir / "checkpoint.pt", uninterrupted / "checkpoint.pt")
    _assert_same_weights(cell_dir / "last.pt", uninterrupted / "last.pt")
    pd.testing.assert_frame_equal(
        _metrics(cell_dir, small_corpus), _metrics(uninterrupted, small_corpus), check_exact=True
    )
    summary = json.loads((cell_dir / "train.json").read_text())
    assert summary["resumed_from_epochs"] == [epoch_at_kill]
    assert summary["seed"] == 0
    assert json.loads((cell_dir / "provenance_train.json").read_text())["seed"] == 0


def test_resume_only_from_an_unfinished_training_of_the_same_config(
    config, uninterrupted, tmp_path, caplog
):
    payload = torch.load(uninterrupted / "last.pt", weights_only=True)
    assert payload["resume"]["finished"] is True
    identity = training_identity(config)
    with caplog.at_level(logging.INFO, logger="sfsrnet.resume"):
        assert load_resume_state(uninterrupted / "last.pt", identity, CELL) is None
    assert "training that finished" in caplog.text

    payload["resume"]["finished"] = False
    torch.save(payload, tmp_path / "last.pt")
    assert load_resume_state(tmp_path / "last.pt", identity, CELL)["epoch"] == 3
    # Keys that cannot change the result do not block resuming...
    cosmetic = {**config, "train": {**config["train"], "progress": True}, "study": "renamed"}
    assert load_resume_state(tmp_path / "last.pt", training_identity(cosmetic), CELL)
    # ... any other change starts over and says which key changed.
    changed = {**config, "train": {**config["train"], "lr": 0.01}}
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sfsrnet.resume"):
        assert load_resume_state(tmp_path / "last.pt", training_identity(changed), CELL) is None
    assert "another config (changed: train.lr)" in caplog.text


class _Killed(BaseException):
    """Stands in for SIGKILL in an in-process training (not an Exception: nothing catches it)."""


def _interrupt_at_validation(monkeypatch, epoch: int) -> None:
    real = train_module.validate
    calls = {"n": 0}

    def validate(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == epoch:
            raise _Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "validate", validate)


def test_staged_sr_resumes_to_identical_weights(config, uninterrupted, tmp_path, monkeypatch):
    staged = {
        **config,
        "sr": {
            **config["sr"],
            "enabled": True,
            "training": "staged",
            "epochs": 2,
            "init_from": str(uninterrupted / "checkpoint.pt"),
            "args": {"channels": [4, 8, 4], "kernels": [3, 3, 3, 3], "phase": "hybrid"},
        },
        "cell": {"name": "convtasnet/ds1/sr-on/seed0", "axes": {"sr": True}},
    }
    train_cell(staged, tmp_path / "whole", threads=1)
    with monkeypatch.context() as patch:
        # The third validation is epoch 2's (the first is epoch 0, the separator alone): killed
        # at the end of epoch 2, before last.pt.
        _interrupt_at_validation(patch, epoch=3)
        with pytest.raises(_Killed):
            train_cell(staged, tmp_path / "resumed", threads=1)
    assert torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["epoch"] == 1
    summary = train_cell(staged, tmp_path / "resumed", threads=1)
    assert summary["resumed_from_epochs"] == [1]
    _assert_same_weights(
        tmp_path / "resumed" / "checkpoint.pt", tmp_path / "whole" / "checkpoint.pt"
    )
    pd.testing.assert_frame_equal(_log(tmp_path / "resumed"), _log(tmp_path / "whole"))
    assert _log(tmp_path / "whole").epoch.tolist() == [0, 1, 2]


def test_no_resume_starts_over(config, tmp_path, monkeypatch, caplog):
    short = {**config, "train": {**config["train"], "epochs": 2}}
    with monkeypatch.context() as patch:
        _interrupt_at_validation(patch, epoch=2)
        with pytest.raises(_Killed):
            train_cell(short, tmp_path, threads=1)
    fresh = {**short, "train": {**short["train"], "resume": False}}
    with caplog.at_level(logging.INFO, logger="sfsrnet.train"):
        summary = train_cell(fresh, tmp_path, threads=1)
    assert summary["resumed_from_epochs"] == [] and "resuming" not in caplog.text
    assert list(pd.read_csv(tmp_path / "train_log.csv").epoch) == [1, 2]


def test_same_seed_gives_identical_training_another_seed_does_not(config, tmp_path):
    """Determinism on CPU: two runs of one seed agree to the last bit; seed 1 differs."""
    quick = {
        **config,
        "train": {**config["train"], "epochs": 1},
        "system": {**config["system"], "factor": 2},
        "separator": {
            **config["separator"],
            "args": {**config["separator"]["args"], "n_repeats": 1},
        },
    }
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        train_cell({**quick, "seed": seed}, tmp_path / name, threads=1)
    _assert_same_weights(tmp_path / "a" / "checkpoint.pt", tmp_path / "b" / "checkpoint.pt")
    pd.testing.assert_frame_equal(_log(tmp_path / "a"), _log(tmp_path / "b"), check_exact=True)
    wa, wc = _weights(tmp_path / "a" / "checkpoint.pt"), _weights(tmp_path / "c" / "checkpoint.pt")
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)
    assert json.loads((tmp_path / "c" / "train.json").read_text())["seed"] == 1


def _scores(monkeypatch, values: list[float]) -> None:
    """Validation returns these scores, one an epoch, then the run is killed."""
    left = iter(values)

    def validate(*args, **kwargs):
        value = next(left, None)
        if value is None:
            raise _Killed
        return value

    monkeypatch.setattr(train_module, "validate", validate)


def test_an_earlier_best_epoch_survives_the_loss_of_checkpoint_pt(config, tmp_path, monkeypatch):
    """Validation worsens after epoch 1, so checkpoint.pt holds epoch 1's weights; killed in
    epoch 3 with checkpoint.pt removed (as Snakemake does), the resumed run writes it back."""
    quick = {
        **config,
        "system": {**config["system"], "factor": 2},
        "separator": {
            **config["separator"],
            "args": {**config["separator"]["args"], "n_repeats": 1},
        },
    }
    _scores(monkeypatch, [-1.0, -2.0, -3.0])
    train_cell(quick, tmp_path / "whole", threads=1)
    assert torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["epoch"] == 1

    _scores(monkeypatch, [-1.0, -2.0])
    with pytest.raises(_Killed):
        train_cell(quick, tmp_path / "resumed", threads=1)
    (tmp_path / "resumed" / "checkpoint.pt").unlink()
    _scores(monkeypatch, [-3.0])
    train_cell(quick, tmp_path / "resumed", threads=1)
    for name in ("checkpoint.pt", "last.pt"):
        _assert_same_weights(tmp_path / "resumed" / name, tmp_path / "whole" / name)
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["epoch"] == 1


def test_last_pt_holds_everything_to_resume_as_plain_data(uninterrupted):
    """Loaded with weights_only=True: tensors and plain values only, no pickled objects."""
    payload = torch.load(uninterrupted / "last.pt", weights_only=True)
    state = payload["resume"]
    assert {"optimizer", "scheduler", "rows", "best", "step_times", "identity"} <= set(state)
    assert set(state["rng"]) >= {"python", "numpy", "torch", "data_order"}
    assert payload["epoch"] == 3 and [r["epoch"] for r in state["rows"]] == [1, 2, 3]
    assert torch.load(uninterrupted / "checkpoint.pt", weights_only=True)["format"] == 1


def test_training_state_round_trips_through_a_weights_only_file(tmp_path):
    """state_dict() is plain data; load_state_dict() of it restores every field and RNG."""

    def fresh(seed: int) -> TrainingState:
        torch.manual_seed(seed)
        model = torch.nn.Linear(3, 2)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max")
        generator = torch.Generator().manual_seed(seed)
        return TrainingState(model, optimizer, scheduler, generator, {"train.lr": "0.1"}, seed)

    state = fresh(0)
    for epoch, score in [(1, -1.0), (2, -2.0)]:  # the best epoch is not the last
        state.model(torch.randn(4, 3)).sum().backward()
        state.optimizer.step()
        state.step_times.append(0.01 * epoch)
        state.scheduler.step(score)
        state.end_epoch({"epoch": epoch, "train_loss": 1.0, "valid_si_snr": score})
    state.skipped_batches, state.resumed_from = 3, [1]
    torch.save(state.state_dict(), tmp_path / "last.pt")
    saved_rng = torch.get_rng_state()

    other = fresh(1)  # reseeds torch: loading must bring the saved random state back
    other.load_state_dict(torch.load(tmp_path / "last.pt", weights_only=True))
    for name in ("epoch", "rows", "best", "step_times", "resumed_from", "skipped_batches", "seed"):
        assert getattr(other, name) == getattr(state, name), name
    assert other.best["epoch"] == 1 and other.train_seconds >= state.seconds_before
    for a, b in ((other.model, state.model), (other.best_weights, state.best_weights)):
        a = a.state_dict() if isinstance(a, torch.nn.Module) else a
        b = b.state_dict() if isinstance(b, torch.nn.Module) else b
        assert all(torch.equal(a[k], b[k]) for k in b)
    assert other.optimizer.state_dict()["state"][0]["step"] == 2
    assert torch.equal(other.generator.get_state(), state.generator.get_state())
    assert torch.equal(torch.get_rng_state(), saved_rng)
