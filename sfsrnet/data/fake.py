"""Small stand-ins of the real corpora, written in their exact layouts, for tests and benchmarks.

:func:`write_fake_corpus` writes wsj0-2mix / wsj0-3mix, Libri2Mix / Libri3Mix (with their
metadata CSVs and absolute paths, as LibriMix's generator writes them), WHAM! or a generic folder
under ``root``, from harmonic "voices" with a syllable-like envelope: one pitch per speaker,
disjoint speakers per split, 16-bit PCM files at 16 kHz and 8 kHz, ``min`` mode (mixtures end
with the shorter source) or ``max``. No audio of any real corpus is involved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch

from sfsrnet.audio import resample

KINDS = ("folder", "wsj0-2mix", "wsj0-3mix", "libri2mix", "libri3mix", "wham")
_SUBSETS = {
    "wsj0": {"tr": "train", "cv": "valid", "tt": "test"},
    "libri": {"train-100": "train", "train-360": "train", "dev": "valid", "test": "test"},
}


def _voice(rng: np.random.Generator, f0: float, length: int, rate: int) -> np.ndarray:
    """A voiced signal: harmonics of a wavering ``f0`` under a random syllable envelope."""
    t = np.arange(length) / rate
    pitch = f0 * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 5) * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    wav = sum(np.sin(k * phase) / k for k in range(1, min(16, int(rate / 2 / f0 * 0.9))))
    syllables = np.abs(np.sin(np.pi * rng.uniform(3, 6) * t + rng.uniform(0, 3)))
    wav = wav * syllables + 0.01 * rng.standard_normal(length)
    return wav / (np.abs(wav).max() + 1e-9)


def _write(path: Path, wav: np.ndarray, rate: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav, rate, subtype="PCM_16")
    return str(path.resolve())


def write_fake_corpus(
    kind: str,
    root: str | Path,
    n_mixtures: tuple[int, int, int] = (6, 3, 3),
    seconds: tuple[float, float] = (0.6, 1.2),
    modes: tuple[str, ...] = ("min",),
    n_speakers: int = 4,
    seed: int = 0,
) -> Path:
    """Write a fake ``kind`` corpus under ``root`` (the folder ``data.root`` names); returns it.

    ``n_mixtures`` per train, valid and test split (LibriMix: per subset, train-100 and
    train-360 alike), utterances of ``seconds`` (min, max) long, ``n_speakers`` per split.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown fake corpus {kind!r}; one of {KINDS}")
    root = Path(root)
    n_src = 3 if kind.endswith("3mix") else 2
    family = "libri" if kind.startswith("libri") else "folder" if kind == "folder" else "wsj0"
    subsets = _SUBSETS.get(family, {s: s for s in ("train", "valid", "test")})
    rng = np.random.default_rng(seed)
    counts = dict(zip(("train", "valid", "test"), n_mixtures, strict=True))
    for s_index, (subset, split) in enumerate(subsets.items()):
        speakers = [f"{100 + 10 * s_index + k}" for k in range(n_speakers)]
        pitch = {spk: rng.uniform(90, 260) for spk in speakers}
        tables: dict[tuple[str, str], list[dict]] = {}
        for m in range(counts[split]):
            chosen = rng.choice(speakers, size=n_src, replace=False)
            lengths = rng.integers(int(seconds[0] * 16000), int(seconds[1] * 16000), size=n_src)
            voices = [_voice(rng, pitch[s], n, 16000) for s, n in zip(chosen, lengths, strict=True)]
            snr = rng.uniform(0, 2.5, size=n_src)
            snr -= snr.mean()
            utts = [f"{spk}c{m:02d}{chr(97 + c)}{s_index}" for c, spk in enumerate(chosen)]
            if family == "wsj0":
                name = "_".join(f"{u}_{g:.4f}" for u, g in zip(utts, snr, strict=True))
            elif family == "libri":
                name = "_".join(f"{spk}-{7 + s_index}-{m:04d}" for spk in chosen)
            else:
                name = f"{split}{m:03d}"
            noise = 0.05 * rng.standard_normal(int(lengths.max()))
            for mode in modes:
                n = int(lengths.min() if mode == "min" else lengths.max())
                src = np.zeros((n_src, n))
                for c, v in enumerate(voices):
                    src[c, : min(n, len(v))] = v[:n] * 10 ** (snr[c] / 20)
                src *= 0.25
                for rate in (16000, 8000):
                    sources = resample(torch.from_numpy(src), 16000, rate).numpy()
                    noise_r = resample(torch.from_numpy(noise[:n]), 16000, rate).numpy()
                    _write_mixture(
                        family, kind, root, rate, mode, subset, name, sources, noise_r, tables
                    )
        for (csv_path, _), rows in tables.items():
            pd.DataFrame(rows).to_csv(csv_path, index=False)
    return root


def _write_mixture(
    family: str,
    kind: str,
    root: Path,
    rate: int,
    mode: str,
    subset: str,
    name: str,
    sources: np.ndarray,
    noise: np.ndarray,
    tables: dict,
) -> None:
    n_src = len(sources)
    rate_dir = f"wav{rate // 1000}k"
    file = f"{name}.wav"
    if family == "folder":
        if rate != 16000 or mode != "min":
            return  # a generic folder holds one version only
        base = root / subset
        _write(base / "mix" / file, sources.sum(0), rate)
        for c, s in enumerate(sources):
            _write(base / f"s{c + 1}" / file, s, rate)
        return
    if kind == "wham":
        base = root / rate_dir / mode / subset
        mix_dirs = {"mix_clean": sources.sum(0), "mix_both": sources.sum(0) + noise}
    elif family == "wsj0":
        base = root / f"{n_src}speakers" / rate_dir / mode / subset
        mix_dirs = {"mix": sources.sum(0)}
    else:
        base = root / f"Libri{n_src}Mix" / rate_dir / mode / subset
        mix_dirs = {"mix_clean": sources.sum(0), "mix_both": sources.sum(0) + noise}
    paths = [_write(base / f"s{c + 1}" / file, s, rate) for c, s in enumerate(sources)]
    if "mix" in mix_dirs:
        _write(base / "mix" / file, mix_dirs["mix"], rate)
        return
    noise_path = _write(base / "noise" / file, noise, rate)
    for sub, mix in mix_dirs.items():
        mix_path = _write(base / sub / file, mix, rate)
        if family != "libri":
            continue
        csv = base.parent / "metadata" / f"mixture_{subset}_{sub}.csv"
        csv.parent.mkdir(parents=True, exist_ok=True)
        row = {"mixture_ID": name, "mixture_path": mix_path}
        row |= {f"source_{c + 1}_path": p for c, p in enumerate(paths)}
        if sub == "mix_both":
            row["noise_path"] = noise_path
        row["length"] = len(mix)
        tables.setdefault((csv, sub), []).append(row)
