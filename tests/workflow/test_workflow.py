"""Snakemake end to end on the default study (config/config.yaml: every separator, factor and SR
setting, 24 cells), shrunk in size only, run as a user runs it and with 4 jobs at once.

One run serves every test here: tables, plots and the HTML report, cell folders, MLflow (one
parent, one child per cell, nothing lost when 24 evaluations reopen their runs at the same time),
the rebuild from MLflow alone, and which jobs an edit of the config reruns.
"""

import json
import os
import re
import sqlite3
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
STUDY = "default"


def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _snakemake(study: dict, *args: str, configfiles: tuple[str, ...] = ()) -> str:
    cmd = [*SNAKEMAKE, *args, "--cores", "4", "--jobs", "4"]
    cmd += ["--configfile", *study["files"], *configfiles]
    cmd += ["--config", f"results_dir={study['results']}"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=_env())
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    return out


def _job_counts(out: str) -> dict[str, int]:
    """``rule -> jobs`` from the job stats a (dry) run prints."""
    counts = {}
    for line in out.split("Job stats:", 1)[-1].splitlines():
        words = line.split()
        if len(words) == 2 and words[1].isdigit():
            counts[words[0]] = int(words[1])
    return counts


@pytest.fixture(scope="module")
def study(tmp_path_factory, shrink):
    from sfsrnet.study import load_study, plan_study

    tmp = tmp_path_factory.mktemp("default")
    results = tmp / "results"
    files = shrink(REPO / "config" / "config.yaml", tmp)
    plan = plan_study(load_study(files[1:], {"results_dir": str(results)}))
    study = {"files": files, "results": results, "tmp": tmp, "plan": plan}
    study["dry"] = _snakemake(study, "-n", "all")
    _snakemake(study, "all")
    return study


def test_dry_run_lists_every_job_of_the_plan(study):
    counts = _job_counts(study["dry"])
    n_cells = len(study["plan"].cells)
    assert n_cells == 24
    assert counts["make_corpus"] == 1 and counts["report"] == 1
    assert counts["train"] == counts["evaluate"] == n_cells


def test_the_workflow_writes_the_plan_the_cli_writes(study):
    ours = json.loads((study["results"] / STUDY / "plan.json").read_text())
    cli = study["tmp"] / "cli-plan.json"
    cmd = [sys.executable, "-m", "sfsrnet", "plan", "--configfile", *study["files"]]
    cmd += ["--config", f"results_dir={study['results']}", "--out", str(cli)]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, env=_env())
    assert json.loads(cli.read_text()) == ours
    assert [c["name"] for c in ours["cells"]] == list(study["plan"].cells)


def test_tables_plots_and_html_report(study):
    results = study["results"]
    tables = results / STUDY / "tables"
    cells = pd.read_csv(tables / "cells.csv")
    assert sorted(cells.cell) == sorted(study["plan"].cells)
    assert cells.n_utterances.eq(2).all()
    assert cells.engines.eq("espeak").all()
    ablation = pd.read_csv(tables / "ablation.csv")
    assert len(ablation) == 4 * 3  # separator x factor, SR off and on in one row
    assert ablation.si_snr_i_on.notna().all() and ablation.si_snr_i_off.notna().all()
    assert (tables / "ablation.md").read_text().startswith("Corpus: embedded-")
    for name in ("ablation", "bands", "cost", "paper", "cells"):
        for ext in ("csv", "md", "tex"):
            assert (tables / f"{name}.{ext}").stat().st_size > 0, f"{name}.{ext}"
    for name in ("bands", "cost", "curves"):
        for ext in ("png", "svg"):
            assert (results / STUDY / "plots" / f"{name}.{ext}").stat().st_size > 1000
    html = results / STUDY / "report.html"
    _snakemake(study, "--report", str(html))
    text = html.read_text()
    for caption in ("Ablation table of study", "Band SNR against frequency", "Cost table"):
        assert caption in text, caption


def test_cell_folders_are_named_by_axis_values(study):
    cells = study["results"] / STUDY / "cells"
    config = yaml.safe_load((cells / "sfsrnet/ds2/sr-on/seed0/config.yaml").read_text())
    assert config["cell"]["axes"] == {"separator": "sfsrnet", "factor": 2, "sr": True, "seed": 0}
    assert config["separator"]["args"]["n_blocks"] == 3  # the tiny preset, resolved
    assert config["sr"]["args"]["channels"] == [8, 16, 8]
    # The train job reads the training part alone: no evaluation or MLflow settings.
    train = yaml.safe_load((cells / "sfsrnet/ds2/sr-on/seed0/train.yaml").read_text())
    assert "evaluate" not in train and "mlflow" not in train
    assert train["separator"] == {k: v for k, v in config["separator"].items() if k != "preset"}
    # Staged: the SR-on cell starts from its SR-off twin and keeps its separator unchanged.
    assert config["sr"]["init_from"].endswith("cells/sfsrnet/ds2/sr-off/seed0/checkpoint.pt")
    off = torch.load(cells / "sfsrnet/ds2/sr-off/seed0/checkpoint.pt", weights_only=True)
    on = torch.load(cells / "sfsrnet/ds2/sr-on/seed0/checkpoint.pt", weights_only=True)
    for key, value in off["state_dict"].items():
        assert torch.equal(value, on["state_dict"][key]), key


def test_second_run_has_nothing_to_do(study):
    assert "Nothing to be done" in _snakemake(study, "all")


@pytest.mark.parametrize(
    ("edit", "trained"),
    [
        ({"evaluate": {"band_edges": [250, 3000]}}, 0),
        ({"evaluate": {"n_examples": 0}}, 0),
        ({"mlflow": {"tracking_uri": "sqlite:///elsewhere.db", "experiment": "x"}}, 0),
        ({"train": {"progress": True}}, 0),
        ({"sr": {"epochs": 2}}, 12),  # staged SR's epochs: the 12 SR-on cells alone
        ({"sr": {"args": {"channels": [8, 8, 8]}}}, 12),
        ({"train": {"lr": 0.002}}, 24),
    ],
    ids=["band-edges", "n-examples", "mlflow", "progress", "sr-epochs", "sr-args", "lr"],
)
def test_an_edit_reruns_training_only_where_it_changes_training(study, edit, trained):
    path = study["tmp"] / "edit.yaml"
    path.write_text(yaml.safe_dump(edit))
    counts = _job_counts(_snakemake(study, "-n", "all", configfiles=(str(path),)))
    assert counts.get("train", 0) == trained, counts
    if trained == 0:  # evaluation reruns where its settings changed, never training
        assert counts.get("make_corpus", 0) == 0


def test_mlflow_survives_24_evaluations_reopening_their_runs_at_once(study):
    from mlflow.tracking import MlflowClient

    from sfsrnet.tracking import study_runs

    _snakemake(study, "all", "--forcerun", "evaluate")
    db = study["results"] / "mlflow.db"
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    parent, children = study_runs(f"sqlite:///{db}", STUDY)
    assert parent.info.status == "FINISHED"
    cells = [r.data.tags["sfsrnet.cell"] for r in children]
    assert sorted(cells) == sorted(study["plan"].cells)
    for run in children:
        assert run.info.status == "FINISHED", run.data.tags["sfsrnet.cell"]
        # Evaluation and the training curve (logged from the training's files).
        assert {"si_snr_i", "valid_si_snr", "n_params"} <= set(run.data.metrics)
    sr_on = next(r for r in children if r.data.tags["sfsrnet.cell"] == "dprnn/ds2/sr-on/seed0")
    assert sr_on.data.tags["axis.sr"] == "True" and sr_on.data.params["sr.enabled"] == "True"
    # Nothing else in the experiment: no orphan or duplicate run left behind.
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name(STUDY)
    assert len(client.search_runs([exp.experiment_id], max_results=1000)) == len(cells) + 1


def test_report_from_mlflow_alone_gives_the_same_tables(study, tmp_path):
    results = study["results"]
    cmd = [sys.executable, "-m", "sfsrnet", "-q", "report", "--from-mlflow", "--study", STUDY]
    cmd += ["--results-dir", str(results), "--out", str(tmp_path / "tables")]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, env=_env())
    for name in ("long", "ablation", "bands", "cost", "paper", "cells"):
        ours = (results / STUDY / "tables" / f"{name}.csv").read_text()
        assert (tmp_path / "tables" / f"{name}.csv").read_text() == ours, name
    assert (tmp_path / "plots" / "bands.svg").is_file()


def test_unknown_config_key_stops_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epohcs: 3\n")
    cmd = [*SNAKEMAKE, "-n", "all", "--configfile", str(bad), "--config", f"results_dir={tmp_path}"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0
    assert re.search(r"bad value for key train.epohcs", result.stderr + result.stdout)
    assert not (tmp_path / "data").exists()


def test_ablation_delta_is_recomputed_from_the_two_cells_files(study):
    """One SR delta of the ablation table, recomputed from the cells' per-utterance CSVs."""
    tables = study["results"] / STUDY / "tables"
    ablation = pd.read_csv(tables / "ablation.csv")
    cells = study["results"] / STUDY / "cells" / "convtasnet" / "ds2"
    per_utt = [
        pd.read_csv(cells / s / "seed0" / "metrics.csv").groupby("utterance").si_snr_i.mean()
        for s in ("sr-off", "sr-on")
    ]
    row = ablation[(ablation.separator == "convtasnet") & (ablation.factor == 2)].iloc[0]
    assert row.si_snr_i_off == pytest.approx(per_utt[0].mean(), abs=1e-5)
    assert row.si_snr_i_on == pytest.approx(per_utt[1].mean(), abs=1e-5)
    assert row.si_snr_i_delta == pytest.approx((per_utt[1] - per_utt[0]).mean(), abs=1e-5)
    assert row.si_snr_i_delta_low <= row.si_snr_i_delta <= row.si_snr_i_delta_high
    assert 0 <= row.si_snr_i_p <= 1
    assert "above low Nyquist" in (tables / "bands.md").read_text()
