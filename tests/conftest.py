"""Shared fixtures: a small embedded corpus made once per test session from the real generator."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
# Imported by the tests that use it (as a user's `separator.module`), never by collection: on
# import it registers a separator, which must not leak into other tests.
collect_ignore = ["integration/probe_separator.py"]

# Two cores: keep BLAS and torch to one thread so parallel work does not oversubscribe.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


def pytest_configure(config):
    # Registered here rather than in pyproject.toml's markers (same effect with --strict-markers).
    config.addinivalue_line(
        "markers", "slurm: needs a running SLURM cluster with accounting (tests/cluster/run.sh)"
    )


@pytest.fixture(scope="session")
def small_spec():
    from sfsrnet.data.embedded import CorpusSpec

    return CorpusSpec.from_config(
        {"embedded": {"n_train": 12, "n_valid": 4, "n_test": 4, "segment": 1.0, "shard_size": 16}}
    )


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory, small_spec) -> Path:
    """A tiny embedded corpus (8 kHz, 2 sources, 1 s mixtures) built by the real code path."""
    from sfsrnet.data.embedded import make_corpus

    root = tmp_path_factory.mktemp("corpus") / "embedded"
    make_corpus(small_spec, root, jobs=2)
    return root


# Tests run the real study files (config/config.yaml, config/studies/*.yaml), never toy copies
# of them: these overlays shrink a study's sizes so that each cell takes seconds on a CPU, and
# leave its grid, presets, SR settings and every other key as the file has them.
SHRINK = {
    "data": {
        "embedded": {"n_train": 8, "n_valid": 2, "n_test": 2, "segment": 1.0},
        "dynamic_mixing": {"n_items": 8},
    },
    "train": {"epochs": 1, "batch_size": 4, "segment": 0.5, "progress": False},
    "sr": {"epochs": 1},
    "evaluate": {"n_examples": 1},
}
# The paper studies are GPU studies of the published presets: on this CPU the tiny presets, fp32
# and no loader processes stand in, everything else stays theirs.
SHRINK_GPU = {
    "separator": {"preset": "tiny"},
    "sr": {"preset": "tiny"},
    "train": {"device": "cpu", "precision": "fp32", "num_workers": 0},
}
STUDY_FILES = sorted(
    [REPO / "config" / "config.yaml", *(REPO / "config" / "studies").glob("*.yaml")]
)


def shrunk(study: Path, tmp: Path, extra: dict | None = None) -> list[str]:
    """``--configfile`` arguments that run ``study`` shrunk: the study file, then an overlay
    (written into ``tmp``) with :data:`SHRINK`, :data:`SHRINK_GPU` for a real-corpus study, and
    ``extra``. Snakemake, ``python -m sfsrnet plan`` and ``load_study`` read them alike."""
    from sfsrnet.study import load_study, merge_configs

    real_corpus = load_study([study])["data"]["corpus"] != "embedded"
    overlay = merge_configs(SHRINK, SHRINK_GPU) if real_corpus else SHRINK
    overlay = merge_configs(overlay, extra or {})
    path = tmp / f"shrink-{study.stem}.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return [str(study), str(path)]


@pytest.fixture(scope="session")
def shrink():
    """:func:`shrunk`, for tests to call."""
    return shrunk


# A few cells of the default study: ConvTasNet and the SFSRNet separator, factors 1 and 2, SR off
# and on where there is a high band to restore (5 cells).
SMALL_GRID = {
    "grid": {"separator": ["convtasnet", "sfsrnet"], "factor": [1, 2]},
    "exclude": [{"separator": "sfsrnet", "factor": 1}, {"factor": 1, "sr": True}],
}


@pytest.fixture(scope="session")
def small_grid():
    return SMALL_GRID


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory):
    """One cell of the default study (ConvTasNet, factor 1, SR off), shrunk, presets resolved."""
    from sfsrnet.study import load_study, plan_study

    tmp = tmp_path_factory.mktemp("tiny-config")
    files = shrunk(REPO / "config" / "config.yaml", tmp, {"results_dir": str(tmp)})
    plan = plan_study(load_study(files[1:]))
    return plan.cells["convtasnet/ds1/sr-off/seed0"].config


@pytest.fixture(scope="session")
def small_config(tiny_config, small_corpus):
    """:func:`tiny_config` reading the session's :func:`small_corpus`, MLflow off: the cell the
    training tests start from (each sets only what it changes)."""
    return {
        **tiny_config,
        "data": {**tiny_config["data"], "root": str(small_corpus)},
        "mlflow": {**tiny_config["mlflow"], "enabled": False},
    }
