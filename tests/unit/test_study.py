"""The study plan: grid, presets, twins, corpus folders and training identities, as the workflow
and the CLI both read them."""

import json
from pathlib import Path

import pytest
import yaml

from sfsrnet.__main__ import main
from sfsrnet.config import load_yaml
from sfsrnet.errors import ConfigError
from sfsrnet.study import (
    CONFIG_DIR,
    load_cell_config,
    load_study,
    merge_configs,
    parse_overrides,
    plan_study,
    training_part,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def default_plan():
    return plan_study(load_study())


def test_default_study_has_every_separator_factor_and_sr_setting(default_plan):
    grid = load_yaml(REPO / "config" / "config.yaml")["grid"]
    assert len(default_plan.cells) == 4 * 3 * 2 * len(grid["seed"])
    assert "sepformer/ds4/sr-on/seed0" in default_plan.cells
    cell = default_plan.cells["sepformer/ds4/sr-on/seed0"]
    assert cell.twin == "sepformer/ds4/sr-off/seed0"
    assert cell.config["sr"]["init_from"] == (
        f"{default_plan.study_dir}/cells/sepformer/ds4/sr-off/seed0/checkpoint.pt"
    )
    assert default_plan.cells["sepformer/ds4/sr-off/seed0"].twin is None
    # Every cell reads the one embedded corpus, named by its key.
    assert len(default_plan.corpora) == 1
    (folder,) = default_plan.corpora
    assert Path(folder).name.startswith("embedded-")
    assert {c.corpus for c in default_plan.cells.values()} == {folder}


def test_presets_are_resolved_from_the_preset_files(default_plan):
    tiny = load_yaml(CONFIG_DIR / "separators" / "dprnn.yaml")["presets"]["tiny"]
    sr_tiny = load_yaml(CONFIG_DIR / "sr.yaml")["presets"]["tiny"]
    cell = default_plan.cells["dprnn/ds2/sr-on/seed0"].config
    assert cell["separator"]["args"] == tiny
    assert cell["sr"]["args"] == sr_tiny


def test_training_identities_differ_between_cells_and_ignore_sr_keys_when_sr_is_off(default_plan):
    hashes = [c.training_hash for c in default_plan.cells.values()]
    assert len(set(hashes)) == len(hashes)
    off = default_plan.cells["convtasnet/ds1/sr-off/seed0"].config
    assert training_part(off)["sr"] == {"enabled": False}


def _hashes(study):
    return {name: c.training_hash for name, c in plan_study(study).cells.items()}


@pytest.mark.parametrize(
    "edit",
    [
        {"evaluate": {"band_edges": [250, 3000]}},
        {"evaluate": {"n_examples": 0, "split": "valid", "sdr_backend": "mir_eval"}},
        {"mlflow": {"tracking_uri": "http://127.0.0.1:5000", "experiment": "x"}},
        {"train": {"progress": False, "resume": False}},
    ],
    ids=["band-edges", "evaluate", "mlflow", "progress"],
)
def test_evaluation_and_run_only_edits_keep_every_training_identity(edit):
    base = load_study()
    assert _hashes(merge_configs(base, edit)) == _hashes(base)


def test_a_training_edit_changes_exactly_the_cells_it_acts_on():
    base = load_study()
    before = _hashes(base)
    after = _hashes(merge_configs(base, {"sr": {"epochs": 2}}))
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {name for name in before if "/sr-on/" in name}
    after = _hashes(merge_configs(base, {"train": {"lr": 0.002}}))
    assert all(before[name] != after[name] for name in before)


def test_merge_order_is_snakemakes():
    study = load_study(
        [REPO / "config" / "studies" / "wsj0-2mix.yaml"], parse_overrides(["study=x", "seed=3"])
    )
    assert study["study"] == "x" and study["seed"] == 3
    assert study["separator"]["preset"] == "published"
    # Keys the study file leaves out come from config/config.yaml, as under snakemake.
    assert (
        study["data"]["embedded"] == load_yaml(REPO / "config" / "config.yaml")["data"]["embedded"]
    )
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["seed"])
    # Keys in the command line's order first, then the default study's (cell folder names follow
    # the grid's order, so they must be the ones the workflow makes).
    stride = load_study([REPO / "config" / "studies" / "wsj0-2mix-stride.yaml"])
    assert list(stride["grid"]) == [
        "separator",
        "factor",
        "separator.args.chunk_size",
        "sr",
        "seed",
    ]


def test_hand_written_config_trains_the_published_sr(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "separator": {"name": "convtasnet", "preset": "tiny"},
                "sr": {"enabled": True, "training": "joint", "preset": "published"},
            }
        )
    )
    config = load_cell_config(path)
    assert config["sr"]["args"] == load_yaml(CONFIG_DIR / "sr.yaml")["presets"]["published"]
    assert config["separator"]["args"]["n_filters"] == 128
    path.write_text(yaml.safe_dump({"sr": {"enabled": True, "preset": "huge"}}))
    with pytest.raises(
        ConfigError, match=r"sr.preset 'huge'.*known presets: complex, published, tiny"
    ):
        load_cell_config(path)


def test_the_cli_refuses_an_unknown_preset_before_training(tmp_path, capsys):
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump({"separator": {"name": "dprnn", "preset": "huge"}}))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "cell")]) == 2
    err = capsys.readouterr().err
    assert "separator.preset 'huge'" in err and "published, tiny" in err
    assert not (tmp_path / "cell" / "last.pt").exists()


def test_own_args_win_over_the_preset():
    study = load_study(overrides={"separator": {"preset": "tiny", "args": {"n_repeats": 1}}})
    cell = plan_study(study).cells["convtasnet/ds1/sr-off/seed0"].config
    assert cell["separator"]["args"]["n_repeats"] == 1
    assert cell["separator"]["args"]["n_filters"] == 128  # from the preset


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"grid": {"factor": [2], "system.factor": [4]}}, "given twice"),
        ({"exclude": [{"colour": "red"}]}, "not in grid"),
        ({"grid": {"sr": [True]}}, "no SR-off cell with the same other axes"),
        ({"grid": {"separator": ["convtasnet"], "factor": [3]}}, "cell convtasnet/ds3"),
        ({"exclude": [{"factor": [1, 2, 4]}]}, "leave no cell"),
        ({"separator": {"preset": "huge"}}, "known presets: published, tiny"),
        ({"train": {"epochs": 0}}, "train.epochs"),
    ],
)
def test_bad_studies_are_refused_by_name(edit, message):
    study = load_study()
    study["grid"] = {**study["grid"], **edit.pop("grid", {})}
    with pytest.raises(ConfigError, match=message):
        plan_study(merge_configs(study, edit))


# Every shipped study and its number of cells (its grid minus its excludes).
CELLS_PER_STUDY = {
    "config.yaml": 24,
    "studies/libri2mix.yaml": 24,
    "studies/wsj0-2mix.yaml": 24,
    "studies/wsj0-2mix-stride.yaml": 6,
}


def test_every_shipped_study_is_planned_below():
    shipped = {"config.yaml", *(f"studies/{p.name}" for p in (CONFIG_DIR / "studies").glob("*"))}
    assert shipped == set(CELLS_PER_STUDY)


@pytest.mark.parametrize("study", sorted(CELLS_PER_STUDY))
def test_plan_cli_writes_plan_json(study, tmp_path, capsys, monkeypatch):
    from sfsrnet.data.fake import write_fake_corpus

    monkeypatch.chdir(tmp_path)
    args = ["plan", "--configfile", str(CONFIG_DIR / study), "--config", f"results_dir={tmp_path}"]
    corpus = load_study([CONFIG_DIR / study])["data"]["corpus"]
    if corpus != "embedded":
        root = write_fake_corpus(corpus, tmp_path / "corpus", n_mixtures=(2, 1, 1))
        args.append(f"data={{root: {root}}}")
    assert main(args) == 0
    out = capsys.readouterr().out
    plan = json.loads(next(tmp_path.glob("*/plan.json")).read_text())
    rows = [line for line in out.splitlines() if line.startswith("| ")][1:]  # under the header
    assert len(plan["cells"]) == CELLS_PER_STUDY[study] == len(rows)
    for cell in plan["cells"]:
        assert cell["name"] in out and len(cell["training_hash"]) == 16
        assert cell["corpus"] in plan["corpora"]
        assert (cell["twin"] is None) == (not cell["config"]["sr"]["enabled"])


def test_control_axis_keeps_the_meaningful_cells_and_pairs_them_with_the_plain_twin(caplog):
    import logging

    grid = {
        "separator": ["convtasnet"],
        "sr": [False, True],
        "control": ["none", "refine", "budget"],
    }
    with caplog.at_level(logging.INFO, logger="sfsrnet.study"):
        plan = plan_study({"grid": grid, "sr": {"epochs": 2}})
    assert list(plan.cells) == [
        "convtasnet/sr-off/plain",
        "convtasnet/sr-off/budget",
        "convtasnet/sr-on/plain",
        "convtasnet/sr-on/refine",
    ]
    assert "2 cell(s) left out" in caplog.text  # refine with SR off, budget with SR on
    off = plan.cells["convtasnet/sr-off/plain"]
    checkpoint = f"{off.folder}/checkpoint.pt"
    assert off.twin is None and off.config["sr"]["init_from"] is None
    for name in ("convtasnet/sr-off/budget", "convtasnet/sr-on/plain", "convtasnet/sr-on/refine"):
        cell = plan.cells[name]
        assert cell.twin == off.name
        assert cell.config["sr"]["init_from"] == checkpoint  # the workflow waits for the twin
    # The control acts where it is meaningful, so it is part of the training identity there.
    budget = training_part(plan.cells["convtasnet/sr-off/budget"].config)
    assert budget["sr"] == {
        "enabled": False,
        "control": "budget",
        "epochs": 2,
        "init_from": checkpoint,
    }
    assert training_part(plan.cells["convtasnet/sr-on/refine"].config)["sr"]["control"] == "refine"
    assert "control" not in training_part(plan.cells["convtasnet/sr-on/plain"].config)["sr"]
    assert training_part(off.config)["sr"] == {"enabled": False}  # old identities unchanged
    assert len({c.training_hash for c in plan.cells.values()}) == 4


def test_budget_cell_without_a_plain_twin_is_refused():
    grid = {"sr": [False], "control": ["budget"]}
    with pytest.raises(ConfigError, match=r"sr\.control: budget"):
        plan_study({"grid": grid})


def test_twins_share_band_edges_at_16_khz():
    from sfsrnet.checkpoint import system_spec
    from sfsrnet.evaluate import cell_band_edges

    study = {"grid": {"sr": [False, True]}, "system": {"factor": 2}}
    study["data"] = {"sample_rate": 16000}
    plan = plan_study(study)
    off, on = (system_spec(plan.cells[f"sr-{s}"].config) for s in ("off", "on"))
    assert off["sr"] is None and on["sr"] is not None
    assert cell_band_edges(off) == cell_band_edges(on)
    assert 4000.0 in cell_band_edges(off)  # low-rate Nyquist and the default SR split
