"""The embedded default corpus: two- (or three-) speaker mixtures of synthetic speech.

Made on first use with no download. Utterances of the Harvard sentences are synthesised by the
engines of ``data.embedded.engines`` (eSpeak NG by default, which comes with the package; flite
and festival when asked for, and then required), resampled once to the corpus rate with
:func:`sfsrnet.audio.resample`, and mixed at random relative gains. Train, valid and test use
disjoint voices and disjoint sentence lists. Everything that shapes the audio is in
:class:`~sfsrnet.data.identity.CorpusSpec`, whose key names the folder and is written into
``manifest.json``; the same spec always gives the same corpus, on any machine.

Layout (the generic ``mix/ s1/ s2/`` layout that real-corpus loaders read as well)::

    root/manifest.json
    root/<split>.csv                       one row per mixture: speakers, sentences, gains
    root/<split>/{mix,s1,s2[,s3]}/<id>.wav 32-bit float, mixture = exact sum of the sources
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from sfsrnet.audio import resample, write_wav
from sfsrnet.data import tts
from sfsrnet.data.build import build_once, run_fresh
from sfsrnet.data.identity import (  # noqa: F401  (CorpusSpec and MANIFEST are used from here)
    GENERATOR_VERSION,
    MANIFEST,
    CorpusSpec,
    read_manifest,
)
from sfsrnet.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class _Utterance:
    uid: str
    voice: tts.Voice
    text: str


@dataclass
class _Plan:
    """What each split is made of: speakers, sentences and the utterances to synthesise."""

    speakers: dict[str, list[str]] = field(default_factory=dict)
    sentences: dict[str, list[str]] = field(default_factory=dict)
    utterances: dict[str, list[_Utterance]] = field(default_factory=dict)


def harvard_lists() -> list[list[str]]:
    """The 72 Harvard sentence lists shipped with the package, in order."""
    text = resources.files("sfsrnet.data").joinpath("texts/harvard.txt").read_text("utf-8")
    lists: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("## List"):
            lists.append([])
        elif line and not line.startswith("#"):
            lists[-1].append(line)
    return lists


def _split_items(items: list, fractions: tuple[float, ...], rng: np.random.Generator) -> list[list]:
    """Shuffle ``items`` and cut them into consecutive parts of the given fractions (each >= 1)."""
    order = [items[i] for i in rng.permutation(len(items))]
    counts = [max(1, round(f * len(order))) for f in fractions[1:]]
    first = len(order) - sum(counts)
    if first < 1:
        raise ConfigError(f"cannot split {len(items)} items into {len(fractions)} non-empty parts")
    bounds = np.cumsum([first, *counts])
    return [order[a:b] for a, b in zip([0, *bounds[:-1]], bounds, strict=True)]


def _plan(spec: CorpusSpec, engines: list[str]) -> _Plan:
    rng = np.random.default_rng(spec.seed)
    plan = _Plan()
    list_parts = _split_items(harvard_lists(), spec.split_fractions, rng)
    # Split talkers, not voice names: every voice of one talker lands in the same split. eSpeak's
    # talkers and the recorded (CMU) ones are split apart so each split gets some of both.
    talkers: dict[str, list[tuple[str, str]]] = {}
    for engine in engines:
        for name in tts.base_voices(engine):
            talkers.setdefault(tts.speaker_identity(engine, name), []).append((engine, name))
    split_voices: dict[str, list[tuple[str, str]]] = {split: [] for split in SPLITS}
    for family in ("espeak:", "cmu:"):
        ids = sorted(t for t in talkers if t.startswith(family))
        if len(ids) >= len(SPLITS):
            parts = _split_items(ids, spec.split_fractions, rng)
        else:
            parts = [ids, [], []]  # too few talkers to share: they add variety to training only
        for split, part in zip(SPLITS, parts, strict=True):
            split_voices[split] += [voice for talker in part for voice in talkers[talker]]
    for split, lists in zip(SPLITS, list_parts, strict=True):
        sentences = [s for sentence_list in lists for s in sentence_list]
        # Draw a family (eSpeak or recorded), then a talker, then one of its voices, so that
        # neither the many eSpeak variants nor one slow engine dominates the corpus.
        families: dict[str, dict[str, list[tuple[str, str]]]] = {}
        for engine, name in split_voices[split]:
            talker = tts.speaker_identity(engine, name)
            families.setdefault(talker.split(":")[0], {}).setdefault(talker, []).append(
                (engine, name)
            )
        n_talkers = sum(len(t) for t in families.values())
        if n_talkers < spec.n_src:
            raise DataError(
                f"split {split} has {n_talkers} talkers, fewer than data.n_src={spec.n_src} "
                f"(data.embedded.engines {list(engines)}): add flite and festival to "
                "data.embedded.engines (apt-get install flite festival) or lower data.n_src"
            )
        n_utt = max(
            4 * spec.n_src,
            int(np.ceil(spec.n_mixtures(split) * spec.n_src / spec.utterance_reuse)),
        )
        family_names = sorted(families)
        utterances = []
        for i in range(n_utt):
            family = families[family_names[rng.integers(len(family_names))]]
            talker = sorted(family)[rng.integers(len(family))]
            engine, name = family[talker][rng.integers(len(family[talker]))]
            voice = tts.Voice(
                engine=engine,
                name=name,
                pitch=int(rng.integers(-spec.pitch_jitter, spec.pitch_jitter + 1)),
                rate=int(rng.integers(-spec.rate_jitter, spec.rate_jitter + 1)),
            )
            text = sentences[rng.integers(len(sentences))]
            utterances.append(_Utterance(f"{split}-{i:05d}", voice, text))
        plan.speakers[split] = sorted(f"{e}:{n}" for e, n in split_voices[split])
        plan.sentences[split] = sentences
        plan.utterances[split] = utterances
    return plan


def _synthesise(utterances: list[_Utterance], spec: CorpusSpec, jobs: int) -> list[np.ndarray]:
    """Synthesise in shards, each in a fresh process (eSpeak keeps state between calls, so a
    shard's audio would otherwise depend on the shards before it), then resample in this one.

    Returns one ``(time,)`` float32 waveform per utterance at ``spec.sample_rate``.
    """
    requests = [(u.voice, u.text) for u in utterances]
    shards = [requests[i : i + spec.shard_size] for i in range(0, len(requests), spec.shard_size)]
    results = run_fresh(
        "sfsrnet.data.tts:synthesize_all",
        [(shard,) for shard in shards],
        jobs,
        "speech synthesis of the embedded corpus",
    )
    waves = []
    for wav, rate in (item for shard in results for item in shard):
        wav = resample(torch.from_numpy(np.ascontiguousarray(wav)), rate, spec.sample_rate)
        waves.append(wav.numpy().astype(np.float32))
    return waves


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12)


def _mix_split(
    split: str,
    spec: CorpusSpec,
    utterances: list[_Utterance],
    waves: list[np.ndarray],
    out: Path,
    rng: np.random.Generator,
) -> pd.DataFrame:
    length = round(spec.segment * spec.sample_rate)
    speaker_of = [tts.speaker_identity(u.voice.engine, u.voice.name) for u in utterances]
    rows = []
    for m in range(spec.n_mixtures(split)):
        chosen: list[int] = []
        while len(chosen) < spec.n_src:
            j = int(rng.integers(len(utterances)))
            if all(speaker_of[j] != speaker_of[k] for k in chosen):
                chosen.append(j)
        gains = rng.uniform(-spec.gain_db, spec.gain_db, size=spec.n_src)
        gains -= gains.mean()
        sources = np.zeros((spec.n_src, length), dtype=np.float64)
        offsets = []
        for c, (j, gain) in enumerate(zip(chosen, gains, strict=True)):
            wav = waves[j]
            if len(wav) >= length:
                start = int(rng.integers(len(wav) - length + 1))
                piece, offset = wav[start : start + length], -start
            else:
                offset = int(rng.integers(length - len(wav) + 1))
                piece = np.zeros(length, dtype=np.float32)
                piece[offset : offset + len(wav)] = wav
            sources[c] = piece / _rms(piece) * 10 ** (gain / 20)
            offsets.append(offset)
        mix = sources.sum(axis=0)
        scale = 0.9 / max(np.abs(mix).max(), np.abs(sources).max())
        sources = (sources * scale).astype(np.float32)
        mix = sources.sum(axis=0, dtype=np.float32)
        mid = f"{split}{m:05d}"
        write_wav(out / split / "mix" / f"{mid}.wav", mix, spec.sample_rate)
        for c in range(spec.n_src):
            write_wav(out / split / f"s{c + 1}" / f"{mid}.wav", sources[c], spec.sample_rate)
        row: dict[str, Any] = {"mixture_id": mid, "length": length}
        for c, j in enumerate(chosen):
            utt = utterances[j]
            row |= {
                f"s{c + 1}_speaker": speaker_of[j],
                f"s{c + 1}_voice": utt.voice.name,
                f"s{c + 1}_engine": utt.voice.engine,
                f"s{c + 1}_pitch": utt.voice.pitch,
                f"s{c + 1}_rate": utt.voice.rate,
                f"s{c + 1}_text": utt.text,
                f"s{c + 1}_gain_db": round(float(gains[c]), 4),
                f"s{c + 1}_offset": offsets[c],
            }
        rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(out / f"{split}.csv", index=False)
    return table


def make_corpus(spec: CorpusSpec, root: str | Path, jobs: int = 1) -> dict[str, Any]:
    """Build the corpus at ``root`` unless a finished one with the same spec is already there.

    Every engine of ``spec.engines`` must be installed (a :class:`ConfigError` otherwise: a
    corpus is never made with fewer engines than its key says). Safe to call from several
    processes at once (:func:`sfsrnet.data.build.build_once`). Returns the manifest.
    """
    missing = [e for e in spec.engines if e != "espeak" and e not in tts.available_engines()]
    if missing:
        raise ConfigError(
            f"data.embedded.engines asks for {', '.join(missing)}, not installed here "
            "(on Debian/Ubuntu: apt-get install flite festival)"
        )

    def build(tmp: Path) -> dict[str, Any]:
        start = time.monotonic()
        plan = _plan(spec, list(spec.engines))
        rng = np.random.default_rng([spec.seed, 1])
        for split in SPLITS:
            waves = _synthesise(plan.utterances[split], spec, jobs)
            _mix_split(split, spec, plan.utterances[split], waves, tmp, rng)
            log.info("split %s: %d mixtures", split, spec.n_mixtures(split))
        return {
            "corpus": "embedded",
            "generator_version": GENERATOR_VERSION,
            "spec": spec.as_dict(),
            "engines": list(spec.engines),
            "speakers": plan.speakers,
            "n_sentences": {s: len(plan.sentences[s]) for s in SPLITS},
            "seconds_to_build": round(time.monotonic() - start, 1),
        }

    return build_once(root, spec.key(), build, "an embedded corpus made")
