"""Single-speaker speech synthesis for the embedded mixture corpus (no download needed).

Three engines are driven, each with engine-neutral pitch and rate offsets (:class:`Voice`):

* eSpeak NG, always: its shared library (shipped by the ``espeakng-loader`` wheel) is called
  in-process through :mod:`ctypes`, with no subprocess and no ``espeak-ng`` CLI.
* flite, when the ``flite`` executable is installed (run as a subprocess).
* festival, when its ``text2wave`` script is installed (run as a subprocess).

eSpeak NG (GPL-3.0), flite and festival are run-time dependencies that this module loads or
invokes; none of their code is bundled here.

eSpeak's voice and parameters are set afresh for every call, but the library keeps internal
state (flutter phase, noise generator, ...) that neither this module nor espeak_Terminate resets:
within one process the samples of an utterance depend on the eSpeak calls made before it
(duration does not). A fresh process that makes the same calls in the same order gives
bit-identical output, so callers that need reproducible audio synthesise each shard in a new
process. flite and festival run as a new process per utterance and carry no state.
"""

from __future__ import annotations

import ctypes
import functools
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

ENGINES = ("espeak", "flite", "festival")
# Inclusive bounds of the engine-neutral offsets, in percent.
PITCH_RANGE = (-30, 30)
RATE_RANGE = (-20, 20)

_SUBPROCESS_TIMEOUT_S = 60.0
_TRIM_THRESHOLD_DB = -40.0  # relative to the loudest 10 ms frame
_TRIM_MARGIN_S = 0.05
_PROBE_TEXT = "Testing one two three."

# --- eSpeak NG -----------------------------------------------------------------------------

# English dialects of eSpeak NG whose status is "mature"; en-us-nyc and en-shaw are left out
# ("testing" status; Shavian spelling).
_ESPEAK_LANGUAGES = (
    "en",
    "en-029",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-gb-x-rp",
    "en-us",
)
# Variants (espeak-ng-data/voices/!v) that sound like a plain adult talker; whispering,
# croaking, robotic, echoing, child-like and heavily tremulous variants are left out.
_ESPEAK_VARIANTS = (
    *(f"m{i}" for i in range(1, 9)),
    *(f"f{i}" for i in range(1, 6)),
    "Andrea",
    "Annie",
    "Michael",
    "aunty",
    "belinda",
    "linda",
    "max",
    "robert",
    "steph",
)
_ESPEAK_BASE_RATE_WPM = 175
_ESPEAK_DEFAULT_RANGE = 50
# Mean F0 (relative to the default setting 50) measured for espeakPITCH = 0, 10, ..., 100;
# the mapping is not linear, so the offset is converted by interpolating in log F0.
_ESPEAK_PITCH_RATIO = (0.65, 0.70, 0.755, 0.83, 0.905, 1.0, 1.10, 1.22, 1.365, 1.525, 1.69)

# speak_lib.h enums and flags
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit()
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_ENDPAUSE = 0x1000  # append the sentence-final pause
_EE_OK = 0
_ESPEAK_RATE, _ESPEAK_VOLUME, _ESPEAK_PITCH, _ESPEAK_RANGE, _ESPEAK_WORDGAP = 1, 2, 3, 4, 7

# int callback(short *wav, int numsamples, espeak_EVENT *events)
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _EspeakVoiceInfo(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    )


# --- flite and festival --------------------------------------------------------------------

# The int_f0_target_mean (Hz) that reproduces each built-in flite voice's default pitch,
# found by matching F0 of default and set output; rms ignores the feature (pitch is fixed).
_FLITE_F0_MEAN = {"awb": 131.0, "kal": 95.0, "kal16": 95.0, "slt": 172.0}
_FLITE_F0_MEAN_GUESS = 120.0
# kal's own duration_stretch is 1.1 (output is bit-identical with it set); others use 1.0.
_FLITE_DURATION_STRETCH = {"kal": 1.1, "kal16": 1.1}

_FESTIVAL_VOICE_ROOTS = (
    Path("/usr/share/festival/voices"),
    Path("/usr/lib/festival/voices"),
    Path("/usr/local/share/festival/voices"),
)
# Voice names are pasted into Scheme code, so only plain identifiers are accepted.
_FESTIVAL_NAME = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class Voice:
    """A synthetic talker: an engine's voice with pitch and rate offsets in percent."""

    engine: str
    name: str
    pitch: int = 0
    rate: int = 0

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown TTS engine {self.engine!r}; known: {list(ENGINES)}")
        if not self.name or ":" in self.name or self.name != self.name.strip():
            raise ValueError(f"bad {self.engine} voice name {self.name!r}")
        for field, value, (low, high) in (
            ("pitch", self.pitch, PITCH_RANGE),
            ("rate", self.rate, RATE_RANGE),
        ):
            if not isinstance(value, int | np.integer) or not low <= value <= high:
                raise ValueError(
                    f"voice {field} must be an integer in [{low}, {high}], got {value!r}"
                )

    @property
    def key(self) -> str:
        """Stable speaker id, e.g. ``espeak:en-us+m3:p+10:r-5``."""
        return f"{self.engine}:{self.name}:p{int(self.pitch):+d}:r{int(self.rate):+d}"


class _Espeak:
    """The eSpeak NG library, initialised once per process in synchronous mode."""

    def __init__(self) -> None:
        try:
            import espeakng_loader

            lib_path = espeakng_loader.get_library_path()
            data_dir = Path(espeakng_loader.get_data_path())
            lib = ctypes.CDLL(lib_path)
        except (ImportError, OSError) as err:
            raise RuntimeError(
                f"cannot load the eSpeak NG library (espeakng-loader): {err}"
            ) from err
        self.lib = lib
        self.data_dir = data_dir
        self._declare()
        # The library takes the folder holding espeak-ng-data (1.52 also accepts the data
        # folder itself; older releases do not).
        root = data_dir.parent if data_dir.name == "espeak-ng-data" else data_dir
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(root).encode(), _ESPEAK_INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {rate}) with data in {root}")
        self.sample_rate = int(rate)
        self._chunks: list[bytes] = []
        # ctypes does not keep the callback alive: the library would call freed memory.
        self._callback = _SYNTH_CALLBACK(self._collect)
        lib.espeak_SetSynthCallback(self._callback)
        # Pin the noise generator so that a fresh process reproduces a run whatever the build's
        # default seed (older releases lack the function).
        set_seed = getattr(lib, "espeak_ng_SetRandSeed", None)
        if set_seed is not None:
            set_seed.argtypes = [ctypes.c_long]
            set_seed.restype = None
            set_seed(0)
        self.lock = threading.Lock()

    def _declare(self) -> None:
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_GetCurrentVoice.argtypes = []
        lib.espeak_GetCurrentVoice.restype = ctypes.POINTER(_EspeakVoiceInfo)
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_EspeakVoiceInfo))
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int

    def _collect(self, wav: Any, n_samples: int, _events: int | None) -> int:
        if wav and n_samples > 0:
            self._chunks.append(ctypes.string_at(wav, 2 * n_samples))
        return 0  # 0 = go on synthesising

    def identifiers(self) -> list[str]:
        """Lower-case last path part of every installed language voice, e.g. ``en-gb-x-rp``."""
        voices = self.lib.espeak_ListVoices(None)
        out = []
        i = 0
        while voices[i]:
            ident = voices[i].contents.identifier
            if ident:
                out.append(ident.decode().rsplit("/", 1)[-1].lower())
            i += 1
        return out

    @functools.cached_property
    def variants(self) -> frozenset[str]:
        """File names in espeak-ng-data/voices/!v, e.g. ``m3``."""
        folder = self.data_dir / "voices" / "!v"
        if not folder.is_dir():
            return frozenset()
        return frozenset(p.name for p in folder.iterdir() if p.is_file())

    def _check(self, status: int, what: str) -> None:
        if status != _EE_OK:
            raise RuntimeError(f"eSpeak {what} failed with status {status}")

    def synthesize(self, voice: Voice, text: str) -> np.ndarray:
        language, _, variant = voice.name.partition("+")
        if variant and variant not in self.variants:
            # eSpeak silently ignores an unknown variant, which would merge two speakers.
            raise RuntimeError(f"eSpeak voice {voice.name!r}: no variant {variant!r}")
        lib = self.lib
        with self.lock:
            self._check(lib.espeak_SetVoiceByName(voice.name.encode()), f"voice {voice.name!r}")
            current = lib.espeak_GetCurrentVoice()
            ident = current.contents.identifier.decode() if current else ""
            if ident.rsplit("/", 1)[-1].partition("+")[0].lower() != language.lower():
                raise RuntimeError(f"eSpeak voice {voice.name!r} resolved to {ident!r}")
            rate = round(_ESPEAK_BASE_RATE_WPM * (1 + voice.rate / 100))
            for param, value in (
                (_ESPEAK_RATE, rate),
                (_ESPEAK_PITCH, _espeak_pitch_setting(voice.pitch)),
                (_ESPEAK_RANGE, _ESPEAK_DEFAULT_RANGE),
                (_ESPEAK_VOLUME, 100),
                (_ESPEAK_WORDGAP, 0),
            ):
                self._check(lib.espeak_SetParameter(param, value, 0), f"parameter {param}")
            buf = ctypes.create_string_buffer(text.encode("utf-8"))
            self._chunks = []
            try:
                status = lib.espeak_Synth(
                    buf,
                    len(buf),
                    0,
                    _POS_CHARACTER,
                    0,
                    _ESPEAK_CHARS_UTF8 | _ESPEAK_ENDPAUSE,
                    None,
                    None,
                )
                self._check(status, "espeak_Synth")
                self._check(lib.espeak_Synchronize(), "espeak_Synchronize")
                pcm = b"".join(self._chunks)
            finally:
                self._chunks = []
        return np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0


@functools.lru_cache(maxsize=1)
def _espeak() -> _Espeak:
    return _Espeak()


def _espeak_pitch_setting(pitch: int) -> int:
    grid = np.arange(0, 101, 10)
    log_ratio = np.log(np.asarray(_ESPEAK_PITCH_RATIO))
    return round(float(np.interp(np.log1p(pitch / 100), log_ratio, grid)))


# --- subprocess engines ----------------------------------------------------------------------


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_SUBPROCESS_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(f"{what}: timed out after {_SUBPROCESS_TIMEOUT_S:.0f} s") from err
    except OSError as err:
        raise RuntimeError(f"{what}: cannot run {cmd[0]}: {err}") from err
    # festival reports Scheme errors on stderr yet exits with status 0.
    if proc.returncode != 0 or "SIOD ERROR" in proc.stderr:
        raise RuntimeError(f"{what}: {cmd[0]} exited with {proc.returncode}: {proc.stderr.strip()}")
    return proc


def _read_wav(path: Path, what: str) -> tuple[np.ndarray, int]:
    if not path.is_file() or path.stat().st_size == 0:
        raise RuntimeError(f"{what}: no audio file was written")
    wav, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return wav.mean(axis=1), int(rate)


@functools.lru_cache(maxsize=1)
def _flite_voices() -> tuple[str, ...]:
    out = _run(["flite", "-lv"], "flite -lv").stdout
    _, _, names = out.partition(":")
    return tuple(names.split())


def _synth_flite(voice: Voice, text: str, what: str) -> tuple[np.ndarray, int]:
    if voice.name not in _flite_voices():
        # flite falls back to its default voice for an unknown name instead of failing.
        raise RuntimeError(f"{what}: flite has no voice {voice.name!r} ({list(_flite_voices())})")
    cmd = ["flite", "-voice", voice.name]
    if voice.rate:
        stretch = _FLITE_DURATION_STRETCH.get(voice.name, 1.0) / (1 + voice.rate / 100)
        cmd += ["--setf", f"duration_stretch={stretch:.4f}"]
    if voice.pitch:
        base = _FLITE_F0_MEAN.get(voice.name, _FLITE_F0_MEAN_GUESS)
        cmd += ["--setf", f"int_f0_target_mean={base * (1 + voice.pitch / 100):.2f}"]
    with tempfile.TemporaryDirectory(prefix="sfsrnet-tts-") as tmp:
        out = Path(tmp) / "out.wav"
        _run([*cmd, "-t", text, "-o", str(out)], what)
        return _read_wav(out, what)


def _festival_eval(voice: Voice) -> str:
    parts = [f"(voice_{voice.name})"]
    if voice.rate:
        factor = 1 + voice.rate / 100
        parts.append(
            "(Parameter.set 'Duration_Stretch (/ (if (Parameter.get 'Duration_Stretch)"
            f" (Parameter.get 'Duration_Stretch) 1.0) {factor:.4f}))"
        )
    if voice.pitch:
        # Only voices with linear-regression intonation (int_lr_params, e.g. kal_diphone)
        # expose a target F0; on other voices the pitch offset has no effect.  A prepended
        # pair shadows the voice's own one in assoc lookups.
        factor = 1 + voice.pitch / 100
        scaled = " ".join(
            f"(list '{key} (* {factor:.4f} (car (cdr (assoc '{key} int_lr_params)))))"
            for key in ("target_f0_mean", "target_f0_std")
        )
        parts.append(
            "(if (and (assoc 'target_f0_mean int_lr_params) (assoc 'target_f0_std int_lr_params))"
            f" (set! int_lr_params (append (list {scaled}) int_lr_params)))"
        )
    return "(begin " + " ".join(parts) + ")"


def _synth_festival(voice: Voice, text: str, what: str) -> tuple[np.ndarray, int]:
    if not _FESTIVAL_NAME.match(voice.name):
        raise RuntimeError(f"{what}: bad festival voice name {voice.name!r}")
    with tempfile.TemporaryDirectory(prefix="sfsrnet-tts-") as tmp:
        text_file = Path(tmp) / "text.txt"
        text_file.write_text(text + "\n", encoding="utf-8")
        out = Path(tmp) / "out.wav"
        _run(["text2wave", "-eval", _festival_eval(voice), "-o", str(out), str(text_file)], what)
        return _read_wav(out, what)


def _probe(cmd: list[str], out: Path) -> bool:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_SUBPROCESS_TIMEOUT_S)
        if proc.returncode != 0 or "SIOD ERROR" in proc.stderr:
            return False
        wav, _ = sf.read(str(out), dtype="float32", always_2d=True)
    except (OSError, subprocess.SubprocessError, RuntimeError):
        return False
    return bool(wav.size) and float(np.abs(wav).max()) > 0


@functools.lru_cache(maxsize=1)
def _available_engines() -> tuple[str, ...]:
    _espeak()  # raises RuntimeError if the library cannot be loaded or initialised
    found = ["espeak"]
    with tempfile.TemporaryDirectory(prefix="sfsrnet-tts-") as tmp:
        out = Path(tmp) / "probe.wav"
        if shutil.which("flite") and _probe(["flite", "-t", _PROBE_TEXT, "-o", str(out)], out):
            found.append("flite")
        text_file = Path(tmp) / "probe.txt"
        text_file.write_text(_PROBE_TEXT + "\n", encoding="utf-8")
        out.unlink(missing_ok=True)
        if shutil.which("text2wave") and _probe(["text2wave", "-o", str(out), str(text_file)], out):
            found.append("festival")
    return tuple(found)


# --- public API -----------------------------------------------------------------------------


def available_engines() -> list[str]:
    """Engines usable here: ``espeak`` always, ``flite``/``festival`` if they synthesise a test.

    The probe runs once per process. Raises RuntimeError if eSpeak NG cannot be loaded.
    """
    return list(_available_engines())


@functools.lru_cache(maxsize=len(ENGINES))
def _base_voices(engine: str) -> tuple[str, ...]:
    if engine not in ENGINES:
        raise ValueError(f"unknown TTS engine {engine!r}; known: {list(ENGINES)}")
    if engine not in _available_engines():
        raise RuntimeError(f"TTS engine {engine!r} is not available here")
    if engine == "espeak":
        es = _espeak()
        languages = sorted(set(_ESPEAK_LANGUAGES) & set(es.identifiers()))
        variants = sorted(set(_ESPEAK_VARIANTS) & es.variants)
        return tuple(sorted(f"{lang}+{var}" for lang in languages for var in variants))
    if engine == "flite":
        names = set(_flite_voices())
        # Limited-domain voices (awb_time says only the time) cannot read arbitrary text.
        names = {n for n in names if not n.endswith("_time")}
        if "kal16" in names:
            names.discard("kal")  # the same talker as kal16, at 8 kHz
        return tuple(sorted(names))
    names = {
        path.name
        for root in _FESTIVAL_VOICE_ROOTS
        if root.is_dir()
        for path in root.glob("*/*")
        if path.is_dir() and _FESTIVAL_NAME.match(path.name)
    }
    return tuple(sorted(names))


def base_voices(engine: str) -> list[str]:
    """Sorted voice names of an available engine, usable as :attr:`Voice.name`.

    eSpeak names are ``language+variant`` (e.g. ``en-gb-x-rp+f3``); flite and festival names
    are their own voice ids (``slt``, ``kal_diphone``). Raises RuntimeError if the engine is
    not available, ValueError if it is unknown.
    """
    return list(_base_voices(engine))


def trim_silence(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """Cut leading and trailing silence, leaving (zero-padding if short) a 50 ms margin.

    Silence is every 10 ms frame more than 40 dB below the loudest one. The padding gives all
    engines the same onset and offset margins: eSpeak starts speaking within 10 ms.
    """
    frame = max(1, int(sample_rate * 0.01))
    n_frames = -(-len(wav) // frame)
    if n_frames == 0:
        return wav[:0]
    padded = np.zeros(n_frames * frame, dtype=np.float64)
    padded[: len(wav)] = wav
    energy = np.sqrt(np.mean(padded.reshape(n_frames, frame) ** 2, axis=1))
    peak = float(energy.max())
    if peak <= 1e-6:
        return wav[:0]
    loud = np.flatnonzero(energy >= peak * 10 ** (_TRIM_THRESHOLD_DB / 20))
    margin = int(sample_rate * _TRIM_MARGIN_S)
    first, last = int(loud[0]) * frame, min(len(wav), (int(loud[-1]) + 1) * frame)
    kept = wav[max(0, first - margin) : last + margin]
    pad = (max(0, margin - first), max(0, last + margin - len(wav)))
    return np.pad(kept, pad) if any(pad) else kept


def synthesize(voice: Voice, text: str) -> tuple[np.ndarray, int]:
    """Speak ``text`` with ``voice``: mono float32 samples in [-1, 1] and their sample rate.

    The rate is the engine's native one (eSpeak 22050 Hz, flite/festival 16000 Hz for the
    usual voices). Leading and trailing silence is trimmed. Raises RuntimeError if the engine
    fails or produces no sound.
    """
    what = f"{voice.engine} voice {voice.name!r} ({voice.key}) on text {text!r}"
    if voice.engine == "espeak":
        es = _espeak()
        try:
            wav, rate = es.synthesize(voice, text), es.sample_rate
        except RuntimeError as err:
            raise RuntimeError(f"{what}: {err}") from err
    elif voice.engine == "flite":
        wav, rate = _synth_flite(voice, text, what)
    else:
        wav, rate = _synth_festival(voice, text, what)
    wav = trim_silence(np.asarray(wav, dtype=np.float32), rate)
    if wav.size == 0:
        raise RuntimeError(f"{what}: the engine produced no sound")
    return np.clip(wav, -1.0, 1.0).astype(np.float32, copy=False), rate


def synthesize_all(requests: list[tuple[Voice, str]]) -> list[tuple[np.ndarray, int]]:
    """:func:`synthesize` over ``(voice, text)`` pairs, in order (a picklable shard of work)."""
    return [synthesize(voice, text) for voice, text in requests]


def speaker_identity(engine: str, name: str) -> str:
    """The talker behind a voice, so that two engines' voices of one talker count as one speaker.

    eSpeak's timbre is its variant (``en-us+m3`` and ``en-gb-x-rp+m3`` are one talker with two
    accents); flite's ``kal16`` and festival's ``kal_diphone`` are both the CMU "kal" recordings.
    """
    if engine == "espeak":
        return "espeak:" + name.split("+", 1)[-1]
    return "cmu:" + re.sub(r"(16|_diphone|_cg|_hts|_clunits)$", "", name)
