"""Snakemake end to end on the tiny study: the command a user runs, in a scratch results dir."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.workflow]

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# tiny.yaml's grid minus its excludes; the seed axis comes from config/config.yaml (studies are
# applied on top of it).
CELLS = [
    "convtasnet/ds1/sr-off/seed0",
    "convtasnet/ds2/sr-off/seed0",
    "convtasnet/ds2/sr-on/seed0",
    "sfsrnet/ds2/sr-off/seed0",
    "sfsrnet/ds2/sr-on/seed0",
]


def _snakemake(results: Path, *args: str) -> subprocess.CompletedProcess:
    profile = ["--workflow-profile", "workflows/profiles/default", "--cores", "2"]
    study = ["--configfile", "tests/workflow/tiny.yaml", "--config", f"results_dir={results}"]
    cmd = [*SNAKEMAKE, *args, *profile, *study]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    dry = _snakemake(results, "-n", "all")
    _snakemake(results, "all")
    return results, dry


def test_dry_run_lists_every_job(study):
    _, dry = study
    out = dry.stdout + dry.stderr
    for rule, count in [("make_corpus", 1), ("train", 5), ("evaluate", 5), ("report", 1)]:
        assert any(line.split()[:2] == [rule, str(count)] for line in out.splitlines()), rule


def test_ablation_table_has_one_row_per_cell(study):
    results, _ = study
    tables = results / "tiny" / "tables"
    ablation = pd.read_csv(tables / "ablation.csv")
    assert sorted(ablation.cell) == CELLS
    assert ablation.n_utterances.eq(4).all()
    markdown = (tables / "ablation.md").read_text()
    assert markdown.count("\n") == 2 + len(ablation)


def test_cell_folders_are_named_by_axis_values(study):
    results, _ = study
    cells = results / "tiny" / "cells"
    config = yaml.safe_load((cells / "sfsrnet/ds2/sr-on/seed0/config.yaml").read_text())
    assert config["cell"]["axes"] == {"separator": "sfsrnet", "factor": 2, "sr": True, "seed": 0}
    assert config["separator"]["args"]["n_blocks"] == 3  # the tiny preset, resolved
    assert config["sr"]["args"]["channels"] == [8, 16, 8]
    assert config["system"]["factor"] == 2
    # Staged: the SR-on cell starts from its SR-off twin and keeps its separator unchanged.
    assert config["sr"]["init_from"].endswith("cells/sfsrnet/ds2/sr-off/seed0/checkpoint.pt")
    off = torch.load(cells / "sfsrnet/ds2/sr-off/seed0/checkpoint.pt", weights_only=True)
    on = torch.load(cells / "sfsrnet/ds2/sr-on/seed0/checkpoint.pt", weights_only=True)
    for key, value in off["state_dict"].items():
        assert torch.equal(value, on["state_dict"][key]), key


def test_second_run_has_nothing_to_do(study):
    results, _ = study
    again = _snakemake(results, "all")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_mlflow_has_one_run_per_cell(study):
    from mlflow.tracking import MlflowClient

    results, _ = study
    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert sorted(r.data.tags["sfsrnet.cell"] for r in runs) == CELLS
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all("si_snr_i" in r.data.metrics for r in runs)


def test_unknown_config_key_stops_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epohcs: 3\n")
    cmd = [*SNAKEMAKE, "-n", "all", "--configfile", str(bad), "--config", f"results_dir={tmp_path}"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0
    assert "epohcs" in result.stderr + result.stdout
    assert not (tmp_path / "data").exists()


def test_sr_table_pairs_each_sr_cell_with_its_twin(study):
    """Recompute one SR delta from the two cells' per-utterance CSVs."""
    results, _ = study
    tables = results / "tiny" / "tables"
    sr = pd.read_csv(tables / "sr.csv")
    assert set(sr.separator) == {"convtasnet", "sfsrnet"} and set(sr.factor) == {2}
    cells = results / "tiny" / "cells" / "convtasnet" / "ds2"
    per_utt = [
        pd.read_csv(cells / s / "seed0" / "metrics.csv").groupby("utterance").si_snr_i.mean()
        for s in ("sr-off", "sr-on")
    ]
    row = sr[(sr.separator == "convtasnet") & (sr.metric == "si_snr_i")].iloc[0]
    assert row.off == pytest.approx(per_utt[0].mean(), abs=1e-5)
    assert row.on == pytest.approx(per_utt[1].mean(), abs=1e-5)
    assert row.delta == pytest.approx((per_utt[1] - per_utt[0]).mean(), abs=1e-5)
    assert 0 <= row.p_value <= 1
    assert "band SNR > low Nyquist" in (tables / "sr.md").read_text()
