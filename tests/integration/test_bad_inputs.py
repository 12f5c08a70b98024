"""The bad-input catalogue: every case ends with a one-paragraph message naming the culprit and a
non-zero exit, before any training, without a Python traceback (unless --debug).

Each case id is a row of docs/errors.md, whose message column must be what the case prints (paths
under the test's folder written as <tmp>, figures that depend on the corpus's audio as the case
computes them, e.g. <rms>, <key>). To print the messages of every case after changing
one, run with SFSRNET_ERRORS_DUMP=messages.json and copy them into the doc.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from sfsrnet.__main__ import main
from sfsrnet.checkpoint import build_system, save_checkpoint, system_spec
from sfsrnet.config import validate
from sfsrnet.data import corpus_key, resolve_corpus

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "errors.md"
# Catalogue rows tested elsewhere or added by other parts of the harness.
ELSEWHERE = {"nonfinite-loss", "nonfinite-gradient"}


@dataclass
class World:
    """One case's scratch folder, a valid cell config and a corpus to spoil."""

    tmp: Path
    config: dict
    source_corpus: Path
    # Figures of a message that depend on the corpus's audio (and so on its engines), as the
    # case computed them -> the placeholder docs/errors.md shows instead.
    figures: dict[str, str] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return self.tmp / "cell"

    def corpus(self) -> Path:
        root = self.tmp / "corpus"
        if not root.exists():
            shutil.copytree(self.source_corpus, root)
            self.config["data"]["root"] = str(root)
        return root

    def write(self, config: dict | None = None, name: str = "config.yaml") -> str:
        path = self.tmp / name
        path.write_text(yaml.safe_dump(config or self.config))
        return str(path)

    def train(self, config: dict | None = None) -> list[str]:
        return ["train", "--config", self.write(config), "--out", str(self.out)]

    def evaluate(self, checkpoint: Path) -> list[str]:
        root, out = str(self.corpus()), str(self.tmp / "eval")
        return ["evaluate", "--checkpoint", str(checkpoint), "--root", root, "--out", out]

    def checkpoint(self, separator: str = "convtasnet", args: dict | None = None) -> Path:
        """A harness checkpoint (untrained weights) of the cell's system or another separator."""
        config = {**self.config, "separator": {**self.config["separator"], "name": separator}}
        if args is not None:
            config["separator"]["args"] = args
        spec = system_spec(config)
        path = self.tmp / f"{separator}.pt"
        save_checkpoint(path, build_system(spec), spec, epoch=1)
        return path


@dataclass
class Case:
    id: str
    build: Callable[[World], list[str]]
    culprit: str  # must appear in the message
    snakemake: bool = False


CASES: list[Case] = []


def case(culprit: str, snakemake: bool = False):
    def register(build: Callable[[World], list[str]]) -> Callable[[World], list[str]]:
        CASES.append(Case(build.__name__.replace("_", "-"), build, culprit, snakemake))
        return build

    return register


def _set(config: dict, dotted: str, value) -> dict:
    *parents, last = dotted.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return config


def _first(root: Path, sub: str, split: str = "train") -> Path:
    return sorted((root / split / sub).glob("*.wav"))[0]


# --- config ----------------------------------------------------------------------------------


@case("missing.yaml")
def config_file_missing(w: World) -> list[str]:
    return ["train", "--config", str(w.tmp / "missing.yaml"), "--out", str(w.out)]


@case("line 2, column 1")
def config_not_yaml(w: World) -> list[str]:
    (w.tmp / "config.yaml").write_text("train: {epochs: 2\n")
    return ["train", "--config", str(w.tmp / "config.yaml"), "--out", str(w.out)]


@case("key trian")
def unknown_top_level_key(w: World) -> list[str]:
    return w.train({**w.config, "trian": {"epochs": 2}})


@case("key train.epoch")
def unknown_nested_key(w: World) -> list[str]:
    return w.train(_set(w.config, "train.epoch", 2))


@case("key train.lr")
def wrong_type(w: World) -> list[str]:
    return w.train(_set(w.config, "train.lr", "fast"))


@case("key train.epochs")
def negative_epochs(w: World) -> list[str]:
    return w.train(_set(w.config, "train.epochs", -1))


@case("key train.batch_size")
def zero_batch_size(w: World) -> list[str]:
    return w.train(_set(w.config, "train.batch_size", 0))


@case("key data.sample_rate")
def unsupported_sample_rate(w: World) -> list[str]:
    return w.train(_set(w.config, "data.sample_rate", 44100))


@case("system.factor 3")
def factor_does_not_divide_rate(w: World) -> list[str]:
    return w.train(_set(w.config, "system.factor", 3))


@case("unknown separator 'convtasnett'")
def unknown_separator(w: World) -> list[str]:
    return w.train(_set(w.config, "separator.name", "convtasnett"))


@case("separator.module 'my_lab.separators'")
def separator_module_missing(w: World) -> list[str]:
    return w.train(_set(w.config, "separator.module", "my_lab.separators"))


@case("n_blok")
def separator_arg_typo(w: World) -> list[str]:
    return w.train(_set(w.config, "separator.args.n_blok", 2))


@case("sr.args")
def sr_arg_typo(w: World) -> list[str]:
    config = _set(w.config, "sr", {"enabled": True, "training": "joint", "args": {"chanels": [4]}})
    return w.train(config)


@case("sr.init_from")
def staged_sr_without_init_from(w: World) -> list[str]:
    return w.train(_set(w.config, "sr", {"enabled": True, "training": "staged"}))


@case("sr.init_from")
def budget_without_init_from(w: World) -> list[str]:
    return w.train(_set(w.config, "sr", {"enabled": False, "control": "budget"}))


@case("train.device")
def cuda_without_gpu(w: World) -> list[str]:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    return w.train(_set(w.config, "train.device", "cuda"))


@case("data.root")
def corpus_root_not_set(w: World) -> list[str]:
    config = _set(w.config, "data.root", None)
    # The default folder is named by the corpus key, a hash that moves with the generator.
    folder = Path(resolve_corpus(validate(config))["root"]).name
    w.figures[folder] = "embedded-<key>"
    return w.train(config)


@case("data.root")
def corpus_root_missing(w: World) -> list[str]:
    return w.train(_set(w.config, "data.root", str(w.tmp / "no-such-corpus")))


@case("data.n_src is 3")
def n_src_the_corpus_lacks(w: World) -> list[str]:
    w.corpus()
    return w.train(_set(w.config, "data.n_src", 3))


# --- data ------------------------------------------------------------------------------------


@case("valid/mix")
def corpus_split_missing(w: World) -> list[str]:
    shutil.rmtree(w.corpus() / "valid")
    return w.train()


@case("train/s2/train00003.wav")
def source_file_missing(w: World) -> list[str]:
    (w.corpus() / "train" / "s2" / "train00003.wav").unlink()
    return w.train()


@case("train/s1/train00000.wav")
def stereo_wav(w: World) -> list[str]:
    path = _first(w.corpus(), "s1")
    data, rate = sf.read(path)
    sf.write(path, np.stack([data, data], axis=1), rate, subtype="FLOAT")
    return w.train()


@case("train/s2/train00000.wav")
def silent_source(w: World) -> list[str]:
    path = _first(w.corpus(), "s2")
    data, rate = sf.read(path)
    sf.write(path, np.zeros_like(data), rate, subtype="FLOAT")
    return w.train()


@case("train/mix/train00000.wav")
def mixture_not_sum(w: World) -> list[str]:
    """A corpus in the generic folder layout whose first mixture is louder than its sources."""
    path = _first(w.corpus(), "mix")
    data, rate = sf.read(path)
    sf.write(path, 1.5 * data, rate, subtype="FLOAT")
    # The RMS difference the check reports, from the files as written (it depends on the audio).
    mix = sf.read(path, dtype="float32")[0].astype(np.float64)
    ref = np.stack(
        [sf.read(path.parents[1] / f"s{c}" / path.name, dtype="float32")[0] for c in (1, 2)]
    )
    err = np.sqrt(np.mean((mix - ref.sum(0, dtype=np.float64)) ** 2))
    w.figures[f"RMS difference {err:.3g} is"] = "RMS difference <rms> is"
    config = json.loads(json.dumps(w.config))
    config["data"] |= {"corpus": "folder", "check_sample": 1000}
    return ["make-corpus", "--config", w.write(config)]


@case("train/mix/train00000.wav")
def wrong_rate_wav(w: World) -> list[str]:
    path = _first(w.corpus(), "mix")
    data, _ = sf.read(path)
    sf.write(path, data, 16000, subtype="FLOAT")
    return w.train()


@case("valid/s2/valid00000.wav")
def truncated_wav(w: World) -> list[str]:
    path = _first(w.corpus(), "s2", split="valid")
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    return w.train()


@case("train/s1/train00000.wav")
def empty_wav(w: World) -> list[str]:
    path = _first(w.corpus(), "s1")
    sf.write(path, np.zeros(0, dtype=np.float32), 8000, subtype="FLOAT")
    return w.train()


@case("train/mix/train00000.wav")
def nan_samples(w: World) -> list[str]:
    path = _first(w.corpus(), "mix")
    data, rate = sf.read(path, dtype="float32")
    data[100] = np.nan
    sf.write(path, data, rate, subtype="FLOAT")
    return w.train()


@case("train/s1/train00000.wav")
def not_audio(w: World) -> list[str]:
    _first(w.corpus(), "s1").write_text("not audio\n")
    return w.train()


@case("train/s2/train00000.wav")
def source_shorter_than_mixture(w: World) -> list[str]:
    path = _first(w.corpus(), "s2")
    data, rate = sf.read(path, dtype="float32")
    sf.write(path, data[:-80], rate, subtype="FLOAT")
    return w.train()


# --- checkpoints -----------------------------------------------------------------------------


@case("missing.pt")
def checkpoint_missing(w: World) -> list[str]:
    return w.evaluate(w.tmp / "missing.pt")


@case("junk.pt")
def checkpoint_not_torch(w: World) -> list[str]:
    (w.tmp / "junk.pt").write_bytes(b"not a checkpoint\n" * 8)
    return w.evaluate(w.tmp / "junk.pt")


@case("cut.pt")
def checkpoint_cut_short(w: World) -> list[str]:
    blob = w.checkpoint().read_bytes()
    (w.tmp / "cut.pt").write_bytes(blob[: len(blob) // 2])
    return w.evaluate(w.tmp / "cut.pt")


@case("argparse.Namespace")
def checkpoint_with_pickled_object(w: World) -> list[str]:
    torch.save({"format": 1, "options": argparse.Namespace(lr=0.1)}, w.tmp / "pickled.pt")
    return w.evaluate(w.tmp / "pickled.pt")


@case("format 99")
def checkpoint_of_another_format(w: World) -> list[str]:
    payload = torch.load(w.checkpoint(), weights_only=True)
    torch.save({**payload, "format": 99}, w.tmp / "future.pt")
    return w.evaluate(w.tmp / "future.pt")


@case("bare.pt")
def checkpoint_bare_state_dict(w: World) -> list[str]:
    torch.save(torch.nn.Linear(2, 2).state_dict(), w.tmp / "bare.pt")
    return w.evaluate(w.tmp / "bare.pt")


@case("sr.init_from")
def init_from_another_separator(w: World) -> list[str]:
    other = w.checkpoint("dprnn", args={"n_repeats": 1, "bn_chan": 16, "hid_size": 16})
    config = _set(w.config, "sr", {"enabled": True, "training": "staged", "init_from": str(other)})
    return w.train(config)


@case("sr.init_from")
def init_from_weights_that_do_not_fit(w: World) -> list[str]:
    torch.save(torch.nn.Linear(2, 2).state_dict(), w.tmp / "mine.pt")
    config = _set(
        w.config, "sr", {"enabled": True, "training": "staged", "init_from": str(w.tmp / "mine.pt")}
    )
    return w.train(config)


@case("other settings")
def corpus_folder_of_another_spec(w: World) -> list[str]:
    root = w.corpus()
    config = _set(w.config, "data.embedded.n_train", 99)
    held = json.loads((root / "manifest.json").read_text())["key"]
    wanted = corpus_key(validate(config)["data"])
    w.figures[f"(key {held}, wanted {wanted})"] = "(key <key>, wanted <other key>)"
    return ["make-corpus", "--config", w.write(config), "--out", str(root)]


# --- the study, through snakemake -n ---------------------------------------------------------


@case("key trian", snakemake=True)
def study_unknown_key(w: World) -> list[str]:
    return ["--configfile", w.write({"trian": {"epochs": 2}}, "study.yaml")]


@case("key train.epochs", snakemake=True)
def study_bad_value(w: World) -> list[str]:
    return ["--configfile", w.write({"train": {"epochs": 0}}, "study.yaml")]


@case("system.factor 3", snakemake=True)
def study_factor_does_not_divide_rate(w: World) -> list[str]:
    return ["--configfile", w.write({"grid": {"factor": [1, 3]}}, "study.yaml")]


# --- running and checking --------------------------------------------------------------------


@pytest.fixture
def world(tmp_path, tiny_config, small_corpus) -> World:
    config = json.loads(json.dumps(tiny_config))
    config["data"]["root"] = str(small_corpus)
    config["results_dir"] = str(tmp_path / "results")
    config["mlflow"]["enabled"] = False
    config["cell"] = {"name": "convtasnet/ds1/seed0", "axes": {}}
    return World(tmp_path, config, small_corpus)


def _snakemake(args: list[str], results: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", *args]
    cmd += ["--config", f"results_dir={results}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)


def error_paragraph(stderr: str) -> str:
    """The CLI's error message as one line (from ``error:`` to the --debug hint)."""
    lines = stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("error: "))
    block = []
    for line in lines[start:]:
        if line.strip() == "(run with --debug for the traceback)":
            break
        assert line is lines[start] or line.startswith("  "), f"not one paragraph: {stderr}"
        block.append(line.strip())
    return " ".join(block)


def doc_messages() -> dict[str, str]:
    """Case id -> message, from the table of docs/errors.md."""
    rows = re.findall(r"^\| `([a-z0-9-]+)` \|.*\| `(.*)` \|[^|]*\|$", DOC.read_text(), re.M)
    return dict(rows)


def _check_against_doc(case_id: str, message: str) -> None:
    dump = os.environ.get("SFSRNET_ERRORS_DUMP")
    if dump:
        path = Path(dump)
        found = json.loads(path.read_text()) if path.is_file() else {}
        path.write_text(json.dumps({**found, case_id: message}, indent=1))
        return
    assert doc_messages().get(case_id) == message, (
        f"docs/errors.md row {case_id} should read `{message}`"
    )


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_one_paragraph(bad: Case, world: World, capsys):
    args = bad.build(world)
    if bad.snakemake:
        result = _snakemake(args, world.tmp / "results")
        code, stderr = result.returncode, result.stdout + result.stderr  # snakemake logs to both
        lines = stderr.splitlines()
        at = next((i for i, x in enumerate(lines) if x.startswith("WorkflowError in")), None)
        assert at is not None, stderr
        message = lines[at + 1]
        assert "Traceback" not in stderr and "Failed validating" not in stderr, stderr
        assert not (world.tmp / "results").exists(), "a job ran"
    else:
        code = main(args)
        stderr = capsys.readouterr().err
        assert "Traceback" not in stderr
        message = error_paragraph(stderr)
        # Nothing was trained: the error came before the first epoch.
        assert not (world.out / "last.pt").exists() and not (world.out / "train_log.csv").exists()
    assert code != 0
    assert bad.culprit in message, message
    for figure, placeholder in world.figures.items():
        assert figure in message, (figure, message)
        message = message.replace(figure, placeholder)
    _check_against_doc(bad.id, message.replace(str(world.tmp), "<tmp>"))


@pytest.mark.parametrize("debug", [False, True])
def test_real_process_prints_the_message_or_with_debug_the_traceback(world: World, debug: bool):
    args = stereo_wav(world)
    cmd = [sys.executable, "-m", "sfsrnet", *(["--debug"] if debug else []), *args]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == (1 if debug else 2)
    assert ("Traceback (most recent call last)" in result.stderr) == debug
    assert (
        "DataError" in result.stderr
        if debug
        else "has 2 channels" in error_paragraph(result.stderr)
    )


def test_every_case_is_in_the_doc_and_every_row_has_a_case():
    rows = set(doc_messages())
    ids = {c.id for c in CASES}
    assert ids - rows == set(), "cases missing from docs/errors.md"
    assert rows - ids - ELSEWHERE == set(), "doc rows without a case"
    assert len(ids) >= 15
