"""One corpus identity: which folder holds the corpus a config describes, and the key naming it.

Everything that decides *where* a corpus lies is here, so that ``make-corpus`` (with or without
``--out``), training, evaluation, the workflow and the report all agree:

* embedded corpus: the key is a short hash of :class:`CorpusSpec` (every parameter that shapes
  the audio, the speech engines actually used included) and the generator version; the folder is
  ``data.root`` or ``<results_dir>/data/embedded-<key>``.
* real corpora: the source folder is ``data.root`` or the corpus's environment variable
  (:data:`ENV_VARS`); the key hashes the settings that shape the prepared copy
  (:data:`PREPARED_KEYS`); the prepared folder is ``data.prepared`` or
  ``<results_dir>/data/<corpus>-<key>``.

The same key is written into the corpus's ``manifest.json``. Nothing here reads or makes audio and
nothing imports torch: the workflow calls :func:`resolve_corpus` for every cell while it plans.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from sfsrnet.config import validate
from sfsrnet.errors import ConfigError

# Bump when the generation code changes what a spec produces, so old caches are not reused.
# 2: the key covers the engines actually used (version 1 named a corpus by the engines asked
# for, whether or not they were installed), and the default engines are [espeak].
GENERATOR_VERSION = 2
# Bump when preparation changes what a given data section produces.
PREPARE_VERSION = 1
MANIFEST = "manifest.json"

REAL_CORPORA = ("folder", "wsj0-2mix", "wsj0-3mix", "libri2mix", "libri3mix", "wham")
# The folder of a real corpus when data.root is null.
ENV_VARS = {
    "folder": "SFSRNET_FOLDER",
    "wsj0-2mix": "SFSRNET_WSJ0_MIX",
    "wsj0-3mix": "SFSRNET_WSJ0_MIX",
    "libri2mix": "SFSRNET_LIBRIMIX",
    "libri3mix": "SFSRNET_LIBRIMIX",
    "wham": "SFSRNET_WHAM",
}
# The data keys that shape a prepared corpus (its key); the others act at training time.
PREPARED_KEYS = (
    "corpus",
    "root",
    "sample_rate",
    "n_src",
    "mix_length",
    "task",
    "librimix",
    "use_8k_files",
)
# data.embedded.engines value that means "whichever engines are installed here".
AUTO_ENGINES = "auto"
_INSTALL_HINT = "on Debian/Ubuntu: apt-get install flite festival"


def _short_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def _espeak_version() -> str | None:
    # The eSpeak NG build ships in this wheel; another release may speak differently.
    try:
        return metadata.version("espeakng-loader")
    except metadata.PackageNotFoundError:
        return None


def resolve_engines(requested: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The speech engines a corpus is made with, from ``data.embedded.engines``.

    ``auto``: every engine installed here (eSpeak NG always, flite and festival when they
    synthesise a test sentence), so the corpus key, and with it the folder, differs between
    machines with different engines. A list: exactly those engines, in the order of
    :data:`sfsrnet.data.tts.ENGINES`; one that is not installed is a :class:`ConfigError` naming
    the key (never silently dropped, which would give one folder name two corpora).
    """
    from sfsrnet.data import tts

    if requested == AUTO_ENGINES:
        return tuple(tts.available_engines())
    if isinstance(requested, str):
        raise ConfigError(
            f"data.embedded.engines: {requested!r} is neither {AUTO_ENGINES!r} nor a list of "
            f"engines {list(tts.ENGINES)}"
        )
    unknown = sorted(set(requested) - set(tts.ENGINES))
    if unknown:
        raise ConfigError(
            f"data.embedded.engines: unknown engine(s) {unknown}; known: {list(tts.ENGINES)}"
        )
    wanted = [e for e in tts.ENGINES if e in requested]
    # eSpeak NG comes with the package (espeakng-loader); only the system engines are probed,
    # which costs one short synthesis per engine once per process.
    if any(e != "espeak" for e in wanted):
        installed = tts.available_engines()
        missing = [e for e in wanted if e not in installed]
        if missing:
            raise ConfigError(
                f"data.embedded.engines asks for {', '.join(missing)}, not installed here "
                f"({_INSTALL_HINT}); or remove {'it' if len(missing) == 1 else 'them'} from "
                f"data.embedded.engines, or set it to {AUTO_ENGINES!r} to use whichever engines "
                "are installed (another corpus, with its own key)"
            )
    return tuple(wanted)


@dataclass(frozen=True)
class CorpusSpec:
    """Every parameter that shapes the embedded corpus: ``data.sample_rate``, ``data.n_src``,
    the section ``data.embedded`` with its engines resolved (:func:`resolve_engines`), and the
    eSpeak NG release.

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
    espeak_version: str | None = dataclasses.field(default_factory=_espeak_version)

    @classmethod
    def from_config(cls, data: dict[str, Any] | None = None) -> CorpusSpec:
        """Validate a config's ``data`` mapping (defaults filled in), resolve its engines
        (a :class:`ConfigError` if one asked for is not installed) and build the spec."""
        section = validate({"data": dict(data or {})})["data"]
        values = dict(
            section["embedded"], sample_rate=section["sample_rate"], n_src=section["n_src"]
        )
        if abs(sum(values["split_fractions"]) - 1) > 1e-6:
            raise ConfigError("data.embedded.split_fractions must sum to 1")
        values["engines"] = resolve_engines(values["engines"])
        values["split_fractions"] = tuple(values["split_fractions"])
        return cls(**values)

    def n_mixtures(self, split: str) -> int:
        return int(getattr(self, f"n_{split}"))

    def as_dict(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    def key(self) -> str:
        """Short hash of the spec and the generator version: the corpus's folder key."""
        return _short_hash({"spec": self.as_dict(), "generator": GENERATOR_VERSION})


def resolve_root(data: dict[str, Any]) -> Path:
    """The folder of a real corpus, absolute: ``data.root``, else its environment variable.

    Neither set, or a folder that does not exist, is a :class:`ConfigError` naming both.
    """
    corpus = data["corpus"]
    var = ENV_VARS[corpus]
    root = data.get("root") or os.environ.get(var)
    if not root:
        raise ConfigError(
            f"data.root is not set for the {corpus} corpus and the environment variable {var} "
            "is not set either: point one of them at the folder the corpus was unpacked to"
        )
    path = Path(root).expanduser()
    if not path.is_dir():
        source = "data.root" if data.get("root") else f"data.root is null and {var}"
        raise ConfigError(
            f"{source} = {root}: the {corpus} corpus folder does not exist (set data.root or "
            f"{var} to the folder the corpus was unpacked to)"
        )
    return path.resolve()


def prepared_key(data: dict[str, Any]) -> str:
    """Short hash of the settings that shape a prepared real corpus (root resolved)."""
    spec = {k: data[k] for k in PREPARED_KEYS}
    spec["root"] = str(resolve_root(data))
    return _short_hash({"spec": spec, "version": PREPARE_VERSION})


def corpus_key(data: dict[str, Any]) -> str:
    """The key of the corpus a validated ``data`` section describes (as in its manifest)."""
    if data["corpus"] == "embedded":
        return CorpusSpec.from_config(data).key()
    return prepared_key(data)


def resolve_corpus(config: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a validated config's ``data`` section with the corpus location filled in.

    embedded: ``root`` = ``data.root`` or ``<results_dir>/data/embedded-<key>``, and
    ``embedded.engines`` = the engines the corpus is made with (``auto`` resolved). Real corpora:
    ``root`` absolute (from ``data.root`` or the corpus's environment variable) and ``prepared``
    = ``data.prepared`` or ``<results_dir>/data/<corpus>-<key>``. Idempotent; reads no audio.
    Raises :class:`ConfigError` naming the key at fault (unset or missing corpus folder, an
    engine that is not installed).
    """
    data = copy.deepcopy(config["data"])
    data_dir = Path(config["results_dir"]) / "data"
    if data["corpus"] == "embedded":
        spec = CorpusSpec.from_config(data)
        data["embedded"]["engines"] = list(spec.engines)
        data["root"] = data["root"] or str(data_dir / f"embedded-{spec.key()}")
        return data
    if data["corpus"] not in REAL_CORPORA:
        raise ConfigError(f"data.corpus {data['corpus']!r} is not a known corpus")
    data["root"] = str(resolve_root(data))
    data["prepared"] = data["prepared"] or str(data_dir / f"{data['corpus']}-{prepared_key(data)}")
    return data


def corpus_folder(data: dict[str, Any]) -> str:
    """The folder holding ``manifest.json`` of a resolved ``data`` section
    (:func:`resolve_corpus`): ``root`` for the embedded corpus, ``prepared`` for a real one."""
    folder = data["root"] if data["corpus"] == "embedded" else data["prepared"]
    if not folder:
        key = "data.root" if data["corpus"] == "embedded" else "data.prepared"
        raise ConfigError(f"{key} is not set: resolve the data section first (resolve_corpus)")
    return str(folder)


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The manifest of a finished corpus in ``folder``, or ``None`` when there is none."""
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None
