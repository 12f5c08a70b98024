"""A corpus in the generic layout ``<root>/<split>/{mix,s1,s2[,s3]}/<name>.wav``.

The embedded corpus and every prepared real corpus are in this layout, with a table
``<root>/<split>.csv`` beside each split (columns ``mixture_id``, ``length`` in samples and
``s<c>_speaker``) that :func:`split_table` reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from torch.utils.data import Dataset

from sfsrnet.audio import read_wav
from sfsrnet.errors import DataError


def split_table(root: str | Path, split: str, names: list[str], n_src: int) -> pd.DataFrame:
    """Length (samples) and speakers of each mixture of a split, indexed by file stem.

    From ``<root>/<split>.csv`` when it has them; lengths otherwise from the file headers and
    speakers unknown (each source its own speaker).
    """
    stems = [Path(n).stem for n in names]
    path = Path(root) / f"{split}.csv"
    speakers = [f"s{c + 1}_speaker" for c in range(n_src)]
    if path.is_file():
        table = pd.read_csv(path, dtype={"mixture_id": str, **dict.fromkeys(speakers, str)})
        if {"mixture_id", "length", *speakers} <= set(table.columns):
            table = table.set_index("mixture_id")
            if set(stems) <= set(table.index):
                return table.loc[stems, ["length", *speakers]]
    folder = Path(root) / split
    table = pd.DataFrame(
        {
            "length": [sf.info(str(folder / "mix" / n)).frames for n in names],
            **{s: [f"?{stem}/{s[:2]}" for stem in stems] for s in speakers},
        },
        index=pd.Index(stems, name="mixture_id"),
    )
    return table


class SeparationFolder(Dataset):
    """Mixtures and their sources from one split of a generic-layout corpus.

    Items are ``(mix, ref, name)`` with ``mix`` ``(time,)`` and ``ref`` ``(n_src, time)``. With
    ``segment`` (seconds) longer items are cropped (randomly when ``random_crop``), shorter ones
    keep their length (:func:`sfsrnet.data.loaders.pad_collate` pads a batch and keeps the
    lengths, so that the loss ignores the padding); without it items keep their full length, as
    evaluation needs.

    Args:
        root: corpus folder. split: sub-folder name. n_src: number of sources to read.
        sample_rate: expected rate of every file; another rate is an error.
        min_length: leave out mixtures shorter than this (seconds).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        n_src: int,
        sample_rate: int,
        segment: float | None = None,
        random_crop: bool = False,
        limit: int | None = None,
        min_length: float | None = None,
    ) -> None:
        self.root = Path(root)
        self.folder = self.root / split
        self.n_src = n_src
        self.sample_rate = sample_rate
        self.random_crop = random_crop
        self.segment = None if segment is None else round(segment * sample_rate)
        mix_dir = self.folder / "mix"
        if not mix_dir.is_dir():
            raise DataError(f"corpus split folder {mix_dir} does not exist")
        names = sorted(p.name for p in mix_dir.glob("*.wav"))
        if not names:
            raise DataError(f"corpus split folder {mix_dir} holds no .wav files")
        for c in range(1, n_src + 1):
            src_dir = self.folder / f"s{c}"
            if not src_dir.is_dir():
                raise DataError(
                    f"{src_dir} does not exist: the corpus has fewer than n_src={n_src} sources"
                )
            missing = [n for n in names if not (src_dir / n).is_file()]
            if missing:
                raise DataError(f"{src_dir / missing[0]} is missing ({len(missing)} files missing)")
        if min_length:
            lengths = split_table(self.root, split, names, n_src)["length"].to_numpy()
            keep = lengths >= round(min_length * sample_rate)
            if not keep.any():
                raise DataError(
                    f"every mixture of {mix_dir} is shorter than data.min_train_length "
                    f"({min_length} s)"
                )
            names = [n for n, k in zip(names, keep, strict=True) if k]
        self.names = names[:limit] if limit else names

    def __len__(self) -> int:
        return len(self.names)

    def _read(self, sub: str, name: str) -> np.ndarray:
        return read_wav(self.folder / sub / name, self.sample_rate)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        name = self.names[index]
        mix = self._read("mix", name)
        ref = np.stack([self._read(f"s{c}", name) for c in range(1, self.n_src + 1)])
        if ref.shape[1] != mix.shape[0]:
            raise DataError(
                f"{self.folder}/*/{name}: sources have {ref.shape[1]} samples, "
                f"the mixture {mix.shape[0]}"
            )
        if self.segment is not None and mix.shape[0] > self.segment:
            start = 0
            if self.random_crop:
                start = int(np.random.randint(mix.shape[0] - self.segment + 1))
            mix = mix[start : start + self.segment]
            ref = ref[:, start : start + self.segment]
        return torch.from_numpy(mix), torch.from_numpy(ref), Path(name).stem
