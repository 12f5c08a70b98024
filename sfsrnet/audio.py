"""Audio I/O and the single anti-aliased resampler used everywhere in the harness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from sfsrnet.errors import DataError

# One resampler for corpus rates, the separator's low rate and the way back, so that no stage
# biases the high band differently from another.
_LOWPASS_WIDTH = 16
_ROLLOFF = 0.94


def resample(wav: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited resampling along the last axis (windowed sinc, Kaiser window).

    Args:
        wav: ``(..., time)`` at ``orig_rate``.
    Returns:
        ``(..., round(time * new_rate / orig_rate))`` at ``new_rate``.

    >>> resample(torch.zeros(2, 8000), 8000, 4000).shape
    torch.Size([2, 4000])
    """
    if orig_rate == new_rate:
        return wav
    return AF.resample(
        wav,
        orig_rate,
        new_rate,
        lowpass_filter_width=_LOWPASS_WIDTH,
        rolloff=_ROLLOFF,
        resampling_method="sinc_interp_kaiser",
        beta=14.769656459379492,
    )


def fit_length(wav: torch.Tensor, length: int) -> torch.Tensor:
    """Crop or zero-pad the last axis of ``wav`` to ``length`` samples."""
    n = wav.shape[-1]
    if n >= length:
        return wav[..., :length]
    return torch.nn.functional.pad(wav, (0, length - n))


def read_wav(path: str | Path, sample_rate: int | None = None) -> np.ndarray:
    """Read a mono wav as float32 ``(time,)``; a wrong rate, extra channels or NaNs are errors."""
    data, rate = load_audio(path)
    if sample_rate is not None and rate != sample_rate:
        raise DataError(f"audio file {path} is at {rate} Hz; {sample_rate} Hz was expected")
    return data


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a mono audio file as float32 ``(time,)`` and its rate; checks channels and samples."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"audio file {path} does not exist")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types for broken files
        raise DataError(f"audio file {path} cannot be read: {err}") from err
    truncated = _wav_truncation(path)
    if truncated:
        raise DataError(f"audio file {path} is truncated: {truncated}")
    if data.shape[1] != 1:
        raise DataError(f"audio file {path} has {data.shape[1]} channels; mono is required")
    if data.shape[0] == 0:
        raise DataError(f"audio file {path} is empty")
    if not np.isfinite(data).all():
        raise DataError(f"audio file {path} contains NaN or infinite samples")
    return data[:, 0], int(rate)


def _wav_truncation(path: Path) -> str | None:
    """For a RIFF/WAVE file whose data chunk is shorter than its header says (a copy cut short):
    what is missing. libsndfile reads such files without complaint, just shorter."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        order = "little" if head[:4] == b"RIFF" else "big"
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk = fh.read(8)
            declared = int.from_bytes(chunk[4:8], order)
            if chunk[:4] == b"data":
                have = size - pos - 8
                # 0 and 0xFFFFFFFF mark streamed files whose writer never knew the length.
                if have < declared and declared not in (0, 0xFFFFFFFF):
                    return f"its header announces {declared} bytes of samples, it holds {have}"
                return None
            pos += 8 + declared + (declared & 1)
    return None


def write_wav(path: str | Path, wav: np.ndarray | torch.Tensor, sample_rate: int) -> None:
    """Write ``(time,)`` as 32-bit float wav, so that stored mixtures stay exact sums of sources."""
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu().numpy()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(wav, dtype=np.float32), sample_rate, subtype="FLOAT")
