"""Audio in and out: read any file soundfile can, resample with soxr, write atomically.

A file under an output name is always complete: it is written to a temporary name in the same
folder, fsynced, then renamed over the target (rename is atomic on POSIX and Windows).
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AudioInputError, AudioNotFound
from .limits import LIMITS

SUBTYPES = {"pcm16": "PCM_16", "pcm24": "PCM_24", "float32": "FLOAT"}


# Source audio (audio-to-audio, previews, corpora) is checked from its header before a sample is
# decoded, so what a file *declares* never decides what the reader allocates. 8 kHz is telephone
# speech, 192 kHz the highest rate studio converters record; a 16 kB file declaring 4 Hz is 2,000 s
# long and took 1.9 GB once resampled to 44.1 kHz. Four hours holds a whole set or an evening's
# bounce; a render reads only the window it uses of it (`load_audio(seconds=...)`).
SOURCE_RATE_RANGE = (8_000, 192_000)  # Hz
MAX_SOURCE_SECONDS = 4 * 3600.0
_MIX_BLOCK_FRAMES = 1 << 16  # frames read at a time when mixing many channels down


def source_limits_error(rate: float, seconds: float | None) -> str | None:
    """Why a source with this header is refused (a phrase to follow its name), or None if it is
    within SOURCE_RATE_RANGE and MAX_SOURCE_SECONDS. The one check of both limits: the bridge's
    door runs it on the header it sniffs, `load_audio` on the header libsndfile reads."""
    lo, hi = SOURCE_RATE_RANGE
    if not lo <= rate <= hi:
        return f"has a sample rate of {rate:g} Hz; Longplay reads {lo}-{hi} Hz"
    if seconds is not None and seconds > MAX_SOURCE_SECONDS:
        return f"is {seconds / 3600:.1f} hours long, longer than the {MAX_SOURCE_SECONDS / 3600:g} hours Longplay reads"
    return None


def load_audio(
    path: str | os.PathLike[str], *, seconds: float | None = None, channels: int | None = None
) -> tuple[np.ndarray, int]:
    """-> (float32 audio `[C, N]`, sample rate): the first `seconds` of the file, or all of it.

    The header is checked first (`source_limits_error`) and only the frames asked for are read, so
    memory follows what the caller uses, not what the file declares. With `channels`, a file with
    any other channel count is mixed to mono while it is read, as `conform` would mix it, so a
    header declaring 1,024 channels costs one. Bad files raise `AudioInputError` naming the file
    (`AudioNotFound` when there is none)."""
    import soundfile as sf

    p = Path(path)
    if not p.is_file():
        raise AudioNotFound(f"audio file not found: {p}")
    try:
        with sf.SoundFile(str(p)) as f:
            rate = int(f.samplerate)
            reason = source_limits_error(rate, f.frames / rate if rate > 0 else None)
            if reason is not None:
                raise AudioInputError(f"{p.name} {reason}")
            frames = f.frames if seconds is None else min(f.frames, math.ceil(max(seconds, 0.0) * rate))
            mix = channels is not None and f.channels not in (1, channels)
            audio = _read_mixed(f, frames) if mix else f.read(frames, dtype="float32", always_2d=True).T
    except AudioInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - libsndfile raises several types for bad input
        raise AudioInputError(f"{p.name} is not a readable audio file ({exc})") from exc
    if audio.shape[1] == 0:
        raise AudioInputError(f"{p.name} contains no audio samples")
    if not np.isfinite(audio).all():
        raise AudioInputError(f"{p.name} contains NaN or infinite samples")
    return np.ascontiguousarray(audio), rate


def _read_mixed(f: Any, frames: int) -> np.ndarray:
    """`frames` frames of an open SoundFile mixed to mono, a block at a time -> `[1, N]`."""
    out = np.empty((1, frames), dtype=np.float32)
    done = 0
    while done < frames:
        block = f.read(min(_MIX_BLOCK_FRAMES, frames - done), dtype="float32", always_2d=True)  # [n, C]
        if not len(block):
            break  # the header promised more than the file holds
        out[0, done : done + len(block)] = block.mean(axis=1)
        done += len(block)
    return out[:, :done]


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


def write_audio_atomic(
    path: str | os.PathLike[str],
    audio: np.ndarray,
    sr: int,
    subtype: str = "pcm24",
    riff_chunks: Sequence[tuple[bytes, bytes]] = (),
) -> Path:
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
        try:
            sf.write(tmp, np.ascontiguousarray(audio.T), sr, subtype=sub, format=fmt)
        except Exception as exc:  # noqa: BLE001 - re-raised, with the kernel's reason when there is one
            failure = _write_failure(tmp, target)
            if failure is None:
                raise
            raise failure from exc
        if riff_chunks:
            _append_riff_chunks(tmp, riff_chunks)
        _finish(tmp, target)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise _named(err, target) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


_PROBE_BYTES = 1 << 16  # more than a file system's block: a full disk cannot absorb it


def _write_failure(tmp: str, target: Path) -> OSError | None:
    """Why writing `tmp` failed, as the kernel says it. libsndfile reports every failed write(2) as
    "System error.", which tells a user nothing; writing a block more ourselves fails the same
    way and keeps the errno (ENOSPC on a full disk, EDQUOT over a quota, EFBIG past a file-size
    limit). None if that write succeeds: the failure was something else."""
    try:
        with open(tmp, "ab") as fh:
            fh.write(b"\0" * _PROBE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        return OSError(err.errno, err.strerror, str(target))
    return None


def _named(err: OSError, target: Path) -> OSError:
    """`err` naming the file it was writing (a failed write or fsync of an open file names none)."""
    return err if err.filename is not None else OSError(err.errno, err.strerror, str(target))


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
        audio[..., audio.shape[-1] - n :] *= ramp[::-1]
    return audio


PEAK_CEILING_DB = -1.0  # loudness gain never lifts a sample peak over this (dBFS)
LOUDNESS_RANGE = (LIMITS["loudness"].lo, LIMITS["loudness"].hi)  # accepted targets, LUFS


def normalize_loudness(
    audio: np.ndarray, sr: int, target_lufs: float, ceiling_db: float = PEAK_CEILING_DB
) -> tuple[np.ndarray, dict[str, float | None]]:
    """Scale `[C, N]` audio toward `target_lufs` integrated loudness (ITU-R BS.1770-4: K-weighting,
    400 ms blocks, absolute and relative gates, via pyloudnorm), in place, by one gain: no limiter or
    compressor touches the sound. The gain stops where the sample peak reaches `ceiling_db`, so a
    render with a high crest factor lands under the target instead of clipping in a 24-bit file.

    -> (audio, {"loudness_in": LUFS before (None: silent), "gain_db": applied, "loudness_out": after}).
    Audio shorter than one 400 ms block is measured as a single block."""
    import pyloudnorm  # BS.1770 gating and K-weighting; a small, well-kept library (numpy + scipy)

    if not (np.isfinite(target_lufs) and LOUDNESS_RANGE[0] <= target_lufs <= LOUDNESS_RANGE[1]):
        raise ValueError(
            f"loudness must be between {LOUDNESS_RANGE[0]:g} and {LOUDNESS_RANGE[1]:g} LUFS (got {target_lufs})"
        )
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
    return audio, {
        "loudness_in": round(measured, 2),
        "gain_db": round(gain_db, 2),
        "loudness_out": round(measured + gain_db, 2),
    }


def write_json_atomic(path: str | os.PathLike[str], data: Mapping[str, Any]) -> Path:
    target = Path(path)
    fd, tmp = _atomic_target(target)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
        _finish(tmp, target)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise _named(err, target) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks: what a recipe names a source or a
    LoRA by."""
    import hashlib

    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
