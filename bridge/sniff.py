"""Cheap checks of an audio file at the door: its container by magic bytes, and its length.

Reads at most a few kB with the standard library, so a network thread can check a source file
without decoding it. Decoding (and any deeper corruption) is the engine's business at render time.
"""

from __future__ import annotations

import struct
from pathlib import Path

AUDIO_INPUT_SUFFIXES = (".wav", ".wave", ".flac", ".aif", ".aiff", ".ogg")
_HEAD = 4096


def sniff_audio(path: Path) -> tuple[str, float | None]:
    """-> (container, seconds or None when the header does not say). ValueError if not audio."""
    with open(path, "rb") as fh:
        head = fh.read(_HEAD)
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav", _wav_seconds(path) if head[:4] == b"RIFF" else None
    if head[:4] == b"fLaC":
        return "flac", _flac_seconds(head)
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff", None
    if head[:4] == b"OggS":
        return "ogg", None
    raise ValueError("not a WAV, FLAC, AIFF or Ogg file")


def _wav_seconds(path: Path) -> float | None:
    """Walk the RIFF chunks for `fmt ` and `data`; None if either is missing or nonsensical."""
    rate = block = 0
    with open(path, "rb") as fh:
        fh.seek(12)
        for _ in range(64):  # a real file has a handful of chunks before `data`
            hdr = fh.read(8)
            if len(hdr) < 8:
                return None
            cid, size = hdr[:4], struct.unpack("<I", hdr[4:])[0]
            if cid == b"fmt ":
                fmt = fh.read(min(size, 40))
                if len(fmt) < 16:
                    return None
                _, channels, rate, _, block = struct.unpack("<HHIIH", fmt[:14])
                fh.seek(size - len(fmt) + size % 2, 1)
            elif cid == b"data":
                return size / block / rate if rate and block else None
            else:
                fh.seek(size + size % 2, 1)
    return None


def _flac_seconds(head: bytes) -> float | None:
    """STREAMINFO is the first metadata block: 20-bit rate and 36-bit total samples."""
    if len(head) < 8 + 34 or head[4] & 0x7F != 0:
        return None
    info = head[8:8 + 34]
    bits = int.from_bytes(info[10:18], "big")
    rate = bits >> 44
    total = bits & ((1 << 36) - 1)
    return total / rate if rate and total else None
