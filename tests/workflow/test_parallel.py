"""`snakemake -j 4` on the default study's whole grid, twice: MLflow loses, duplicates and corrupts
no run. The grid is config/config.yaml's own; only the corpus and the training are shrunk."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.workflow]

REPO = Path(__file__).resolve().parents[2]
SHRINK = {
    "study": "parallel",
    "data": {"embedded": {"n_train": 8, "n_valid": 2, "n_test": 2, "segment": 1.0}},
    "train": {"epochs": 1, "batch_size": 4, "segment": 0.5, "progress": False},
    "sr": {"epochs": 1},
    "evaluate": {"n_examples": 0},
}


def _snakemake(results: Path, shrink: Path, *args: str) -> None:
    cmd = [sys.executable, "-m", "snakemake", "all", *args, "--cores", "4", "--jobs", "4"]
    cmd += ["--configfile", str(shrink), "--config", f"results_dir={results}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-4000:]


def test_four_parallel_jobs_leave_one_parent_and_one_child_per_cell(tmp_path):
    from sfsrnet.tracking import study_runs

    grid = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["grid"]
    n_cells = 1
    for values in grid.values():
        n_cells *= len(values)
    shrink = tmp_path / "shrink.yaml"
    shrink.write_text(yaml.safe_dump(SHRINK))
    results = tmp_path / "results"
    _snakemake(results, shrink)
    # Again, every evaluation rerun in parallel: each reopens its cell's run at the same time.
    _snakemake(results, shrink, "--forcerun", "evaluate")

    db = results / "mlflow.db"
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    parent, children = study_runs(f"sqlite:///{db}", "parallel")
    cells = [r.data.tags["sfsrnet.cell"] for r in children]
    assert len(cells) == n_cells == len(set(cells))
    assert parent.info.status == "FINISHED"
    for run in children:
        assert run.info.status == "FINISHED", run.data.tags["sfsrnet.cell"]
        assert {"si_snr_i", "valid_si_snr"} <= set(run.data.metrics)
    # Nothing else in the experiment: no orphan or duplicate run left behind.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name("parallel")
    assert len(client.search_runs([exp.experiment_id], max_results=1000)) == n_cells + 1
