"""The embedded corpus, made by the real generator (eSpeak NG; flite and festival if installed)."""

import json
import logging

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sfsrnet.data import tts
from sfsrnet.data.embedded import SPLITS, CorpusSpec, harvard_lists, make_corpus, read_manifest
from sfsrnet.data.folder import SeparationFolder
from sfsrnet.errors import ConfigError, DataError


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
    """Deterministic for a seed: a second build in another folder is sample-identical."""
    other = tmp_path / "again"
    make_corpus(small_spec, other, jobs=1)
    for split in SPLITS:
        for name in sorted((small_corpus / split / "mix").iterdir())[:3]:
            a, _ = sf.read(name)
            b, _ = sf.read(other / split / "mix" / name.name)
            assert np.array_equal(a, b)
    assert read_manifest(other)["key"] == read_manifest(small_corpus)["key"]


def test_manifest_records_every_generation_parameter(small_corpus, small_spec):
    manifest = json.loads((small_corpus / "manifest.json").read_text())
    assert manifest["spec"] == small_spec.as_dict()
    assert manifest["key"] == small_spec.key()
    assert "espeak" in manifest["engines"]


def test_finished_corpus_is_reused_not_rebuilt(small_corpus, small_spec):
    stamp = (small_corpus / "manifest.json").stat().st_mtime_ns
    make_corpus(small_spec, small_corpus)
    assert (small_corpus / "manifest.json").stat().st_mtime_ns == stamp


def test_key_changes_with_any_parameter(small_spec):
    values = small_spec.as_dict()
    data = {"sample_rate": values.pop("sample_rate"), "n_src": values.pop("n_src")}
    assert CorpusSpec.from_config({**data, "embedded": values}).key() == small_spec.key()
    for key, value in [("seed", 1), ("gain_db", 3.0), ("segment", 1.5)]:
        changed = CorpusSpec.from_config({**data, "embedded": {**values, key: value}})
        assert changed.key() != small_spec.key(), key
    assert CorpusSpec.from_config({**data, "sample_rate": 16000, "embedded": values}).key() != (
        small_spec.key()
    )


def test_a_folder_holding_another_spec_is_refused(small_corpus, small_spec):
    other = CorpusSpec.from_config({"embedded": {"n_train": 13, "n_valid": 4, "n_test": 4}})
    with pytest.raises(DataError, match="another spec"):
        make_corpus(other, small_corpus)


def test_bad_spec_names_the_key():
    with pytest.raises(ConfigError, match=r"data\.embedded\.n_train"):
        CorpusSpec.from_config({"embedded": {"n_train": 0}})


def test_espeak_only_corpus_warns_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(tts, "available_engines", lambda: ["espeak"])
    spec = CorpusSpec.from_config(
        {"embedded": {"n_train": 4, "n_valid": 2, "n_test": 2, "segment": 0.5}}
    )
    with caplog.at_level(logging.WARNING):
        manifest = make_corpus(spec, tmp_path / "espeak-only", jobs=1)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "apt-get install flite festival" in warnings[0].message
    assert manifest["engines"] == ["espeak"]
    speakers = {s for split in manifest["speakers"].values() for s in split}
    assert all(s.startswith("espeak:") for s in speakers)


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
