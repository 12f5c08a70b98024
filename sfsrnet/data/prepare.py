"""Checking a real corpus and preparing it at the study's sample rate, once, before training.

:func:`prepare_corpus` reads a corpus where it lies (:mod:`sfsrnet.data.corpora`), checks it
(:func:`check_entries`) and writes the *prepared corpus* that training and evaluation read, in
the generic layout::

    prepared/manifest.json                       settings, key, counts, source
    prepared/<split>.csv                         mixture_id, length, s<c>_speaker, source_mix
    prepared/<split>/{mix,s1,s2[,s3]}/<id>.wav   resampled 32-bit float, or links to the originals

Lower rates are derived from the 16 kHz files with :func:`sfsrnet.audio.resample`, the one
resampler of the harness; the mixture and its sources are resampled alike (the resampler is
linear, so a mixture stays the sum of its sources). At the files' own rate the audio is linked,
not copied.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
import torch

from sfsrnet.audio import resample, write_wav
from sfsrnet.data.build import build_once, run_fresh
from sfsrnet.data.corpora import SPLITS, CorpusSource, Entry
from sfsrnet.data.identity import prepared_key, read_manifest  # noqa: F401  (read_manifest: API)
from sfsrnet.errors import DataError

log = logging.getLogger(__name__)

# Below this many mixtures a split is resampled in this process: starting processes costs more.
_MIN_PARALLEL = 1000
_MIN_CHUNK = 16
# Problems listed in one error message; the rest are counted.
_SHOWN = 8
# Quantisation step of each integer sample format (full scale = 1).
_STEP = {"PCM_S8": 2**-7, "PCM_U8": 2**-7, "PCM_16": 2**-15, "PCM_24": 2**-23, "PCM_32": 2**-31}


@dataclass
class Checked:
    """Header facts of one entry that passed the header checks."""

    entry: Entry
    rate: int
    length: int
    step: float


def _header(path: Path, role: str, entry: Entry, problems: list[str]) -> Any:
    if " row " in entry.origin:  # listed by a metadata file: name its row
        where = f" ({role}, {entry.origin})"
    else:
        where = "" if role == "mixture" else f" ({role} of the mixture {entry.mix})"
    if not path.is_file():
        problems.append(f"{path}: missing{where}")
        return None
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises several types for broken files
        problems.append(f"{path}: unreadable ({err})")
        return None
    if info.channels != 1:
        problems.append(f"{path}: {info.channels} channels; mono is required")
        return None
    if info.frames == 0:
        problems.append(f"{path}: empty (0 samples)")
        return None
    return info


def check_headers(entries: list[Entry], rate: int | None, problems: list[str]) -> list[Checked]:
    """Header checks of every file of every entry (exists, readable, mono, not empty, the
    expected ``rate`` (None: any one rate), sources as long as their mixture).

    Appends one message per problem, naming the file, to ``problems``; returns the entries that
    passed.
    """
    checked = []
    for entry in entries:
        infos = [_header(entry.mix, "mixture", entry, problems)]
        infos += [
            _header(p, f"source {c + 1}", entry, problems) for c, p in enumerate(entry.sources)
        ]
        if any(i is None for i in infos):
            continue
        mix_info = infos[0]
        want = rate or mix_info.samplerate
        bad_rate = [
            (p, i)
            for p, i in zip([entry.mix, *entry.sources], infos, strict=True)
            if i.samplerate != want
        ]
        for path, info in bad_rate:
            problems.append(f"{path}: {info.samplerate} Hz; {want} Hz was expected")
        bad_length = [
            (p, i)
            for p, i in zip(entry.sources, infos[1:], strict=True)
            if i.frames != mix_info.frames
        ]
        for path, info in bad_length:
            problems.append(
                f"{path}: {info.frames} samples, but its mixture {entry.mix} has {mix_info.frames}"
            )
        if bad_rate or bad_length:
            continue
        step = max(_STEP.get(i.subtype, 0.0) for i in infos)
        checked.append(Checked(entry, mix_info.samplerate, mix_info.frames, step))
    return checked


def check_audio(
    item: Checked, mix: np.ndarray, ref: np.ndarray, clean: bool, tolerance: float
) -> list[str]:
    """Content checks of one read entry: finite samples, no all-zero source and, for ``clean``
    tasks, mixture = sum of sources within ``tolerance`` (relative RMS) plus quantisation.

    ``mix`` is ``(time,)`` and ``ref`` ``(n_src, time)``. Returns the problems found.
    """
    entry = item.entry
    problems = []
    for path, wav in zip([entry.mix, *entry.sources], [mix, *ref], strict=True):
        if not np.isfinite(wav).all():
            problems.append(f"{path}: contains NaN or infinite samples")
    if problems:
        return problems
    for path, wav in zip(entry.sources, ref, strict=True):
        if not np.any(wav):
            problems.append(f"{path}: the source is silent (every sample is zero)")
    if clean:
        err = np.sqrt(np.mean((mix.astype(np.float64) - ref.sum(0, dtype=np.float64)) ** 2))
        level = np.sqrt(np.mean(mix.astype(np.float64) ** 2))
        allowed = tolerance * level + (len(ref) + 1) * item.step + 1e-7 * level
        if err > allowed:
            problems.append(
                f"{entry.mix}: not the sum of its sources (RMS difference {err:.3g} is "
                f"{err / max(level, 1e-12):.3g} of the mixture's RMS; data.sum_tolerance is "
                f"{tolerance:g})"
            )
    return problems


def _read(item: Checked) -> tuple[np.ndarray, np.ndarray]:
    mix, _ = sf.read(str(item.entry.mix), dtype="float32")
    ref = np.stack([sf.read(str(p), dtype="float32")[0] for p in item.entry.sources])
    return mix, ref


def _derive(
    items: list[Checked], out: str, sample_rate: int, clean: bool, tolerance: float
) -> tuple[list[str], list[int]]:
    """Read, check and resample a chunk of entries into ``out`` (runs in a worker process)."""
    torch.set_num_threads(1)
    problems, lengths = [], []
    for item in items:
        mix, ref = _read(item)
        found = check_audio(item, mix, ref, clean, tolerance)
        problems += found
        if found:
            lengths.append(0)
            continue
        both = resample(torch.from_numpy(np.concatenate([mix[None], ref])), item.rate, sample_rate)
        name = f"{item.entry.name}.wav"
        write_wav(Path(out) / "mix" / name, both[0], sample_rate)
        for c in range(1, both.shape[0]):
            write_wav(Path(out) / f"s{c}" / name, both[c], sample_rate)
        lengths.append(int(both.shape[-1]))
    return problems, lengths


def _link(item: Checked, out: Path) -> None:
    name = f"{item.entry.name}.wav"
    for sub, path in [("mix", item.entry.mix)] + [
        (f"s{c + 1}", p) for c, p in enumerate(item.entry.sources)
    ]:
        (out / sub).mkdir(parents=True, exist_ok=True)
        os.symlink(path.resolve(), out / sub / name)


def _raise(problems: list[str], what: str) -> None:
    if not problems:
        return
    shown = "; ".join(problems[:_SHOWN])
    more = f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
    raise DataError(f"{what}: {len(problems)} problem(s) found: {shown}{more}")


def check_corpus(data: dict[str, Any]) -> dict[str, list[Checked]]:
    """Header checks of every file of every split of the corpus a validated ``data`` section
    names; raises one :class:`DataError` listing the problems (each naming its file).

    Returns the checked entries per split.
    """
    source = CorpusSource.from_data(data)
    problems: list[str] = []
    checked = {}
    for split in SPLITS:
        entries = source.entries(split)
        checked[split] = check_headers(entries, source.file_rate, problems)
    _raise(problems, f"{data['corpus']} corpus at {source.root}")
    if source.file_rate is None:  # a generic folder: one rate across the corpus
        rates = {i.rate for items in checked.values() for i in items}
        if len(rates) > 1:
            raise DataError(
                f"folder corpus at {source.root}: files at several sample rates {sorted(rates)}"
            )
    return checked


def prepare_corpus(data: dict[str, Any], out: str | Path, jobs: int = 1) -> dict[str, Any]:
    """Check a real corpus and write its prepared form at ``data.sample_rate`` to ``out``.

    ``data`` is a validated config's ``data`` section. Nothing is redone when ``out`` already
    holds the corpus prepared with the same settings. Safe to call from several processes
    (:func:`sfsrnet.data.build.build_once`). Problems in the corpus raise one
    :class:`DataError` naming each file and what is wrong, before anything is written. Returns
    the manifest.
    """
    key = prepared_key(data)

    def build(tmp: Path) -> dict[str, Any]:
        start = time.monotonic()
        source = CorpusSource.from_data(data)
        checked = check_corpus(data)
        rate = next(i.rate for items in checked.values() for i in items)
        sample_rate = data["sample_rate"]
        if rate < sample_rate:
            raise DataError(
                f"{data['corpus']} corpus at {source.root}: its files are at {rate} Hz, below "
                f"data.sample_rate {sample_rate}; the harness does not upsample a corpus"
            )
        clean = data["task"] == "clean"
        counts = {}
        for split in SPLITS:
            items = checked[split]
            if rate != sample_rate:
                problems, lengths = _derive_all(items, tmp / split, sample_rate, data, jobs)
            else:
                problems = _sample_checks(items, data["check_sample"], clean, data)
                lengths = [i.length for i in items]
                if not problems:
                    for item in items:
                        _link(item, tmp / split)
            _raise(problems, f"{data['corpus']} corpus at {source.root}, split {split}")
            table = pd.DataFrame(
                {
                    "mixture_id": [i.entry.name for i in items],
                    "length": lengths,
                    **{
                        f"s{c + 1}_speaker": [i.entry.speakers[c] for i in items]
                        for c in range(data["n_src"])
                    },
                    "source_mix": [str(i.entry.mix) for i in items],
                }
            )
            table.to_csv(tmp / f"{split}.csv", index=False)
            counts[split] = len(items)
            log.info("%s: %d mixtures prepared", split, len(items))
        return {
            "corpus": data["corpus"],
            "source_root": str(source.root),
            "source_rate": rate,
            "sample_rate": sample_rate,
            "n_src": data["n_src"],
            "resampled": rate != sample_rate,
            "data": {k: data[k] for k in data if k not in ("embedded", "prepared")},
            "n_mixtures": counts,
            "seconds_to_build": round(time.monotonic() - start, 1),
        }

    return build_once(out, key, build, f"the {data['corpus']} corpus prepared")


def _sample_checks(items: list[Checked], n: int, clean: bool, data: dict[str, Any]) -> list[str]:
    """Content checks of ``n`` evenly spaced entries (all when ``n`` is 0 or larger)."""
    picks = (
        items
        if n == 0 or n >= len(items)
        else [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]
    )
    problems = []
    for item in picks:
        mix, ref = _read(item)
        problems += check_audio(item, mix, ref, clean, data["sum_tolerance"])
    return problems


def _derive_all(
    items: list[Checked], out: Path, sample_rate: int, data: dict[str, Any], jobs: int
) -> tuple[list[str], list[int]]:
    args = (str(out), sample_rate, data["task"] == "clean", data["sum_tolerance"])
    if jobs <= 1 or len(items) < _MIN_PARALLEL:
        return _derive(items, *args)
    size = max(_MIN_CHUNK, len(items) // (8 * jobs))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    problems: list[str] = []
    lengths: list[int] = []
    # Fresh processes: torch and its threads do not survive a fork well, and a spawn pool would
    # re-import the caller's __main__.
    calls = [(chunk, *args) for chunk in chunks]
    for found, chunk_lengths in run_fresh(
        "sfsrnet.data.prepare:_derive", calls, jobs, "resampling"
    ):
        problems += found
        lengths += chunk_lengths
    return problems, lengths
