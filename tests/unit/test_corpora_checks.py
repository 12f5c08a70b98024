"""Bad data stops preparation with a message that names the file and what is wrong."""

import re
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sfsrnet.config import validate
from sfsrnet.data.fake import write_fake_corpus
from sfsrnet.data.prepare import prepare_corpus
from sfsrnet.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    base = tmp_path_factory.mktemp("pristine")
    return {kind: write_fake_corpus(kind, base / kind) for kind in ("wsj0-2mix", "libri2mix")}


@pytest.fixture
def wsj0(pristine, tmp_path):
    """A fresh copy of a fake wsj0-2mix tree and the path of its 16 kHz min cv split."""
    root = tmp_path / "wsj0-mix"
    shutil.copytree(pristine["wsj0-2mix"], root)
    return root, root / "2speakers/wav16k/min/cv"


def prepare(kind, root, tmp_path, **extra):
    data = validate({"data": {"corpus": kind, "root": str(root), **extra}})["data"]
    return prepare_corpus(data, tmp_path / "prepared")


def first(folder):
    return sorted(folder.iterdir())[0]


def test_missing_root_names_the_key_and_the_variable(monkeypatch):
    monkeypatch.delenv("SFSRNET_WSJ0_MIX", raising=False)
    data = validate({"data": {"corpus": "wsj0-2mix"}})["data"]
    with pytest.raises(ConfigError, match=r"data\.root.*SFSRNET_WSJ0_MIX"):
        prepare_corpus(data, "unused")


def test_root_that_does_not_exist(tmp_path):
    nowhere = re.escape(f"data.root = {tmp_path / 'nowhere'}: the wsj0-2mix corpus folder")
    with pytest.raises(ConfigError, match=nowhere + r".*SFSRNET_WSJ0_MIX"):
        prepare("wsj0-2mix", tmp_path / "nowhere", tmp_path)


def test_n_src_must_match_the_corpus():
    with pytest.raises(ConfigError, match=r"data\.n_src"):
        validate({"data": {"corpus": "libri3mix"}})
    with pytest.raises(ConfigError, match=r"data\.task"):
        validate({"data": {"corpus": "wsj0-2mix", "task": "noisy"}})


def test_missing_split(wsj0, tmp_path):
    root, cv = wsj0
    shutil.rmtree(cv)
    message = f"{cv / 'mix'} of the wsj0-2mix corpus does not exist"
    with pytest.raises(DataError, match=re.escape(message)):
        prepare("wsj0-2mix", root, tmp_path)


def test_missing_source_file(wsj0, tmp_path):
    root, cv = wsj0
    gone = first(cv / "s2")
    gone.unlink()
    with pytest.raises(DataError, match=re.escape(f"{gone}: missing (source 2 of the mixture")):
        prepare("wsj0-2mix", root, tmp_path)
    assert not (tmp_path / "prepared").exists()


def test_metadata_row_pointing_to_a_missing_file(pristine, tmp_path):
    root = tmp_path / "librimix"
    shutil.copytree(pristine["libri2mix"], root)
    csv = root / "Libri2Mix/wav16k/min/metadata/mixture_test_mix_clean.csv"
    table = pd.read_csv(csv)
    table.loc[1, "source_2_path"] = "/elsewhere/test/s2/not-there.wav"  # read under root
    table.to_csv(csv, index=False)
    missing = r"not-there\.wav: missing .*mixture_test_mix_clean\.csv row 3"
    with pytest.raises(DataError, match=missing):
        prepare("libri2mix", root, tmp_path)


def test_metadata_file_missing(pristine, tmp_path):
    root = tmp_path / "librimix"
    shutil.copytree(pristine["libri2mix"], root)
    (root / "Libri2Mix/wav16k/min/metadata/mixture_dev_mix_clean.csv").unlink()
    with pytest.raises(DataError, match=r"mixture_dev_mix_clean\.csv does not exist"):
        prepare("libri2mix", root, tmp_path)


def test_wrong_sample_rate(wsj0, tmp_path):
    root, cv = wsj0
    path = first(cv / "s1")
    wav, _ = sf.read(path)
    sf.write(path, wav, 8000, subtype="PCM_16")
    with pytest.raises(DataError, match=re.escape(f"{path}: 8000 Hz; 16000 Hz was expected")):
        prepare("wsj0-2mix", root, tmp_path)


def test_multi_channel_file(wsj0, tmp_path):
    root, cv = wsj0
    path = first(cv / "mix")
    wav, rate = sf.read(path)
    sf.write(path, np.stack([wav, wav], 1), rate, subtype="PCM_16")
    with pytest.raises(DataError, match=re.escape(f"{path}: 2 channels; mono is required")):
        prepare("wsj0-2mix", root, tmp_path)


def test_unreadable_and_empty_files(wsj0, tmp_path):
    root, cv = wsj0
    broken, empty = sorted((cv / "s1").iterdir())[:2]
    broken.write_bytes(b"RIFF-not-really-a-wave-file")
    sf.write(empty, np.zeros(0), 16000, subtype="PCM_16")
    with pytest.raises(DataError) as err:
        prepare("wsj0-2mix", root, tmp_path)
    assert f"{broken}: unreadable" in str(err.value)
    assert f"{empty}: empty (0 samples)" in str(err.value)
    assert "2 problem(s)" in str(err.value)


def test_source_of_another_length(wsj0, tmp_path):
    root, cv = wsj0
    path = first(cv / "s2")
    wav, rate = sf.read(path)
    sf.write(path, wav[:-100], rate, subtype="PCM_16")
    message = f"{path}: {len(wav) - 100} samples, but its mixture"
    with pytest.raises(DataError, match=re.escape(message)):
        prepare("wsj0-2mix", root, tmp_path)


def test_mixture_that_is_not_the_sum_of_its_sources(wsj0, tmp_path):
    root, cv = wsj0
    path = first(cv / "mix")
    wav, rate = sf.read(path)
    sf.write(path, wav * 1.05, rate, subtype="PCM_16")
    with pytest.raises(DataError, match=re.escape(f"{path}: not the sum of its sources")):
        prepare("wsj0-2mix", root, tmp_path)
    # Within a looser tolerance it passes: the check is the configured one.
    prepare("wsj0-2mix", root, tmp_path, sum_tolerance=0.1)


def test_silent_source(wsj0, tmp_path):
    root, cv = wsj0
    name = first(cv / "mix").name
    other, rate = sf.read(cv / "s2" / name)
    sf.write(cv / "s1" / name, np.zeros_like(other), rate, subtype="PCM_16")
    sf.write(cv / "mix" / name, other, rate, subtype="PCM_16")
    with pytest.raises(DataError, match=re.escape(f"{cv / 's1' / name}: the source is silent")):
        prepare("wsj0-2mix", root, tmp_path)


def test_content_checks_cover_every_file_at_the_file_rate_with_check_sample_0(wsj0, tmp_path):
    """No resampling reads a sample only; check_sample: 0 reads every mixture."""
    root, cv = wsj0
    path = sorted((cv / "mix").iterdir())[1]
    wav, rate = sf.read(path)
    sf.write(path, wav * 1.05, rate, subtype="PCM_16")
    prepare("wsj0-2mix", root, tmp_path, sample_rate=16000, check_sample=1)  # not the one read
    shutil.rmtree(tmp_path / "prepared")
    with pytest.raises(DataError, match="not the sum"):
        prepare("wsj0-2mix", root, tmp_path, sample_rate=16000, check_sample=0)
