"""Snakemake end to end on the tiny study: the command a user runs, in a scratch results dir."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.workflow]

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


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
    for rule, count in [("make_corpus", 1), ("train", 3), ("evaluate", 3), ("report", 1)]:
        assert any(line.split()[:2] == [rule, str(count)] for line in out.splitlines()), rule


def test_ablation_table_has_one_row_per_cell(study):
    results, _ = study
    tables = results / "tiny" / "tables"
    ablation = pd.read_csv(tables / "ablation.csv")
    # tiny.yaml: {convtasnet, dprnn} x factor {1, 2}, minus dprnn at factor 1; seed from config.yaml
    assert sorted(ablation.cell) == [
        "convtasnet/ds1/seed0",
        "convtasnet/ds2/seed0",
        "dprnn/ds2/seed0",
    ]
    assert ablation.n_utterances.eq(4).all()
    markdown = (tables / "ablation.md").read_text()
    assert markdown.count("\n") == 2 + len(ablation)


def test_cell_folders_are_named_by_axis_values(study):
    results, _ = study
    cell = results / "tiny" / "cells" / "dprnn" / "ds2" / "seed0"
    import yaml

    config = yaml.safe_load((cell / "config.yaml").read_text())
    assert config["cell"]["axes"] == {"separator": "dprnn", "factor": 2, "seed": 0}
    assert config["separator"]["args"]["chunk_size"] == 100  # the tiny preset, resolved
    assert config["system"]["factor"] == 2


def test_second_run_has_nothing_to_do(study):
    results, _ = study
    again = _snakemake(results, "all")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_mlflow_has_one_run_per_cell(study):
    from mlflow.tracking import MlflowClient

    results, _ = study
    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert sorted(r.data.tags["sfsrnet.cell"] for r in runs) == [
        "convtasnet/ds1/seed0",
        "convtasnet/ds2/seed0",
        "dprnn/ds2/seed0",
    ]
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
