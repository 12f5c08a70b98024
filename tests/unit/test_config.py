from pathlib import Path

import pytest

from sfsrnet import config as cfg
from sfsrnet.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_filled_from_the_schema():
    config = cfg.validate({})
    assert config["train"]["epochs"] >= 1
    assert config["data"]["sample_rate"] == 8000
    assert config["system"]["mode"] == "resample"


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"train": {"epochs": -1}}, "train.epochs"),
        ({"trian": {}}, "trian"),
        ({"train": {"epoch": 3}}, "train.epoch"),
        ({"data": {"sample_rate": 44100}}, "data.sample_rate"),
        ({"train": {"lr": "fast"}}, "train.lr"),
        ({"system": {"factor": 0}}, "system.factor"),
        ({"data": {"embedded": {"engines": ["sam"]}}}, "data.embedded.engines.0"),
    ],
)
def test_bad_values_name_their_key(bad, key):
    with pytest.raises(ConfigError, match=rf"key {key}\b"):
        cfg.validate(bad)


@pytest.mark.parametrize(
    "path",
    [REPO / "config" / "config.yaml", *sorted((REPO / "config" / "studies").glob("*.yaml"))],
    ids=lambda p: p.stem,
)
def test_shipped_configs_are_valid(path):
    cfg.load(path)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        cfg.load(tmp_path / "nope.yaml")


def test_every_separator_preset_builds():
    import sfsrnet

    for path in sorted((REPO / "config" / "separators").glob("*.yaml")):
        presets = cfg.load_yaml(path)["presets"]
        assert {"tiny", "published"} <= set(presets), path
        for args in presets.values():
            sfsrnet.build_separator(path.stem, n_src=2, sample_rate=8000, **args)


def test_environment_yml_pins_the_same_versions_as_pyproject():
    import tomllib

    import yaml

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((REPO / "environment.yml").read_text())["dependencies"]
    pip = next(d["pip"] for d in env if isinstance(d, dict))
    assert sorted(pip) == sorted(project)
