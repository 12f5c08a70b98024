"""One cell by hand, as the workflow runs it: train, evaluate, MLflow, report, through the CLI."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import torch
import yaml

from sfsrnet.checkpoint import build_system, load_checkpoint, save_checkpoint, system_spec
from sfsrnet.report import build_report

pytestmark = pytest.mark.slow


def _cli(*args, check=True):
    return subprocess.run(
        [sys.executable, "-m", "sfsrnet", *args], capture_output=True, text=True, check=check
    )


@pytest.fixture(scope="module")
def cell(tmp_path_factory, tiny_config, small_corpus):
    """A trained and evaluated ConvTasNet cell at factor 2, run through the CLI."""
    study = tmp_path_factory.mktemp("study")
    config = {
        **tiny_config,
        "results_dir": str(study),
        "data": {**tiny_config["data"], "root": str(small_corpus)},
        "system": {"factor": 2, "mode": "resample"},
        "cell": {"name": "convtasnet/ds2", "axes": {"separator": "convtasnet", "factor": 2}},
    }
    config["separator"]["args"] = {**config["separator"]["args"], "n_repeats": 1}
    cell_dir = study / config["study"] / "cells" / "convtasnet" / "ds2"
    cell_dir.mkdir(parents=True)
    (cell_dir / "config.yaml").write_text(yaml.safe_dump(config))
    cfg = str(cell_dir / "config.yaml")
    _cli("train", "--config", cfg, "--out", str(cell_dir), "--threads", "1")
    _cli(
        "evaluate",
        "--config",
        cfg,
        "--checkpoint",
        str(cell_dir / "checkpoint.pt"),
        "--out",
        str(cell_dir),
        "--no-progress",
    )
    return config, cell_dir


def test_cell_folder_holds_everything(cell):
    _, cell_dir = cell
    for name in [
        "cost.json",
        "bands.csv",
        "config.yaml",
        "checkpoint.pt",
        "train_log.csv",
        "train.json",
        "metrics.csv",
        "summary.json",
        "provenance_train.json",
        "provenance_evaluate.json",
    ]:
        assert (cell_dir / name).is_file(), name
    assert sorted((cell_dir / "examples").iterdir())
    provenance = json.loads((cell_dir / "provenance_train.json").read_text())
    assert provenance["packages"]["torch"] and "train" in provenance["command"]
    log = pd.read_csv(cell_dir / "train_log.csv")
    assert list(log.epoch) == [1]


def test_summary_agrees_with_the_per_utterance_csv(cell):
    _, cell_dir = cell
    table = pd.read_csv(cell_dir / "metrics.csv")
    summary = json.loads((cell_dir / "summary.json").read_text())
    assert set(table.columns) >= {
        "utterance",
        "source",
        "permutation",
        "si_snr",
        "si_snr_i",
        "sdr",
        "sdr_i",
        "input_si_snr",
        "input_sdr",
    }
    assert summary["n_utterances"] == table.utterance.nunique() == 4
    per_utt = table.groupby("utterance")[["si_snr_i", "sdr_i"]].mean()
    assert summary["si_snr_i"] == pytest.approx(per_utt.si_snr_i.mean())
    assert summary["sdr_i"] == pytest.approx(per_utt.sdr_i.mean())


def test_checkpoint_reloads_to_identical_output(cell, tmp_path):
    config, cell_dir = cell
    system, payload = load_checkpoint(cell_dir / "checkpoint.pt")
    assert payload["spec"] == system_spec(config)
    mix = torch.randn(1, 7999)
    with torch.no_grad():
        first = system(mix)
    save_checkpoint(tmp_path / "again.pt", system, payload["spec"])
    again, _ = load_checkpoint(tmp_path / "again.pt")
    with torch.no_grad():
        assert torch.equal(first, again(mix))
    fresh = build_system(payload["spec"]).eval()
    with torch.no_grad():
        assert not torch.equal(first, fresh(mix)), "the checkpoint's weights were not loaded"


def test_mlflow_holds_one_run_with_params_and_metrics(cell):
    from mlflow.tracking import MlflowClient

    from sfsrnet.tracking import study_runs, tracking_uri

    config, _ = cell
    client = MlflowClient(tracking_uri=tracking_uri(config))
    exp = client.get_experiment_by_name(config["study"])
    assert len(client.search_runs([exp.experiment_id])) == 2  # the study's and the cell's
    parent, runs = study_runs(tracking_uri(config), config["study"])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "metrics.csv", "bands.csv", "cost.json", "train_log.csv"} <= artifacts
    assert run.data.tags["sfsrnet.cell"] == "convtasnet/ds2"
    assert run.data.params["system.factor"] == "2"
    assert {"valid_si_snr", "train_loss", "si_snr_i", "sdr_i"} <= set(run.data.metrics)
    history = client.get_metric_history(run.info.run_id, "valid_si_snr")
    assert [m.step for m in history] == [1]


def test_report_rebuilds_the_ablation_table(cell):
    _, cell_dir = cell
    paths = build_report(cell_dir.parents[2])
    cells = pd.read_csv(paths["cells_csv"])
    summary = json.loads((cell_dir / "summary.json").read_text())
    assert len(cells) == 1
    assert cells.si_snr_i[0] == pytest.approx(summary["si_snr_i"], abs=1e-5)
    assert "convtasnet/ds2" in paths["cells_md"].read_text()
    ablation = pd.read_csv(paths["ablation_csv"])
    assert ablation.si_snr_i_off[0] == pytest.approx(summary["si_snr_i"], abs=1e-5)


def test_staged_sr_trains_sr_and_leaves_the_separator_untouched(cell, tmp_path):
    config, cell_dir = cell
    staged = {
        **config,
        "sr": {
            **config["sr"],
            "enabled": True,
            "training": "staged",
            "init_from": str(cell_dir / "checkpoint.pt"),
            "args": {"channels": [4, 8, 4], "kernels": [3, 3, 3, 3], "phase": "hybrid"},
        },
        "cell": {"name": "convtasnet/ds2/sr-on", "axes": {"factor": 2, "sr": True}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(staged))
    _cli("train", "--config", str(path), "--out", str(tmp_path), "--threads", "1")
    base = torch.load(cell_dir / "checkpoint.pt", weights_only=True)["state_dict"]
    after = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["state_dict"]
    separator_keys = [k for k in base if k.startswith("separator.")]
    assert separator_keys and all(torch.equal(base[k], after[k]) for k in separator_keys)
    assert any(k.startswith("sr.") for k in after)
    summary = json.loads((tmp_path / "train.json").read_text())
    assert summary["sr_training"] == "staged" and summary["n_params_sr"] > 0


def test_cost_json_holds_params_macs_and_times(cell):
    _, cell_dir = cell
    cost = json.loads((cell_dir / "cost.json").read_text())
    train = json.loads((cell_dir / "train.json").read_text())
    assert cost["params_separator"] == train["n_params"] and cost["params_sr"] == 0
    assert cost["macs_per_second_separator"] > 1e6 and cost["rtf"] > 0
    assert cost["median_train_step_seconds"] > 0 and cost["peak_rss_mib"] > 0


def test_bands_include_the_band_above_the_low_rate_nyquist(cell):
    _, cell_dir = cell
    bands = pd.read_csv(cell_dir / "bands.csv")
    high = bands[bands.above_low_nyquist]
    assert set(high.band_lo_hz) == {2000.0}  # factor 2 at 8 kHz
    assert set(bands.band_hi_hz) >= {500.0, 1000.0, 2000.0, 4000.0}
    summary = json.loads((cell_dir / "summary.json").read_text())
    assert summary["band_snr_missing"] == int(bands.band_snr.isna().sum())


def test_separate_writes_each_source_of_a_user_file(cell, tmp_path):
    """A 16 kHz file is resampled to the model's 8 kHz; one wav per source comes back."""
    import soundfile as sf

    _, cell_dir = cell
    mix, rate = sf.read(next((cell_dir / "examples").iterdir()) / "mix.wav")
    from sfsrnet.audio import resample

    wav16 = resample(torch.from_numpy(mix).float(), rate, 16000).numpy()
    sf.write(tmp_path / "talk.wav", wav16, 16000)
    result = _cli(
        "separate",
        str(tmp_path / "talk.wav"),
        "--checkpoint",
        str(cell_dir / "checkpoint.pt"),
        "--out",
        str(tmp_path / "out"),
    )
    outs = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in outs] == ["talk_s1.wav", "talk_s2.wav"]
    assert str(outs[0]) in result.stdout
    est, est_rate = sf.read(outs[0])
    assert est_rate == 8000 and abs(len(est) - len(mix)) <= 1


def test_evaluating_again_logs_each_epoch_once(cell):
    from mlflow.tracking import MlflowClient

    from sfsrnet.tracking import study_runs, tracking_uri

    config, cell_dir = cell
    args = ["evaluate", "--config", str(cell_dir / "config.yaml")]
    args += ["--checkpoint", str(cell_dir / "checkpoint.pt"), "--out", str(cell_dir)]
    _cli(*args, "--no-progress", "--examples", "0")
    _, runs = study_runs(tracking_uri(config), config["study"])
    client = MlflowClient(tracking_uri=tracking_uri(config))
    history = client.get_metric_history(runs[0].info.run_id, "train_loss")
    assert [m.step for m in history] == [1]
    assert {"n_params", "n_params_sr", "best_valid_si_snr"} <= set(runs[0].data.metrics)


def _broken_mlflow(monkeypatch):
    import mlflow.tracking

    class Unreachable:
        def __init__(self, *args, **kwargs):
            raise ConnectionError("the MLflow store is unreachable")

    monkeypatch.setattr(mlflow.tracking, "MlflowClient", Unreachable)


def test_training_never_touches_mlflow(cell, tmp_path, monkeypatch):
    from sfsrnet.train import train_cell

    config, _ = cell
    _broken_mlflow(monkeypatch)
    summary = train_cell(config, tmp_path, threads=1)
    assert summary["best_epoch"] == 1 and (tmp_path / "train.json").is_file()


def test_an_mlflow_failure_at_evaluate_keeps_the_evaluation_files(cell, tmp_path, monkeypatch):
    from sfsrnet.__main__ import main

    _, cell_dir = cell
    _broken_mlflow(monkeypatch)
    args = ["evaluate", "--config", str(cell_dir / "config.yaml"), "--no-progress"]
    args += ["--checkpoint", str(cell_dir / "checkpoint.pt"), "--out", str(tmp_path)]
    with pytest.raises(ConnectionError):
        main(args)
    assert (tmp_path / "metrics.csv").is_file() and (tmp_path / "summary.json").is_file()
