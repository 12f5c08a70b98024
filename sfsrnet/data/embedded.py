"""The embedded default corpus: two- (or three-) speaker mixtures of synthetic speech.

Made on first use with no download. Utterances of the Harvard sentences are synthesised by
eSpeak NG (always) and by flite / festival when they are installed, resampled once to the corpus
rate with :func:`sfsrnet.audio.resample`, and mixed at random relative gains. Train, valid and
test use disjoint voices and disjoint sentence lists. Everything that shapes the audio is in
:class:`CorpusSpec` and in ``manifest.json``; the same spec always gives the same corpus.

Layout (the generic ``mix/ s1/ s2/`` layout that real-corpus loaders read as well)::

    root/manifest.json
    root/<split>.csv                       one row per mixture: speakers, sentences, gains
    root/<split>/{mix,s1,s2[,s3]}/<id>.wav 32-bit float, mixture = exact sum of the sources
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from filelock import FileLock

from sfsrnet.audio import resample, write_wav
from sfsrnet.config import validate
from sfsrnet.data import tts
from sfsrnet.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
MANIFEST = "manifest.json"
# Bump when the generation code changes what a spec produces, so old caches are not reused.
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class CorpusSpec:
    """Every parameter that shapes the embedded corpus: ``data.sample_rate``, ``data.n_src`` and
    the section ``data.embedded``.

    The schema (``sfsrnet/schemas/config.schema.yaml``) holds the defaults, ranges and meaning of
    each field; build a spec with :meth:`from_config`, which validates against it.
    """

    sample_rate: int
    n_src: int
    segment: float
    n_train: int
    n_valid: int
    n_test: int
    gain_db: float
    pitch_jitter: int
    rate_jitter: int
    engines: tuple[str, ...]
    seed: int
    split_fractions: tuple[float, float, float]
    utterance_reuse: float
    shard_size: int

    @classmethod
    def from_config(cls, data: dict[str, Any] | None = None) -> CorpusSpec:
        """Validate a config's ``data`` mapping (defaults filled in) and build the spec."""
        section = validate({"data": dict(data or {})})["data"]
        values = dict(
            section["embedded"], sample_rate=section["sample_rate"], n_src=section["n_src"]
        )
        if abs(sum(values["split_fractions"]) - 1) > 1e-6:
            raise ConfigError("data.embedded.split_fractions must sum to 1")
        values["engines"] = tuple(values["engines"])
        values["split_fractions"] = tuple(values["split_fractions"])
        return cls(**values)

    def n_mixtures(self, split: str) -> int:
        return int(getattr(self, f"n_{split}"))

    def as_dict(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    def key(self) -> str:
        """Short hash of the spec and the generator version: the corpus's cache key."""
        blob = json.dumps({"spec": self.as_dict(), "generator": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


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
                f"split {split} has {n_talkers} talkers, fewer than n_src={spec.n_src}; "
                "install flite/festival or lower data.n_src"
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
    shard's audio would otherwise depend on the shards before it), then resample in this one."""
    requests = [(u.voice, u.text) for u in utterances]
    shards = [requests[i : i + spec.shard_size] for i in range(0, len(requests), spec.shard_size)]
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, max_tasks_per_child=1
    ) as pool:
        results = [item for shard in pool.map(tts.synthesize_all, shards) for item in shard]
    waves = []
    for wav, rate in results:
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


def read_manifest(root: str | Path) -> dict[str, Any] | None:
    """The manifest of a finished corpus at ``root``, or ``None`` when there is none."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def make_corpus(spec: CorpusSpec, root: str | Path, jobs: int = 1) -> dict[str, Any]:
    """Build the corpus at ``root`` unless a finished one with the same spec is already there.

    Safe to call from several processes at once: one builds (under a file lock, into a temporary
    folder renamed into place when complete), the others wait and reuse it. Returns the manifest.
    """
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        existing = read_manifest(root)
        if existing is not None:
            if existing.get("key") != spec.key():
                raise DataError(
                    f"{root} holds a corpus with another spec (key {existing.get('key')}, "
                    f"wanted {spec.key()}); remove it or choose another folder"
                )
            log.info("corpus %s is up to date", root)
            return existing
        start = time.monotonic()
        engines = [e for e in spec.engines if e in tts.available_engines()]
        missing = sorted(set(spec.engines) - set(engines))
        if missing:
            log.warning(
                "speech engine(s) %s not installed: the corpus is built without them "
                "(on Debian: apt-get install flite festival)",
                ", ".join(missing),
            )
        if not engines:
            raise DataError(f"none of the speech engines {list(spec.engines)} is available")
        plan = _plan(spec, engines)
        tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        rng = np.random.default_rng([spec.seed, 1])
        for split in SPLITS:
            waves = _synthesise(plan.utterances[split], spec, jobs)
            _mix_split(split, spec, plan.utterances[split], waves, tmp, rng)
            log.info("split %s: %d mixtures", split, spec.n_mixtures(split))
        manifest = {
            "corpus": "embedded",
            "key": spec.key(),
            "generator_version": GENERATOR_VERSION,
            "spec": spec.as_dict(),
            "engines": engines,
            "engines_missing": missing,
            "speakers": plan.speakers,
            "n_sentences": {s: len(plan.sentences[s]) for s in SPLITS},
            "seconds_to_build": round(time.monotonic() - start, 1),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
        return manifest
