"""Real corpora as they lie on disk: where each one keeps its splits, files and speakers.

Layouts (``root`` = ``data.root`` or the corpus's environment variable,
:data:`sfsrnet.data.identity.ENV_VARS`)::

    wsj0-2mix  root/2speakers/wav16k/<min|max>/<tr|cv|tt>/{mix,s1,s2}/<name>.wav, where
               <name> = <utt1>_<snr1>_<utt2>_<snr2>
    wsj0-3mix  root/3speakers/wav16k/<min|max>/<tr|cv|tt>/{mix,s1,s2,s3}/...
    libri2mix  root/Libri2Mix/wav16k/<min|max>/metadata/mixture_<subset>_mix_<clean|both>.csv
               (columns mixture_ID, mixture_path, source_<c>_path, [noise_path], length; paths as
               the generator wrote them, usually absolute) and <subset>/{mix_clean,mix_both,s1,s2}/
    libri3mix  root/Libri3Mix/... the same with s3
    wham       root/wav16k/<min|max>/<tr|cv|tt>/{mix_clean,mix_both,s1,s2}/<wsj0-2mix names>.wav
    folder     root/<train|valid|test>/{mix,s1,s2[,s3]}/<name>.wav and, optionally,
               root/<split>.csv with columns mixture_id, s<c>_speaker (speakers for dynamic mixing)

``wav8k`` replaces ``wav16k`` with ``data.use_8k_files``. Speakers come from the names: a wsj0
utterance id starts with its 3-character speaker id; a LibriMix mixture id joins LibriSpeech ids
``<speaker>-<chapter>-<utterance>`` with ``_``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sfsrnet.data.identity import REAL_CORPORA, resolve_root
from sfsrnet.errors import ConfigError, DataError

SPLITS = ("train", "valid", "test")
_WSJ0_SPLITS = {"train": "tr", "valid": "cv", "test": "tt"}
_LIBRI_SPLITS = {"valid": ["dev"], "test": ["test"]}


@dataclass(frozen=True)
class Entry:
    """One mixture of a corpus: its file, its sources' files and their speakers.

    ``origin`` says where the entry was listed (a metadata row or a folder), for messages.
    """

    name: str
    mix: Path
    sources: tuple[Path, ...]
    speakers: tuple[str, ...]
    origin: str


def _wsj0_speakers(name: str, n_src: int) -> tuple[str, ...] | None:
    """Speakers of a wsj0-mix name ``<utt1>_<snr1>_<utt2>_<snr2>[...]`` (3 characters each)."""
    parts = Path(name).stem.split("_")
    utts = parts[0::2]
    if len(parts) != 2 * n_src or any(len(u) < 4 for u in utts):
        return None
    return tuple(u[:3] for u in utts)


def _libri_speakers(mixture_id: str, n_src: int) -> tuple[str, ...] | None:
    """Speakers of a LibriMix id ``<spk>-<chapter>-<utt>_<spk>-<chapter>-<utt>[...]``."""
    parts = str(mixture_id).split("_")
    if len(parts) != n_src or any(p.count("-") != 2 for p in parts):
        return None
    return tuple(p.split("-")[0] for p in parts)


def _unknown_speakers(name: str, n_src: int) -> tuple[str, ...]:
    # Each source its own speaker: dynamic mixing then only avoids the same file twice.
    return tuple(f"?{name}/s{c + 1}" for c in range(n_src))


@dataclass(frozen=True)
class CorpusSource:
    """A real corpus on disk, as a validated ``data`` section describes it."""

    corpus: str
    root: Path
    n_src: int
    mix_length: str
    task: str
    train_set: str
    use_8k_files: bool

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> CorpusSource:
        """Build from a validated config's ``data`` section (root resolved, settings checked)."""
        corpus = data["corpus"]
        if corpus not in REAL_CORPORA:
            raise ConfigError(f"data.corpus {corpus!r} is not a corpus read from disk")
        if data["use_8k_files"] and (corpus == "folder" or data["sample_rate"] != 8000):
            raise ConfigError(
                "data.use_8k_files is true, which reads the corpus's wav8k files: it needs a "
                f"wsj0-mix, LibriMix or WHAM! corpus and data.sample_rate 8000 (have {corpus}, "
                f"{data['sample_rate']} Hz)"
            )
        return cls(
            corpus=corpus,
            root=resolve_root(data),
            n_src=data["n_src"],
            mix_length=data["mix_length"],
            task=data["task"],
            train_set=data["librimix"]["train_set"],
            use_8k_files=data["use_8k_files"],
        )

    @property
    def file_rate(self) -> int | None:
        """Sample rate of the files read (None: a generic folder, any one rate)."""
        if self.corpus == "folder":
            return None
        return 8000 if self.use_8k_files else 16000

    @property
    def rate_dir(self) -> str:
        return "wav8k" if self.use_8k_files else "wav16k"

    def base(self) -> Path:
        """The folder that holds the splits (or, for LibriMix, the subsets and metadata)."""
        if self.corpus.startswith("wsj0"):
            return self.root / f"{self.n_src}speakers" / self.rate_dir / self.mix_length
        if self.corpus.startswith("libri"):
            return self.root / f"Libri{self.n_src}Mix" / self.rate_dir / self.mix_length
        if self.corpus == "wham":
            return self.root / self.rate_dir / self.mix_length
        return self.root

    def entries(self, split: str) -> list[Entry]:
        """The mixtures of a harness split (``train``, ``valid``, ``test``), sorted by name.

        A missing split folder or metadata file is a :class:`DataError`; missing audio files are
        listed as they are and reported by the checks (:mod:`sfsrnet.data.prepare`).
        """
        base = self.base()
        if not base.is_dir():
            raise DataError(
                f"{base} does not exist: data.root ({self.root}) does not hold the {self.corpus} "
                f"layout for {self.rate_dir}/{self.mix_length} (see data.corpus in the schema)"
            )
        if self.corpus.startswith("libri"):
            subsets = (
                ["train-100", "train-360"]
                if split == "train" and self.train_set == "train-460"
                else [self.train_set]
                if split == "train"
                else _LIBRI_SPLITS[split]
            )
            return [e for subset in subsets for e in self._libri_subset(subset)]
        if self.corpus == "folder":
            return self._folder(base / split, "mix", self._folder_speakers(split))
        mix_dir = {"wham": "mix_both" if self.task == "noisy" else "mix_clean"}.get(
            self.corpus, "mix"
        )
        return self._folder(base / _WSJ0_SPLITS[split], mix_dir, None)

    def _folder(self, folder: Path, mix_dir: str, speakers: dict | None) -> list[Entry]:
        mixes = folder / mix_dir
        if not mixes.is_dir():
            raise DataError(f"split folder {mixes} of the {self.corpus} corpus does not exist")
        names = sorted(p.name for p in mixes.glob("*.wav"))
        if not names:
            raise DataError(f"split folder {mixes} of the {self.corpus} corpus holds no .wav files")
        entries = []
        for name in names:
            stem = Path(name).stem
            if speakers is not None:
                spk = speakers.get(stem) or _unknown_speakers(stem, self.n_src)
            else:
                spk = _wsj0_speakers(name, self.n_src) or _unknown_speakers(stem, self.n_src)
            entries.append(
                Entry(
                    name=stem,
                    mix=mixes / name,
                    sources=tuple(folder / f"s{c + 1}" / name for c in range(self.n_src)),
                    speakers=spk,
                    origin=str(mixes),
                )
            )
        return entries

    def _folder_speakers(self, split: str) -> dict[str, tuple[str, ...]]:
        table_path = self.root / f"{split}.csv"
        if not table_path.is_file():
            return {}
        table = pd.read_csv(table_path, dtype=str)
        columns = ["mixture_id", *(f"s{c + 1}_speaker" for c in range(self.n_src))]
        if any(c not in table for c in columns):
            return {}
        return {row[0]: tuple(row[1:]) for row in table[columns].itertuples(index=False)}

    def _libri_subset(self, subset: str) -> list[Entry]:
        base = self.base()
        kind = "both" if self.task == "noisy" else "clean"
        csv = base / "metadata" / f"mixture_{subset}_mix_{kind}.csv"
        if not csv.is_file():
            raise DataError(
                f"LibriMix metadata file {csv} does not exist (subset {subset}, task "
                f"{self.task}); is data.root the folder that holds Libri{self.n_src}Mix/?"
            )
        table = pd.read_csv(csv, dtype=str)
        needed = [
            "mixture_ID",
            "mixture_path",
            *(f"source_{c + 1}_path" for c in range(self.n_src)),
        ]
        missing = [c for c in needed if c not in table]
        if missing:
            raise DataError(f"LibriMix metadata file {csv} lacks the column(s) {missing}")
        entries = []
        for i, row in enumerate(table.itertuples(index=False)):
            values = row._asdict()
            origin = f"{csv} row {i + 2} (mixture_ID {values['mixture_ID']})"
            sources = tuple(
                self._libri_path(values[f"source_{c + 1}_path"], base) for c in range(self.n_src)
            )
            mixture_id = values["mixture_ID"]
            entries.append(
                Entry(
                    name=str(mixture_id),
                    mix=self._libri_path(values["mixture_path"], base),
                    sources=sources,
                    speakers=_libri_speakers(mixture_id, self.n_src)
                    or _unknown_speakers(str(mixture_id), self.n_src),
                    origin=origin,
                )
            )
        return sorted(entries, key=lambda e: e.name)

    @staticmethod
    def _libri_path(value: str, base: Path) -> Path:
        """A metadata path, read under ``data.root``: its ``<subset>/<folder>/<file>`` in this
        corpus's folder. LibriMix writes absolute paths of where the corpus was generated; a
        copied or moved corpus keeps them, and files outside ``data.root`` are never read."""
        return base.joinpath(*Path(str(value)).parts[-3:])
