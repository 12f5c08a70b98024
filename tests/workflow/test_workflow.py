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


def test_tables_plots_and_html_report(study):
    results, _ = study
    tables = results / "tiny" / "tables"
    cells = pd.read_csv(tables / "cells.csv")
    assert sorted(cells.cell) == CELLS
    assert cells.n_utterances.eq(4).all()
    markdown = (tables / "cells.md").read_text()
    assert markdown.count("\n") == 2 + len(cells)
    ablation = pd.read_csv(tables / "ablation.csv")
    assert list(zip(ablation.separator, ablation.factor, strict=True)) == [
        ("convtasnet", 1),
        ("convtasnet", 2),
        ("sfsrnet", 2),
    ]
    for name in ("ablation", "bands", "cost", "paper", "cells"):
        for ext in ("csv", "md", "tex"):
            assert (tables / f"{name}.{ext}").stat().st_size > 0, f"{name}.{ext}"
    for name in ("bands", "cost", "curves"):
        for ext in ("png", "svg"):
            assert (results / "tiny" / "plots" / f"{name}.{ext}").stat().st_size > 1000
    html = results / "tiny" / "report.html"
    _snakemake(results, "--report", str(html))
    text = html.read_text()
    for caption in ("Ablation table of study", "Band SNR against frequency", "Cost table"):
        assert caption in text, caption


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


def test_mlflow_has_one_parent_and_one_child_per_cell(study):
    from sfsrnet.tracking import study_runs

    results, _ = study
    parent, children = study_runs(f"sqlite:///{results / 'mlflow.db'}", "tiny")
    assert parent.info.status == "FINISHED"
    assert sorted(r.data.tags["sfsrnet.cell"] for r in children) == CELLS
    assert all(r.info.status == "FINISHED" for r in children)
    assert all("si_snr_i" in r.data.metrics for r in children)
    sr_on = next(r for r in children if r.data.tags["sfsrnet.cell"] == CELLS[2])
    assert sr_on.data.tags["axis.sr"] == "True" and sr_on.data.params["sr.enabled"] == "True"


def test_report_from_mlflow_alone_gives_the_same_tables(study, tmp_path):
    results, _ = study
    cmd = [sys.executable, "-m", "sfsrnet", "-q", "report", "--from-mlflow", "--study", "tiny"]
    cmd += ["--results-dir", str(results), "--out", str(tmp_path / "tables")]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, env=env)
    for name in ("long", "ablation", "bands", "cost", "paper", "cells"):
        ours = (results / "tiny" / "tables" / f"{name}.csv").read_text()
        assert (tmp_path / "tables" / f"{name}.csv").read_text() == ours, name
    assert (tmp_path / "plots" / "bands.svg").is_file()


def test_unknown_config_key_stops_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epohcs: 3\n")
    cmd = [*SNAKEMAKE, "-n", "all", "--configfile", str(bad), "--config", f"results_dir={tmp_path}"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0
    assert "epohcs" in result.stderr + result.stdout
    assert not (tmp_path / "data").exists()


def test_ablation_delta_is_recomputed_from_the_two_cells_files(study):
    """One SR delta of the ablation table, recomputed from the cells' per-utterance CSVs."""
    results, _ = study
    ablation = pd.read_csv(results / "tiny" / "tables" / "ablation.csv")
    cells = results / "tiny" / "cells" / "convtasnet" / "ds2"
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
    assert "above low Nyquist" in (results / "tiny" / "tables" / "bands.md").read_text()
