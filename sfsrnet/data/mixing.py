"""Dynamic mixing: new training mixtures every epoch, drawn from the training split's sources.

Every source file (``s1 .. s<n_src>`` of every training mixture) joins one pool with its speaker.
Item ``i`` of epoch ``e`` draws ``n_src`` files of different speakers, a random crop of each (the
training segment), equalises their RMS, applies random relative gains and sums them; all of it
from a generator seeded by ``(seed, e, i)``. An epoch is therefore reproducible, differs from the
next one, and does not depend on how many DataLoader workers read it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset, Sampler

from sfsrnet.data.folder import SeparationFolder, split_table
from sfsrnet.errors import DataError

log = logging.getLogger(__name__)
# Draws of a source before giving up on finding a speaker not in the mixture yet.
_MAX_DRAWS = 1000


class EpochSampler(Sampler):
    """Yields ``(epoch, index)`` for ``index`` in ``range(n)``, counting epochs from 1.

    Call :meth:`set_epoch` before a pass to say which epoch it draws (training does, every epoch,
    so a resumed run draws the mixtures the killed one would have); a pass without it draws the
    epoch after the last one. The keys travel to the workers, so the mixtures do not depend on
    which worker reads them.

    >>> sampler = EpochSampler(2)
    >>> list(sampler), list(sampler)
    ([(1, 0), (1, 1)], [(2, 0), (2, 1)])
    >>> sampler.set_epoch(7)
    >>> list(sampler), sampler.epoch
    ([(7, 0), (7, 1)], 7)
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.epoch = 0  # the epoch of the last pass
        self._next: int | None = None

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass draw epoch ``epoch`` (counted from 1)."""
        if epoch < 1:
            raise ValueError(f"epochs count from 1, got {epoch}")
        self._next = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch + 1 if self._next is None else self._next
        self.epoch, self._next = epoch, None
        return ((epoch, i) for i in range(self.n))


class DynamicMixing(Dataset):
    """Mixtures made on the fly from the sources of a generic-layout split.

    Items are ``(mix, ref, name)`` like :class:`~sfsrnet.data.folder.SeparationFolder`'s: ``mix``
    ``(time,)`` and ``ref`` ``(n_src, time)``, ``time`` = the segment, or the longest drawn
    source when all are shorter (a batch pads them; the loss ignores the padding). Index with
    ``(epoch, index)`` (:class:`EpochSampler`); a plain index means epoch 0.

    Args:
        root: corpus folder. split: its split to draw from (``train``). n_src: sources per
        mixture. sample_rate: rate of every file. segment: crop (s); None = whole sources.
        gain_db: relative levels uniform in +-gain_db dB. seed: the cell's seed.
        min_length: sources shorter than this (s) are left out. n_items: mixtures per epoch
        (default: as many as the split has).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        n_src: int,
        sample_rate: int,
        segment: float | None,
        gain_db: float,
        seed: int,
        min_length: float | None = None,
        n_items: int | None = None,
    ) -> None:
        static = SeparationFolder(root, split, n_src, sample_rate)  # checks the layout
        table = split_table(root, split, static.names, n_src)
        self.sample_rate = sample_rate
        self.n_src = n_src
        self.segment = None if segment is None else round(segment * sample_rate)
        self.gain_db = gain_db
        self.seed = seed
        self.n_items = n_items or len(static)
        paths, speakers, lengths = [], [], []
        for name, row in zip(static.names, table.itertuples(index=False), strict=True):
            for c in range(n_src):
                paths.append(str(static.folder / f"s{c + 1}" / name))
                speakers.append(getattr(row, f"s{c + 1}_speaker"))
                lengths.append(int(row.length))
        lengths_arr = np.asarray(lengths)
        keep = lengths_arr >= round((min_length or 0) * sample_rate)
        self.paths = [p for p, k in zip(paths, keep, strict=True) if k]
        self.lengths = lengths_arr[keep]
        names, self.speaker = np.unique(np.asarray(speakers)[keep], return_inverse=True)
        if len(names) < n_src:
            raise DataError(
                f"dynamic mixing needs sources of at least n_src={n_src} speakers in "
                f"{static.folder}; it has {len(names)} (after data.min_train_length)"
            )
        if all(str(s).startswith("?") for s in names):
            log.warning(
                "%s has no speaker table (%s.csv): dynamic mixing cannot keep one speaker out "
                "of both sides of a mixture",
                static.folder,
                split,
            )

    def __len__(self) -> int:
        return self.n_items

    def _draw(self, rng: np.random.Generator) -> list[int]:
        chosen: list[int] = []
        for _ in range(_MAX_DRAWS):
            j = int(rng.integers(len(self.paths)))
            if all(self.speaker[j] != self.speaker[k] for k in chosen):
                chosen.append(j)
                if len(chosen) == self.n_src:
                    return chosen
        raise DataError("dynamic mixing found no sources of enough different speakers")

    def _read(self, j: int, start: int, stop: int) -> np.ndarray:
        wav, rate = sf.read(self.paths[j], start=start, stop=stop, dtype="float32")
        if rate != self.sample_rate or wav.ndim != 1:
            raise DataError(f"{self.paths[j]}: not mono at {self.sample_rate} Hz")
        return wav

    def __getitem__(self, key: tuple[int, int] | int) -> tuple[torch.Tensor, torch.Tensor, str]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, epoch, index])
        pieces = []
        for j in self._draw(rng):
            length = int(self.lengths[j])
            if self.segment is not None and length > self.segment:
                start = int(rng.integers(length - self.segment + 1))
                pieces.append(self._read(j, start, start + self.segment))
            else:
                pieces.append(self._read(j, 0, length))
        time = max(len(p) for p in pieces)
        ref = np.zeros((self.n_src, time), dtype=np.float64)
        rms = np.array([np.sqrt(np.mean(p.astype(np.float64) ** 2)) + 1e-8 for p in pieces])
        gains = rng.uniform(-self.gain_db, self.gain_db, size=self.n_src)
        gains -= gains.mean()
        # Keep the corpus's own level: every source at the drawn pieces' mean RMS, then the gains.
        level = rms.mean()
        for c, piece in enumerate(pieces):
            offset = int(rng.integers(time - len(piece) + 1))
            ref[c, offset : offset + len(piece)] = piece / rms[c] * level * 10 ** (gains[c] / 20)
        peak = max(np.abs(ref.sum(0)).max(), np.abs(ref).max())
        if peak > 0.99:
            ref *= 0.99 / peak
        ref32 = ref.astype(np.float32)
        mix = ref32.sum(0, dtype=np.float32)
        return torch.from_numpy(mix), torch.from_numpy(ref32), f"dm-e{epoch}-{index:06d}"
