"""Audio in and out: read any file soundfile can, resample with soxr, write atomically.

A file under an output name is always complete: it is written to a temporary name in the same
folder, fsynced, then renamed over the target (rename is atomic on POSIX and Windows).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import AudioInputError

SUBTYPES = {"pcm16": "PCM_16", "pcm24": "PCM_24", "float32": "FLOAT"}


def load_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """-> (float32 audio `[C, N]`, sample rate). Bad files raise `AudioInputError` naming the file."""
    import soundfile as sf

    p = Path(path)
    if not p.is_file():
        raise AudioInputError(f"audio file not found: {p}")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)  # [N, C]
    except Exception as exc:  # noqa: BLE001 - libsndfile raises several types for bad input
        raise AudioInputError(f"{p.name} is not a readable audio file ({exc})") from exc
    if data.shape[0] == 0:
        raise AudioInputError(f"{p.name} contains no audio samples")
    if not np.isfinite(data).all():
        raise AudioInputError(f"{p.name} contains NaN or infinite samples")
    return np.ascontiguousarray(data.T), int(sr)


def conform(audio: np.ndarray, sr: int, target_sr: int, channels: int) -> np.ndarray:
    """Resample `[C, N]` to `target_sr` (soxr, high quality) and map channels: mono is
    duplicated, more channels than wanted are mixed down to mono first."""
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.shape[0] != channels:
        mono = audio.mean(axis=0, keepdims=True)
        audio = np.repeat(mono, channels, axis=0) if channels > 1 else mono
    if sr != target_sr:
        import soxr

        audio = soxr.resample(audio.T, sr, target_sr, quality="HQ").T
    return np.ascontiguousarray(audio, dtype=np.float32)


def _atomic_target(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part", dir=str(path.parent))


def _finish(tmp: str, path: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_audio_atomic(path: str | os.PathLike[str], audio: np.ndarray, sr: int,
                       subtype: str = "pcm24") -> Path:
    """Write `[C, N]` float audio as WAV/FLAC (by suffix) without ever leaving a partial file."""
    import soundfile as sf

    target = Path(path)
    if subtype not in SUBTYPES:
        raise ValueError(f"unknown sample format {subtype!r}; choose one of {sorted(SUBTYPES)}")
    fmt = "FLAC" if target.suffix.lower() == ".flac" else "WAV"
    sub = SUBTYPES[subtype]
    if fmt == "FLAC" and sub == "FLOAT":
        raise ValueError("FLAC cannot hold 32-bit float samples; use pcm16 or pcm24")
    fd, tmp = _atomic_target(target)
    os.close(fd)
    try:
        sf.write(tmp, np.ascontiguousarray(audio.T), sr, subtype=sub, format=fmt)
        _finish(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_json_atomic(path: str | os.PathLike[str], data: Mapping[str, Any]) -> Path:
    target = Path(path)
    fd, tmp = _atomic_target(target)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
        _finish(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
