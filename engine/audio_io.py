"""Audio in and out: read any file soundfile can, resample with soxr, write atomically.

A file under an output name is always complete: it is written to a temporary name in the same
folder, fsynced, then renamed over the target (rename is atomic on POSIX and Windows).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

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
    # mkstemp creates 0600; results are ordinary user files that a DAW or a colleague may read.
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_audio_atomic(path: str | os.PathLike[str], audio: np.ndarray, sr: int,
                       subtype: str = "pcm24",
                       riff_chunks: Sequence[tuple[bytes, bytes]] = ()) -> Path:
    """Write `[C, N]` float audio as WAV/FLAC (by suffix) without ever leaving a partial file.

    `riff_chunks` (WAV only), e.g. `[(b"LIST", info), (b"acid", acid)]`, are appended after the
    audio data in the temporary file, before the fsync and rename.
    """
    import soundfile as sf

    target = Path(path)
    if subtype not in SUBTYPES:
        raise ValueError(f"unknown sample format {subtype!r}; choose one of {sorted(SUBTYPES)}")
    fmt = "FLAC" if target.suffix.lower() == ".flac" else "WAV"
    sub = SUBTYPES[subtype]
    if fmt == "FLAC" and sub == "FLOAT":
        raise ValueError("FLAC cannot hold 32-bit float samples; use pcm16 or pcm24")
    if riff_chunks and fmt != "WAV":
        raise ValueError("RIFF chunks can only be added to a .wav file")
    for cid, _ in riff_chunks:
        if len(cid) != 4:
            raise ValueError(f"a RIFF chunk id is 4 bytes (got {cid!r})")
    fd, tmp = _atomic_target(target)
    os.close(fd)
    try:
        sf.write(tmp, np.ascontiguousarray(audio.T), sr, subtype=sub, format=fmt)
        if riff_chunks:
            _append_riff_chunks(tmp, riff_chunks)
        _finish(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _append_riff_chunks(path: str, chunks: Sequence[tuple[bytes, bytes]]) -> None:
    """Append chunks to a RIFF/WAVE file and fix the RIFF size (chunks are word-aligned)."""
    with open(path, "r+b") as fh:
        head = fh.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError(f"{path} is not a RIFF/WAVE file (RF64 files take no extra chunks)")
        end = fh.seek(0, os.SEEK_END)
        if end % 2:  # the data chunk had an odd size: its pad byte comes first
            fh.write(b"\0")
        for cid, payload in chunks:
            fh.write(cid + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) % 2))
        size = fh.tell() - 8
        if size > 0xFFFFFFFF:
            raise ValueError("the file is too large for RIFF chunks")
        fh.seek(4)
        fh.write(struct.pack("<I", size))


def fade_edges(audio: np.ndarray, n: int) -> np.ndarray:
    """Raised-cosine fade-in and fade-out of `n` samples at the ends of `[C, N]` audio, in place:
    the first and last samples become exactly 0, so a cut file starts and ends without a click."""
    n = min(int(n), audio.shape[-1] // 2)
    if n > 0:
        ramp = (0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)).astype(audio.dtype)  # [n], 0 -> ~1
        audio[..., :n] *= ramp
        audio[..., audio.shape[-1] - n:] *= ramp[::-1]
    return audio


PEAK_CEILING_DB = -1.0  # loudness gain never lifts a sample peak over this (dBFS)
LOUDNESS_RANGE = (-60.0, 0.0)  # accepted targets, LUFS


def normalize_loudness(audio: np.ndarray, sr: int, target_lufs: float,
                       ceiling_db: float = PEAK_CEILING_DB) -> tuple[np.ndarray, dict[str, float | None]]:
    """Scale `[C, N]` audio toward `target_lufs` integrated loudness (ITU-R BS.1770-4: K-weighting,
    400 ms blocks, absolute and relative gates, via pyloudnorm), in place, by one gain: no limiter or
    compressor touches the sound. The gain stops where the sample peak reaches `ceiling_db`, so a
    render with a high crest factor lands under the target instead of clipping in a 24-bit file.

    -> (audio, {"loudness_in": LUFS before (None: silent), "gain_db": applied, "loudness_out": after}).
    Audio shorter than one 400 ms block is measured as a single block."""
    import pyloudnorm  # BS.1770 gating and K-weighting; a small, well-kept library (numpy + scipy)

    if not (np.isfinite(target_lufs) and LOUDNESS_RANGE[0] <= target_lufs <= LOUDNESS_RANGE[1]):
        raise ValueError(f"loudness must be between {LOUDNESS_RANGE[0]:g} and {LOUDNESS_RANGE[1]:g} LUFS "
                         f"(got {target_lufs})")
    n = audio.shape[-1]
    if n == 0:
        return audio, {"loudness_in": None, "gain_db": 0.0, "loudness_out": None}
    meter = pyloudnorm.Meter(sr, block_size=min(0.4, n / sr))
    measured = float(meter.integrated_loudness(audio.T.astype(np.float64)))  # -inf: nothing over the gate
    peak = float(np.abs(audio).max())
    if not np.isfinite(measured) or peak == 0.0:  # silence (or everything under the -70 LUFS gate)
        return audio, {"loudness_in": None, "gain_db": 0.0, "loudness_out": None}
    gain_db = float(min(target_lufs - measured, ceiling_db - 20 * np.log10(peak)))
    audio *= np.float32(10 ** (gain_db / 20))
    return audio, {"loudness_in": round(measured, 2), "gain_db": round(gain_db, 2),
                   "loudness_out": round(measured + gain_db, 2)}


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
