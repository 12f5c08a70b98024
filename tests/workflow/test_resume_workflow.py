"""`snakemake all` after a training job was SIGKILLed resumes that cell from its last.pt."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.workflow]

REPO = Path(__file__).resolve().parents[2]
CELL = "convtasnet/ds1/sr-off/seed0"
STUDY = {
    "study": "resume",
    "grid": {"separator": ["convtasnet"], "factor": [1], "sr": [False]},
    "train": {"epochs": 3, "batch_size": 4, "segment": 0.5, "progress": False},
    "evaluate": {"n_examples": 0},
    "mlflow": {"enabled": False},
}


def _snakemake(results: Path, study: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "snakemake", "all", "--cores", "1"]
    cmd += ["--workflow-profile", "workflows/profiles/default", "--configfile", str(study)]
    cmd += ["--config", f"results_dir={results}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _training_pid(cell_dir: Path) -> int | None:
    """The pid of the `python -m sfsrnet train ... --out <cell_dir>` process, if it runs."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in args]
        if "sfsrnet" in words and "train" in words and str(cell_dir) in words:
            return int(proc.name)
    return None


def test_snakemake_all_resumes_a_killed_training(tmp_path, small_corpus):
    results = tmp_path / "results"
    # The session's corpus, with the spec file its rule writes (older than its manifest), so
    # that Snakemake finds the corpus up to date instead of synthesising one.
    corpus = tmp_path / "corpus"
    shutil.copytree(small_corpus, corpus)
    spec = Path(f"{corpus}.spec.yaml")
    spec.write_text("data: {}\n")
    stamp = (corpus / "manifest.json").stat().st_mtime
    os.utime(spec, (stamp - 60, stamp - 60))
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({**STUDY, "data": {"root": str(corpus)}}))
    cell_dir = results / "resume" / "cells" / CELL
    first = _snakemake(results, study)
    deadline = time.monotonic() + 600
    while not (cell_dir / "last.pt").exists():
        assert first.poll() is None, first.communicate()[0][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    pid = _training_pid(cell_dir.resolve()) or _training_pid(cell_dir)
    assert pid is not None, "no training process found"
    os.kill(pid, signal.SIGKILL)
    output = first.communicate()[0]
    assert first.returncode != 0, output[-3000:]
    assert "make_corpus" not in output, "the corpus was rebuilt"
    assert (cell_dir / "last.pt").exists(), "Snakemake removed last.pt"
    assert not (cell_dir / "train.json").exists()

    second = _snakemake(results, study)
    output = second.communicate()[0]
    assert second.returncode == 0, output[-3000:]
    log = (cell_dir / "train.log").read_text()
    assert f"resuming {CELL} from epoch" in log
    summary = json.loads((cell_dir / "train.json").read_text())
    assert summary["resumed_from_epochs"] and summary["epochs"] == 3
    assert (results / "resume" / "tables" / "ablation.md").is_file()
