"""Real-corpus studies: the study files, a dry run of each against a fake tree, and one cell
trained with dynamic mixing and evaluated on a fake Libri2Mix tree."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sfsrnet.config import load_yaml, validate
from sfsrnet.data.fake import write_fake_corpus
from sfsrnet.errors import DataError
from sfsrnet.study import load_study

REPO = Path(__file__).resolve().parents[2]
STUDIES = sorted((REPO / "config" / "studies").glob("*.yaml"))


def test_there_are_study_files_for_wsj0_2mix_and_libri2mix():
    assert {p.stem for p in STUDIES} >= {"wsj0-2mix", "libri2mix"}


@pytest.mark.parametrize("study", STUDIES, ids=lambda p: p.stem)
def test_study_files_are_valid_gpu_studies_with_dynamic_mixing(study):
    config = validate(load_study([study]), source=str(study))
    assert config["data"]["corpus"] != "embedded"
    assert config["data"]["dynamic_mixing"]["enabled"]
    assert config["train"]["epochs"] == 100 and config["train"]["device"].startswith("cuda")
    assert config["separator"]["preset"] == "published" and config["sr"]["preset"] == "published"
    assert set(config["grid"]["separator"]) <= {"sfsrnet", "sepformer", "dprnn", "convtasnet"}
    assert config["grid"]["sr"] == [False, True]
    if config["system"]["mode"] == "resample":  # the paper's main grid
        assert len(config["grid"]["separator"]) == 4 and config["grid"]["factor"] == [1, 2, 4]


def test_the_papers_own_stride_setting_is_a_study_beside_the_resample_one():
    modes = {validate(load_study([s]))["system"]["mode"] for s in STUDIES}
    assert modes == {"resample", "stride"}


def _dry_run(study: str, results: Path, extra: list[str], env: dict) -> str:
    cmd = [
        *(sys.executable, "-m", "snakemake", "-n", "all", "--cores", "1"),
        *("--configfile", f"config/studies/{study}.yaml"),
        *("--config", f"results_dir={results}", *extra),
    ]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.workflow
@pytest.mark.parametrize("study", ["wsj0-2mix", "libri2mix"])
def test_dry_run_of_each_study_against_a_fake_tree(study, tmp_path):
    root = write_fake_corpus(study, tmp_path / "corpus", n_mixtures=(2, 1, 1))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("SFSRNET_WSJ0_MIX", None), env.pop("SFSRNET_LIBRIMIX", None)
    code, out = _dry_run(study, tmp_path / "results", [], env)
    assert code != 0 and "data.root is not set" in out, out[-2000:]
    if study == "wsj0-2mix":  # root in the config
        code, out = _dry_run(study, tmp_path / "results", [f"data={{root: {root}}}"], env)
    else:  # root from the environment
        env["SFSRNET_LIBRIMIX"] = str(root)
        code, out = _dry_run(study, tmp_path / "results", [], env)
    assert code == 0, out[-3000:]
    rows = [line.split() for line in out.splitlines()]
    counts = {row[0]: row[1] for row in rows if len(row) == 2}
    assert counts["make_corpus"] == "1" and counts["train"] == "24" and counts["evaluate"] == "24"
    assert f"{tmp_path}/results/data/{study}-" in out  # the prepared corpus, once


def test_one_cell_trains_on_dynamic_mixtures_and_is_evaluated(tmp_path):
    from sfsrnet.data.loaders import corpus_root
    from sfsrnet.data.prepare import prepare_corpus
    from sfsrnet.evaluate import evaluate_checkpoint
    from sfsrnet.train import train_cell

    root = write_fake_corpus("libri2mix", tmp_path / "LibriMix", n_mixtures=(8, 2, 2))
    convtasnet = load_yaml(REPO / "config" / "separators" / "convtasnet.yaml")["presets"]["tiny"]
    config = validate(
        {
            "results_dir": str(tmp_path / "results"),
            "separator": {"name": "convtasnet", "args": convtasnet},
            "data": {"corpus": "libri2mix", "root": str(root), "dynamic_mixing": {"enabled": True}},
            "train": {"epochs": 2, "batch_size": 4, "segment": 0.5, "progress": False},
            "mlflow": {"enabled": False},
        }
    )
    with pytest.raises(DataError, match="not prepared"):
        train_cell(config, tmp_path / "cell")
    config["data"]["prepared"] = str(tmp_path / "prepared")
    prepare_corpus(config["data"], config["data"]["prepared"])
    summary = train_cell(config, tmp_path / "cell")
    assert summary["epochs"] == 2
    table, result = evaluate_checkpoint(tmp_path / "cell" / "checkpoint.pt", corpus_root(config))
    assert result["n_utterances"] == 2 and set(table.utterance) == {
        p.stem for p in (tmp_path / "prepared" / "test" / "mix").iterdir()
    }
