"""Shared fixtures: a small embedded corpus made once per test session from the real generator."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

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


@pytest.fixture(scope="session")
def tiny_config():
    """The tiny workflow-test study, validated, as a single-cell config (ConvTasNet, factor 1)."""
    from sfsrnet.config import load_yaml, validate

    config = load_yaml(REPO / "tests" / "workflow" / "tiny.yaml")
    config.pop("grid"), config.pop("exclude")
    config["separator"]["name"] = "convtasnet"
    config["separator"]["args"] = load_yaml(REPO / "config" / "separators" / "convtasnet.yaml")[
        "presets"
    ]["tiny"]
    return validate(config)
