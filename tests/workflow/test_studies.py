"""Every real-corpus study file (config/studies/*.yaml) end to end on a fake corpus tree: its own
grid, SR settings, dynamic mixing and corpus preparation, shrunk in size (tiny presets on CPU)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sfsrnet.data.fake import write_fake_corpus

pytestmark = [pytest.mark.slow, pytest.mark.workflow]

REPO = Path(__file__).resolve().parents[2]
STUDIES = sorted((REPO / "config" / "studies").glob("*.yaml"))


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_study_file_runs_end_to_end_on_a_fake_tree(path, tmp_path, shrink):
    from sfsrnet.study import load_study, plan_study

    corpus = load_study([path])["data"]["corpus"]
    root = write_fake_corpus(corpus, tmp_path / "corpus", n_mixtures=(8, 2, 2))
    results = tmp_path / "results"
    files = shrink(path, tmp_path, {"data": {"root": str(root)}, "results_dir": str(results)})
    plan = plan_study(load_study(files))
    cmd = [sys.executable, "-m", "snakemake", "all", "--cores", "2", "--configfile", *files]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    tables = results / plan.study / "tables"
    cells = pd.read_csv(tables / "cells.csv")
    assert sorted(cells.cell) == sorted(plan.cells)
    ablation = pd.read_csv(tables / "ablation.csv")
    assert ablation.si_snr_i_delta.notna().all()  # every configuration has SR off and on
    # One prepared corpus, named by its key, read by every cell and named in the tables.
    (prepared,) = plan.corpora
    manifest = json.loads((Path(prepared) / "manifest.json").read_text())
    assert Path(prepared).name == f"{corpus}-{manifest['key']}"
    assert cells.corpus.eq(Path(prepared).name).all()
