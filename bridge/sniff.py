"""Cheap checks of an audio file at the door: its container by magic bytes, its sample rate and
its length.

Reads at most a few kB with the standard library, so a network thread can check a source file
without decoding it. A header declaring a rate or a length past what Longplay reads
(``engine.source_limits_error``) is refused here, before anything is decoded; formats whose
header is not parsed here (RF64, Ogg) are checked by the engine from libsndfile's header at render
time. Decoding (and any deeper corruption) is the engine's business.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

from engine import source_limits_error

AUDIO_INPUT_SUFFIXES = (".wav", ".wave", ".flac", ".aif", ".aiff", ".ogg")
_HEAD = 4096
_MAX_CHUNKS = 64  # a real file has a handful of chunks before `data`


class AudioOutOfRange(ValueError):
    """Audio whose header declares a sample rate or a length Longplay does not read; the message
    is a phrase to follow the file's name ("has a sample rate of 4 Hz; …")."""


def sniff_audio(path: Path) -> tuple[str, float | None]:
    """-> (container, seconds or None when the header does not say). ValueError if not audio,
    ``AudioOutOfRange`` (a ValueError) if its rate or length is past the limits."""
    with open(path, "rb") as fh:
        head = fh.read(_HEAD)
    rate: float | None = None
    seconds: float | None = None
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        container = "wav"
        if head[:4] == b"RIFF":
            rate, seconds = _wav_header(path)
    elif head[:4] == b"fLaC":
        container = "flac"
        rate, seconds = _flac_header(head)
    elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        container = "aiff"
        rate, seconds = _aiff_header(head)
    elif head[:4] == b"OggS":
        container = "ogg"
    else:
        raise ValueError("not a WAV, FLAC, AIFF or Ogg file")
    if rate is not None:
        reason = source_limits_error(rate, seconds)
        if reason is not None:
            raise AudioOutOfRange(reason)
    return container, seconds


def _wav_header(path: Path) -> tuple[float | None, float | None]:
    """Walk the RIFF chunks for `fmt ` and `data` -> (rate, seconds); None for what is missing or
    nonsensical. The rate counts as soon as `fmt ` is read, even if no `data` chunk follows."""
    rate = block = 0
    found_fmt = False
    with open(path, "rb") as fh:
        fh.seek(12)
        for _ in range(_MAX_CHUNKS):
            hdr = fh.read(8)
            if len(hdr) < 8:
                break
            cid, size = hdr[:4], struct.unpack("<I", hdr[4:])[0]
            if cid == b"fmt ":
                fmt = fh.read(min(size, 40))
                if len(fmt) < 16:
                    break
                _, _, rate, _, block = struct.unpack("<HHIIH", fmt[:14])
                found_fmt = True
                fh.seek(size - len(fmt) + size % 2, 1)
            elif cid == b"data":
                seconds = size / block / rate if rate and block else None
                return (float(rate) if found_fmt else None), seconds
            else:
                fh.seek(size + size % 2, 1)
    return (float(rate) if found_fmt else None), None


def _flac_header(head: bytes) -> tuple[float | None, float | None]:
    """STREAMINFO is the first metadata block: 20-bit rate and 36-bit total samples."""
    if len(head) < 8 + 34 or head[4] & 0x7F != 0:
        return None, None
    info = head[8 : 8 + 34]
    bits = int.from_bytes(info[10:18], "big")
    rate = bits >> 44
    total = bits & ((1 << 36) - 1)
    return float(rate), (total / rate if rate and total else None)


def _aiff_header(head: bytes) -> tuple[float | None, float | None]:
    """The `COMM` chunk (near the start of every AIFF): frames, and the rate as an 80-bit float."""
    pos = 12
    for _ in range(_MAX_CHUNKS):
        if pos + 8 > len(head):
            break
        cid, size = head[pos : pos + 4], struct.unpack(">I", head[pos + 4 : pos + 8])[0]
        if cid == b"COMM":
            comm = head[pos + 8 : pos + 8 + 18]
            if len(comm) < 18:
                break
            frames = struct.unpack(">I", comm[2:6])[0]
            exponent, mantissa = struct.unpack(">HQ", comm[8:18])
            power = (exponent & 0x7FFF) - 16383 - 63
            rate = math.ldexp(mantissa, power) if power < 64 else math.inf  # a garbage exponent overflows
            rate = -rate if exponent & 0x8000 else rate
            return rate, (frames / rate if 0 < rate < math.inf else None)
        pos += 8 + size + size % 2
    return None, None
