"""Real-corpus loaders on fake trees in the exact real layouts: reading, preparing, resampling."""

import os
import shutil

import pandas as pd
import pytest
import soundfile as sf
import torch

from sfsrnet.audio import resample
from sfsrnet.config import validate
from sfsrnet.data import corpus_folder, resolve_corpus
from sfsrnet.data import prepare as prepare_module
from sfsrnet.data.corpora import CorpusSource, resolve_root
from sfsrnet.data.fake import write_fake_corpus
from sfsrnet.data.folder import SeparationFolder
from sfsrnet.data.loaders import corpus_root
from sfsrnet.data.prepare import prepare_corpus, read_manifest
from sfsrnet.errors import ConfigError, DataError

N_SRC = {"wsj0-3mix": 3, "libri3mix": 3}


@pytest.fixture(scope="session")
def fake_tree(tmp_path_factory):
    """Fake corpus trees, one per kind, written on first use."""
    trees = {}

    def make(kind):
        if kind not in trees:
            trees[kind] = write_fake_corpus(kind, tmp_path_factory.mktemp("trees") / kind)
        return trees[kind]

    return make


def data_section(kind, root, **extra):
    section = {"corpus": kind, "root": str(root), "n_src": N_SRC.get(kind, 2), **extra}
    return validate({"data": section})["data"]


@pytest.mark.parametrize(
    "kind", ["folder", "wsj0-2mix", "wsj0-3mix", "libri2mix", "libri3mix", "wham"]
)
def test_each_loader_prepares_its_tree_at_8k_from_the_16k_files(kind, fake_tree, tmp_path):
    root = fake_tree(kind)
    data = data_section(kind, root)
    manifest = prepare_corpus(data, tmp_path / "prepared")
    assert manifest["n_mixtures"] == {"train": 6, "valid": 3, "test": 3}
    assert manifest["source_rate"] == 16000 and manifest["resampled"]
    n_src = data["n_src"]
    source = CorpusSource.from_data(data)
    entry = source.entries("test")[0]
    for split, count in manifest["n_mixtures"].items():
        table = pd.read_csv(tmp_path / "prepared" / f"{split}.csv", dtype=str)
        assert len(table) == count
        items = SeparationFolder(tmp_path / "prepared", split, n_src, 8000)
        assert len(items) == count
    mix, ref, name = SeparationFolder(tmp_path / "prepared", "test", n_src, 8000)[0]
    assert name == entry.name and ref.shape == (n_src, mix.shape[0])
    # The one resampler of the harness, applied to the 16 kHz originals.
    original, rate = sf.read(entry.mix, dtype="float32")
    assert rate == 16000
    expected = resample(torch.from_numpy(original), 16000, 8000)
    assert torch.allclose(mix, expected, atol=1e-6)
    assert torch.allclose(mix, ref.sum(0), atol=3 * 2**-15)  # 16-bit originals
    # Speakers: different within a mixture, parsed from the real naming scheme.
    table = pd.read_csv(tmp_path / "prepared" / "train.csv", dtype=str)
    speakers = table[[f"s{c + 1}_speaker" for c in range(n_src)]]
    assert (speakers.nunique(axis=1) == n_src).all()
    if kind != "folder":
        assert speakers.map(lambda s: s.isdigit() and len(s) == 3).all().all(), speakers


def test_study_rate_at_the_file_rate_links_the_originals(fake_tree, tmp_path):
    root = fake_tree("wsj0-2mix")
    data = data_section("wsj0-2mix", root, sample_rate=16000)
    manifest = prepare_corpus(data, tmp_path / "p")
    assert not manifest["resampled"]
    link = next((tmp_path / "p" / "test" / "s1").iterdir())
    assert link.is_symlink()
    assert link.resolve() == (root / "2speakers/wav16k/min/tt/s1" / link.name).resolve()


def test_use_8k_files_reads_the_corpus_own_8k_files(fake_tree, tmp_path):
    root = fake_tree("wham")
    data = data_section("wham", root, use_8k_files=True)
    manifest = prepare_corpus(data, tmp_path / "p")
    assert manifest["source_rate"] == 8000 and not manifest["resampled"]
    link = next((tmp_path / "p" / "train" / "mix").iterdir())
    assert "wav8k/min/tr/mix_clean" in str(link.resolve())
    with pytest.raises(ConfigError, match=r"data\.use_8k_files"):
        CorpusSource.from_data(data_section("wham", root, use_8k_files=True, sample_rate=16000))


def test_librimix_noisy_task_and_train_460(fake_tree, tmp_path):
    root = fake_tree("libri2mix")
    data = data_section("libri2mix", root, task="noisy", librimix={"train_set": "train-460"})
    source = CorpusSource.from_data(data)
    train = source.entries("train")
    assert len(train) == 12  # train-100 and train-360
    assert {e.mix.parts[-3] for e in train} == {"train-100", "train-360"}
    assert all(e.mix.parts[-2] == "mix_both" for e in train)
    assert all(e.sources[0].parts[-2] == "s1" for e in train)
    # Noisy mixtures are not sums of their sources: that is not checked, and they prepare.
    assert prepare_corpus(data, tmp_path / "p")["n_mixtures"]["train"] == 12


def test_librimix_metadata_with_paths_of_a_moved_corpus(fake_tree, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(fake_tree("libri2mix"), moved)
    csv = moved / "Libri2Mix/wav16k/min/metadata/mixture_dev_mix_clean.csv"
    table = pd.read_csv(csv)
    assert table.mixture_path.map(os.path.isabs).all()  # as LibriMix writes them
    assert not table.mixture_path.str.startswith(str(moved)).any()
    entries = CorpusSource.from_data(data_section("libri2mix", moved)).entries("valid")
    assert all(str(e.mix).startswith(str(moved)) and e.mix.is_file() for e in entries)


def test_root_from_the_environment_variable(fake_tree, monkeypatch):
    monkeypatch.setenv("SFSRNET_WSJ0_MIX", str(fake_tree("wsj0-2mix")))
    data = validate({"data": {"corpus": "wsj0-2mix"}})["data"]
    assert resolve_root(data) == fake_tree("wsj0-2mix").resolve()


def test_prepared_corpus_is_reused_and_guarded(fake_tree, tmp_path):
    data = data_section("wsj0-2mix", fake_tree("wsj0-2mix"))
    first = prepare_corpus(data, tmp_path / "p")
    stamp = (tmp_path / "p" / "manifest.json").stat().st_mtime_ns
    assert prepare_corpus(data, tmp_path / "p") == first
    assert (tmp_path / "p" / "manifest.json").stat().st_mtime_ns == stamp
    with pytest.raises(DataError, match="prepared with other settings"):
        prepare_corpus({**data, "mix_length": "max"}, tmp_path / "p")


def test_training_reads_only_a_corpus_prepared_with_its_settings(fake_tree, tmp_path):
    config = validate(
        {
            "results_dir": str(tmp_path),
            "data": {"corpus": "wsj0-2mix", "root": str(fake_tree("wsj0-2mix"))},
        }
    )
    with pytest.raises(DataError, match=r"not prepared.*make-corpus"):
        corpus_root(config)
    prepare_corpus(config["data"], tmp_path / "p")
    config["data"]["prepared"] = str(tmp_path / "p")
    assert corpus_root(config) == tmp_path / "p"
    assert read_manifest(tmp_path / "p")["corpus"] == "wsj0-2mix"
    config["data"]["sample_rate"] = 16000
    with pytest.raises(DataError, match="other settings"):
        corpus_root(config)


def test_resolve_corpus_of_a_real_corpus(fake_tree, tmp_path, monkeypatch):
    """root from the environment made absolute; prepared named by the key the manifest holds."""
    monkeypatch.chdir(fake_tree("wsj0-2mix").parent)
    monkeypatch.setenv("SFSRNET_WSJ0_MIX", "wsj0-2mix")  # relative to the current folder
    config = validate({"results_dir": str(tmp_path), "data": {"corpus": "wsj0-2mix"}})
    data = resolve_corpus(config)
    assert data["root"] == str(fake_tree("wsj0-2mix").resolve())
    folder = corpus_folder(data)
    assert folder == data["prepared"] and folder.startswith(str(tmp_path / "data" / "wsj0-2mix-"))
    assert resolve_corpus({**config, "data": data}) == data, "idempotent"
    manifest = prepare_corpus(data, folder)
    assert folder.endswith(f"-{manifest['key']}")
    assert corpus_root(config) == tmp_path / "data" / f"wsj0-2mix-{manifest['key']}"
    monkeypatch.delenv("SFSRNET_WSJ0_MIX")
    with pytest.raises(ConfigError, match=r"data\.root is not set.*SFSRNET_WSJ0_MIX"):
        resolve_corpus(config)
    monkeypatch.setenv("SFSRNET_WSJ0_MIX", str(tmp_path / "gone"))
    with pytest.raises(ConfigError, match=r"data\.root is null and SFSRNET_WSJ0_MIX = .*gone"):
        resolve_corpus(config)


def test_parallel_resampling_runs_in_fresh_processes(fake_tree, tmp_path, monkeypatch):
    """--jobs > 1 resamples in worker processes (python -m sfsrnet.data.worker), same result."""
    monkeypatch.setattr(prepare_module, "_MIN_PARALLEL", 1)
    monkeypatch.setattr(prepare_module, "_MIN_CHUNK", 3)
    data = data_section("wsj0-2mix", fake_tree("wsj0-2mix"))
    prepare_corpus(data, tmp_path / "one", jobs=1)
    monkeypatch.setattr(prepare_module, "_derive", None)  # the parent may not resample itself
    prepare_corpus(data, tmp_path / "two", jobs=2)
    for name in ("train.csv", "test.csv"):
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text()
    a = SeparationFolder(tmp_path / "one", "train", 2, 8000)[0]
    b = SeparationFolder(tmp_path / "two", "train", 2, 8000)[0]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
