"""Output files a DAW can use: names that never overwrite, WAVs carrying their recipe and tempo.

Each render is written atomically by the engine (temp file, fsync, rename), so a file under an
output name is always complete. A WAV carries its recipe as a RIFF INFO comment (``ICMT``, JSON)
and, when the request had a tempo, an ACID chunk with tempo and beat count, so DAWs that read
ACID metadata (REAPER, Ableton, Bitwig, FL Studio) place it on the grid; a loop (``loop``) also
carries a ``smpl`` chunk whose one loop spans the whole file (the ACID chunk's one-shot flag is
off for every render: each is a loop to ACID). A JSON sidecar holds the
same recipe for every format.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from engine import RenderResult, write_audio_atomic, write_json_atomic

from .naming import output_name, sidecar_path
from .requests import JobSpec

try:
    from importlib.metadata import version as _version

    VERSION = _version("longplay")
except Exception:  # noqa: BLE001 - not installed (running from a checkout): fall back to the source version
    VERSION = "0.1.0"

SOFTWARE = f"Longplay {VERSION}"


def riff_info(fields: Mapping[bytes, str]) -> bytes:
    """The payload of a ``LIST`` chunk of type ``INFO``: NUL-terminated text sub-chunks."""
    out = bytearray(b"INFO")
    for cid, text in fields.items():
        data = text.encode("utf-8") + b"\0"
        out += cid + struct.pack("<I", len(data)) + data + b"\0" * (len(data) % 2)
    return bytes(out)


def acid_chunk(bpm: float, beats: int, beats_per_bar: int = 4) -> bytes:
    """An ACID chunk: a stretchable loop (not one-shot, no root note) of ``beats`` beats at ``bpm``."""
    flags = 0x04  # stretch on; 0x01 (one-shot) and 0x02 (root note set) off
    return struct.pack("<IHHfIHHf", flags, 60, 0x8000, 0.0, int(beats), 4, int(beats_per_bar), float(bpm))


def smpl_chunk(sample_rate: int, frames: int) -> bytes:
    """A ``smpl`` chunk with one forward loop over the whole file (start 0, end = the last sample,
    inclusive, as the format counts), played endlessly: samplers and DAWs that read it loop the file
    on import."""
    header = struct.pack("<9I", 0, 0, round(1e9 / sample_rate), 60, 0, 0, 0, 1, 0)
    return header + struct.pack("<6I", 0, 0, 0, max(0, frames - 1), 0, 0)


def parse_riff(path: Path) -> dict[bytes, bytes]:
    """Top-level RIFF chunks of a WAV file (id -> payload; the last wins). For tests and tools."""
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path} is not a RIFF/WAVE file")
    chunks: dict[bytes, bytes] = {}
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        chunks[cid] = data[pos + 8 : pos + 8 + size]
        pos += 8 + size + size % 2
    return chunks


def beats_of(spec: JobSpec, seconds: float) -> int | None:
    req = spec.request
    if req.bpm is None:
        return None
    if req.bars is not None:
        return req.bars * req.beats_per_bar
    return max(1, round(seconds * req.bpm / 60))


def _free(path: Path, taken: set[Path]) -> bool:
    return path not in taken and not path.exists() and not sidecar_path(path).exists()


def plan_paths(spec: JobSpec, seeds: Sequence[int], previous: Sequence[str] = ()) -> list[Path]:
    """One output path per variation. Paths planned by an earlier, interrupted attempt of the same
    job are reused (a file there is complete: it was renamed into place); other names are made
    unique with ``-1``, ``-2``… so nothing is ever overwritten."""
    folder = Path(spec.out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    taken: set[Path] = set()
    paths = []
    for v, seed in enumerate(seeds):
        if v < len(previous):
            old = Path(previous[v])
            if old.exists() or _free(old, taken):
                taken.add(old)
                paths.append(old)
                continue
        if spec.file:  # an exact path: the first variation there, the others beside it as _v<n>
            exact = Path(spec.file)
            base = exact if len(seeds) == 1 else exact.with_name(f"{exact.stem}_v{v + 1}{exact.suffix}")
        else:
            base = folder / output_name(
                spec.name, seed=seed, variation=v + 1, bpm=spec.request.bpm, bars=spec.request.bars, suffix=spec.suffix
            )
        path, n = base, 0
        while not _free(path, taken):
            n += 1
            path = base.with_name(f"{base.stem}-{n}{base.suffix}")
        taken.add(path)
        paths.append(path)
    return paths


def write_render(path: Path, result: RenderResult, spec: JobSpec, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Write one variation and its sidecar; -> the recipe. A complete file already at ``path``
    (from an interrupted attempt of this same job) is kept, not rewritten."""
    recipe = {
        **result.recipe,
        **extra,
        "file": path.name,
        "format": spec.format,
        "name": spec.name,
        "software": SOFTWARE,
    }
    if not path.exists():
        chunks: list[tuple[bytes, bytes]] = []
        if path.suffix.lower() == ".wav":
            comment = json.dumps(recipe, sort_keys=True)  # ASCII: json escapes non-ASCII prompts
            chunks.append(
                (
                    b"LIST",
                    riff_info(
                        {b"INAM": spec.name, b"ISFT": SOFTWARE, b"ICRD": time.strftime("%Y-%m-%d"), b"ICMT": comment}
                    ),
                )
            )
            beats = beats_of(spec, result.seconds)
            if beats is not None and spec.request.bpm is not None:
                chunks.append((b"acid", acid_chunk(spec.request.bpm, beats, spec.request.beats_per_bar)))
            if spec.request.loop:
                chunks.append((b"smpl", smpl_chunk(result.sample_rate, result.audio.shape[-1])))
        write_audio_atomic(path, result.audio, result.sample_rate, spec.subtype, riff_chunks=chunks)
    side = sidecar_path(path)
    if not side.exists():
        write_json_atomic(side, recipe)
    return recipe


def clean_temp_files(folder: Path, stem_prefix: str) -> int:
    """Remove the engine's temp files (``.<stem>.<random>.part``) left in ``folder`` by a killed
    process for outputs whose name starts with ``stem_prefix``; -> how many were removed."""
    removed = 0
    if folder.is_dir():
        for p in folder.glob(f".{stem_prefix}*.part"):
            p.unlink(missing_ok=True)
            removed += 1
    return removed


def write_status(folder: Path, job_id: str, status: Mapping[str, Any]) -> Path:
    """``<id>.status`` (JSON) in ``folder``, replaced atomically on every change."""
    return write_json_atomic(folder / f"{job_id}.status", {**status, "updated": time.time()})
