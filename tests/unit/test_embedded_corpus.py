"""The embedded corpus, made by the real generator (eSpeak NG; flite and festival where a test
asks for the installed engines), and its one identity (:mod:`sfsrnet.data.identity`).

Marked ``engines``: CI runs this module again after installing flite and festival.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from sfsrnet.__main__ import main
from sfsrnet.config import validate
from sfsrnet.data import corpus_folder, resolve_corpus, tts
from sfsrnet.data.embedded import SPLITS, CorpusSpec, harvard_lists, make_corpus, read_manifest
from sfsrnet.data.folder import SeparationFolder
from sfsrnet.errors import ConfigError, DataError

pytestmark = pytest.mark.engines
TINY = {"n_train": 4, "n_valid": 2, "n_test": 2, "segment": 0.5}


def test_harvard_texts_are_72_lists_of_10():
    lists = harvard_lists()
    assert len(lists) == 72 and all(len(x) == 10 for x in lists)
    assert len({s for x in lists for s in x}) == 720


def test_splits_have_disjoint_talkers_and_sentences(small_corpus):
    tables = {s: pd.read_csv(small_corpus / f"{s}.csv") for s in SPLITS}
    talkers = {s: set(t.s1_speaker) | set(t.s2_speaker) for s, t in tables.items()}
    texts = {s: set(t.s1_text) | set(t.s2_text) for s, t in tables.items()}
    for a, b in [("train", "valid"), ("train", "test"), ("valid", "test")]:
        assert not talkers[a] & talkers[b], (a, b)
        assert not texts[a] & texts[b], (a, b)
    # The two sources of a mixture are always different talkers.
    for table in tables.values():
        assert (table.s1_speaker != table.s2_speaker).all()


def test_mixtures_are_exact_sums_of_their_sources(small_corpus, small_spec):
    for split in SPLITS:
        data = SeparationFolder(small_corpus, split, n_src=2, sample_rate=8000)
        assert len(data) == small_spec.n_mixtures(split)
        mix, ref, _ = data[0]
        assert mix.shape == (8000,) and ref.shape == (2, 8000)
        assert np.allclose(mix.numpy(), ref.sum(0).numpy(), atol=1e-6)
        assert (ref.pow(2).mean(-1) > 1e-5).all(), "a source is silent"


def test_same_spec_gives_the_same_corpus(tmp_path, small_spec, small_corpus):
    """Deterministic for a seed: a second build in another folder (other worker processes, one
    job instead of two) has the same samples in every file and the same tables. (The files'
    bytes differ: libsndfile stamps the time into the PEAK chunk of a float wav.)"""
    other = tmp_path / "again"
    make_corpus(small_spec, other, jobs=1)
    files = sorted(p.relative_to(small_corpus) for p in small_corpus.rglob("*.wav"))
    assert len(files) == 3 * sum(small_spec.n_mixtures(s) for s in SPLITS)
    for name in files:
        a, rate_a = sf.read(small_corpus / name, dtype="float32")
        b, rate_b = sf.read(other / name, dtype="float32")
        assert rate_a == rate_b and np.array_equal(a, b), name
    for split in SPLITS:
        name = f"{split}.csv"
        assert (small_corpus / name).read_bytes() == (other / name).read_bytes(), name
    assert read_manifest(other)["key"] == read_manifest(small_corpus)["key"]


def test_manifest_records_every_generation_parameter(small_corpus, small_spec):
    manifest = json.loads((small_corpus / "manifest.json").read_text())
    assert manifest["spec"] == small_spec.as_dict()
    assert manifest["key"] == small_spec.key()
    assert manifest["engines"] == ["espeak"] == list(small_spec.engines)  # the default


def test_finished_corpus_is_reused_not_rebuilt(small_corpus, small_spec):
    stamp = (small_corpus / "manifest.json").stat().st_mtime_ns
    make_corpus(small_spec, small_corpus)
    assert (small_corpus / "manifest.json").stat().st_mtime_ns == stamp


def test_key_changes_with_any_parameter(small_spec):
    values = small_spec.as_dict()
    data = {"sample_rate": values.pop("sample_rate"), "n_src": values.pop("n_src")}
    assert values.pop("espeak_version")  # not a config key: the installed eSpeak NG release
    assert CorpusSpec.from_config({**data, "embedded": values}).key() == small_spec.key()
    for key, value in [("seed", 1), ("gain_db", 3.0), ("segment", 1.5)]:
        changed = CorpusSpec.from_config({**data, "embedded": {**values, key: value}})
        assert changed.key() != small_spec.key(), key
    assert CorpusSpec.from_config({**data, "sample_rate": 16000, "embedded": values}).key() != (
        small_spec.key()
    )


def test_a_folder_holding_another_spec_is_refused(small_corpus, small_spec):
    other = CorpusSpec.from_config({"embedded": {"n_train": 13, "n_valid": 4, "n_test": 4}})
    with pytest.raises(DataError, match="an embedded corpus made with other settings"):
        make_corpus(other, small_corpus)


def test_bad_spec_names_the_key():
    with pytest.raises(ConfigError, match=r"data\.embedded\.n_train"):
        CorpusSpec.from_config({"embedded": {"n_train": 0}})


def _installed(monkeypatch, engines: list[str]) -> None:
    """Pretend exactly ``engines`` are installed (flite and festival are on CI, not here)."""
    monkeypatch.setattr(tts, "available_engines", lambda: list(engines))


def test_key_covers_the_engines(monkeypatch):
    _installed(monkeypatch, ["espeak", "flite", "festival"])
    keys = {
        str(engines): CorpusSpec.from_config({"embedded": {"engines": engines}}).key()
        for engines in (["espeak"], ["espeak", "flite"], ["flite", "espeak", "festival"])
    }
    assert len(set(keys.values())) == 3, keys
    # auto = the installed engines: the same key as naming them, another key elsewhere.
    assert (
        CorpusSpec.from_config({"embedded": {"engines": "auto"}}).key()
        == keys[str(["flite", "espeak", "festival"])]
    )
    _installed(monkeypatch, ["espeak"])
    assert CorpusSpec.from_config({"embedded": {"engines": "auto"}}).key() == keys[str(["espeak"])]
    assert CorpusSpec.from_config({}).key() == keys[str(["espeak"])]  # default: [espeak]


@pytest.mark.parametrize("missing", ["flite", "festival"])
def test_an_engine_asked_for_but_not_installed_is_refused_by_name(monkeypatch, tmp_path, missing):
    _installed(monkeypatch, ["espeak"])
    config = validate({"results_dir": str(tmp_path), "data": {"embedded": {"engines": [missing]}}})
    pattern = rf"data\.embedded\.engines asks for {missing}, not installed.*apt-get install flite"
    with pytest.raises(ConfigError, match=pattern):
        resolve_corpus(config)
    with pytest.raises(ConfigError, match=pattern):
        CorpusSpec.from_config(config["data"])
    # A spec made by hand is refused too, before anything is synthesised.
    spec = CorpusSpec(**{**CorpusSpec.from_config({}).__dict__, "engines": ("espeak", missing)})
    with pytest.raises(ConfigError, match=missing):
        make_corpus(spec, tmp_path / "corpus")
    assert not (tmp_path / "corpus").exists()


def test_a_misspelt_engine_is_refused_by_the_schema():
    with pytest.raises(ConfigError, match=r"data\.embedded\.engines"):
        validate({"data": {"embedded": {"engines": "all"}}})


def test_resolve_corpus_fills_the_folder_named_by_the_key(tmp_path):
    config = validate({"results_dir": str(tmp_path), "data": {"embedded": TINY}})
    data = resolve_corpus(config)
    key = CorpusSpec.from_config(config["data"]).key()
    assert data["root"] == str(tmp_path / "data" / f"embedded-{key}") == corpus_folder(data)
    assert data["embedded"]["engines"] == ["espeak"]
    assert config["data"]["root"] is None, "the config itself is not changed"
    assert resolve_corpus({**config, "data": data}) == data, "idempotent"
    given = resolve_corpus({**config, "data": {**config["data"], "root": "elsewhere"}})
    assert given["root"] == "elsewhere"


def test_make_corpus_with_and_without_out_agrees_with_resolve_corpus(tmp_path, capsys):
    """One key: the folder make-corpus picks, the manifest's key and resolve_corpus agree."""
    config = {"results_dir": str(tmp_path / "results"), "data": {"embedded": TINY}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    folder = Path(corpus_folder(resolve_corpus(validate(config))))
    assert main(["make-corpus", "--config", str(tmp_path / "c.yaml"), "--jobs", "1"]) in (0, None)
    key = read_manifest(folder)["key"]
    assert folder.name == f"embedded-{key}" and f"key {key}" in capsys.readouterr().out
    out = tmp_path / "chosen"
    args = ["make-corpus", "--config", str(tmp_path / "c.yaml"), "--out", str(out), "--jobs", "2"]
    assert main(args) in (0, None)
    assert read_manifest(out)["key"] == key
    for root in (out, folder):
        assert (root / "test.csv").read_bytes() == (folder / "test.csv").read_bytes()
        assert np.array_equal(*(sf.read(r / "test/mix/test00000.wav")[0] for r in (root, folder)))


def test_corpus_of_the_installed_engines(tmp_path):
    """``auto``: every installed engine speaks in the corpus (on CI: eSpeak, flite, festival)."""
    spec = CorpusSpec.from_config({"embedded": {**TINY, "engines": "auto", "n_train": 24}})
    manifest = make_corpus(spec, tmp_path / "auto", jobs=2)
    assert manifest["engines"] == tts.available_engines() == list(spec.engines)
    assert manifest["key"] == spec.key()
    voices = {v.split(":")[0] for split in manifest["speakers"].values() for v in split}
    assert voices == set(spec.engines)


def test_a_failing_worker_surfaces_its_stderr():
    from sfsrnet.data.build import run_fresh

    bad = tts.Voice("espeak", "en-us+nosuchvariant")
    with pytest.raises(DataError, match=r"(?s)worker process 0.*no variant 'nosuchvariant'"):
        run_fresh("sfsrnet.data.tts:synthesize_all", [([(bad, "Hello.")],)], 1, "test")


def test_voices_of_one_talker_share_an_identity():
    assert tts.speaker_identity("espeak", "en-us+m3") == tts.speaker_identity("espeak", "en+m3")
    assert tts.speaker_identity("flite", "kal16") == tts.speaker_identity("festival", "kal_diphone")
    assert tts.speaker_identity("flite", "slt") != tts.speaker_identity("flite", "awb")


@pytest.mark.slow
def test_two_processes_making_one_corpus_leave_one_intact_copy(tmp_path):
    """Two `make-corpus` jobs on the same folder at once: one builds, the other waits and reuses."""
    import os
    import subprocess
    import sys

    data = {"embedded": {"n_train": 4, "n_valid": 2, "n_test": 2, "segment": 0.5, "seed": 3}}
    spec = CorpusSpec.from_config(data)
    (tmp_path / "spec.yaml").write_text(json.dumps({"data": data}))
    out = tmp_path / "corpus"
    cmd = [sys.executable, "-m", "sfsrnet", "make-corpus", "--config", str(tmp_path / "spec.yaml")]
    cmd += ["--out", str(out), "--jobs", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    jobs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    logs = [job.communicate()[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], logs
    assert sum("is up to date" in log for log in logs) == 1, logs
    assert read_manifest(out)["key"] == spec.key()
    for split in SPLITS:
        for sub in ("mix", "s1", "s2"):
            assert len(list((out / split / sub).glob("*.wav"))) == spec.n_mixtures(split)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "corpus.lock", "spec.yaml"]
