"""Validation at the door: key/values from any door (OSC pairs, drop-folder JSON, a GUI form) ->
a typed ``JobSpec`` (the engine's ``RenderRequest`` plus where and how to write the files).

Every check names the argument, so a bad OSC packet is answered with
``/longplay/error <id> 400 "steps must be an integer between 1 and 500 (got 0)"``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Re-exported (`as`): desktop/ reads the engine's limits through this module, and docs/osc.md names
# `requests.MAX_VARIATIONS` (tests/bridge/test_osc_docs.py imports what the doc names).
from engine import (
    DEFAULT_STRENGTH as DEFAULT_STRENGTH,
    LIMITS as LIMITS,
    MAX_SEED as MAX_SEED,
    MAX_VARIATIONS as MAX_VARIATIONS,
    SAMPLERS,
    Bound,
    RenderRequest,
    prompt_bpm,
)

from .errors import SourceNotFound, TooLong, UsageError
from .loudness import DEFAULT_LOUDNESS, parse_loudness
from .naming import slug
from .sniff import AudioOutOfRange, sniff_audio

MAX_REQUEST_BYTES = 64 * 1024  # a drop-folder request file; every key at its longest fits in 16 kB
MAX_SOURCE_PATH = 4096  # characters of a transform's source_path (Linux's PATH_MAX)
# Request ids become file names (`<id>.status`): letters, digits, dot, dash, underscore.
ID_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_NAME_BAD = re.compile(r"[/\\\x00-\x1f\x7f]")

# format -> (file suffix, engine sample format). 24-bit PCM WAV unless asked otherwise.
FORMATS: dict[str, tuple[str, str]] = {
    "wav": (".wav", "pcm24"),
    "wav24": (".wav", "pcm24"),
    "wav16": (".wav", "pcm16"),
    "wav32f": (".wav", "float32"),
    "float": (".wav", "float32"),
    "flac": (".flac", "pcm24"),
    "flac24": (".flac", "pcm24"),
    "flac16": (".flac", "pcm16"),
}
RENDER_KEYS = frozenset(
    {
        "prompt",
        "negative",
        "seconds",
        "bars",
        "bpm",
        "beats_per_bar",
        "seed",
        "steps",
        "cfg",
        "variations",
        "name",
        "format",
        "sampler",
        "fade_ms",
        "loudness",
        "lora",
        "loop",
        "snap",
    }
)
TRANSFORM_KEYS = frozenset({"source_path", "strength"})


@dataclass(frozen=True)
class Limits:
    """What the door accepts. ``max_seconds`` is the longest render: the loaded model's window, or
    longer when its windows can continue each other (``engine.longform``), and then
    ``window_seconds`` is the window, which still bounds audio-to-audio."""

    max_seconds: float = 47.55
    window_seconds: float | None = None  # None: the same as max_seconds
    max_prompt: int = int(LIMITS["prompt"].hi)
    max_name: int = int(LIMITS["name"].hi)
    allowed_roots: tuple[Path, ...] = ()  # empty: any readable file may be a source
    default_prompt: str = ""  # transform requests without a prompt
    default_strength: float = DEFAULT_STRENGTH
    default_fade_ms: float = 3.0
    default_loudness: float | None = DEFAULT_LOUDNESS

    @property
    def window(self) -> float:
        return self.max_seconds if self.window_seconds is None else min(self.window_seconds, self.max_seconds)

    def longest(self, transform: bool) -> tuple[float, str]:
        """(seconds, how to name it) a render (or an audio-to-audio one) may last."""
        if transform or self.max_seconds <= self.window + 1e-9:
            return self.window, f"this model's window of {self.window:.2f} s"
        return self.max_seconds, f"the longest render, {self.max_seconds:g} s"


@dataclass(frozen=True)
class JobSpec:
    """A validated job: what to render and how to name and write it. Seeds are always resolved,
    so a job run again after a crash renders the same audio under the same names."""

    request: RenderRequest
    name: str  # file-name stem, already safe (slug)
    format: str = "wav"
    out_dir: str = "outputs"
    random_seed: bool = False  # the client asked for -1; kept for the duplicate-id check
    extra: dict[str, Any] = field(default_factory=dict)
    # An exact path for the first variation (the CLI's `--out take.wav`; others `take_v2.wav` ...);
    # None: `<name>_..._s<seed>_v<n>` in out_dir.
    file: str | None = None

    @property
    def suffix(self) -> str:
        return FORMATS[self.format][0]

    @property
    def subtype(self) -> str:
        return FORMATS[self.format][1]

    def to_json(self) -> dict[str, Any]:
        return {
            "request": dataclasses.asdict(self.request),
            "name": self.name,
            "format": self.format,
            "out_dir": self.out_dir,
            "random_seed": self.random_seed,
            "extra": self.extra,
            **({"file": self.file} if self.file else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobSpec:
        known = {f.name for f in dataclasses.fields(RenderRequest)}
        req = {k: v for k, v in dict(data["request"]).items() if k in known}
        if req.get("cfg_interval") is not None:
            req["cfg_interval"] = tuple(req["cfg_interval"])
        if req.get("lora"):
            req["lora"] = tuple((str(p), float(s)) for p, s in req["lora"])
        return cls(
            RenderRequest(**req),
            str(data["name"]),
            str(data.get("format", "wav")),
            str(data["out_dir"]),
            bool(data.get("random_seed", False)),
            dict(data.get("extra", {})),
            str(data["file"]) if data.get("file") else None,
        )

    def fingerprint(self) -> str:
        """Equal for two submissions of the same request (a random seed counts as -1)."""
        d = self.to_json()
        if self.random_seed:
            d["request"]["seed"] = -1
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:32]


def check_id(value: Any, what: str = "req_id") -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise UsageError(
            f"{what} must be 1-64 letters, digits, '.', '_' or '-', not starting with '.' or '-' (got {show(value)})"
        )
    return value


def new_id() -> str:
    return secrets.token_hex(8)


def parse_request(
    values: Mapping[str, Any], *, limits: Limits, out_dir: str | os.PathLike[str], transform: bool | None = None
) -> JobSpec:
    """Check every key of a request and build its ``JobSpec``; ``UsageError`` (or its 404/413
    subclasses) names the first bad argument. ``transform`` defaults to "has a source_path"."""
    if not isinstance(values, Mapping):
        raise UsageError(f"a request must be a set of key/value pairs (got {type(values).__name__})")
    if "edit" in values:  # extend / replace: their own keys (bridge/edits.py)
        from .edits import parse_edit

        return parse_edit(values, limits, out_dir)
    transform = "source_path" in values if transform is None else transform
    allowed = RENDER_KEYS | TRANSFORM_KEYS if transform else RENDER_KEYS
    for key in values:
        if not isinstance(key, str) or key not in allowed:
            raise UsageError(f"unknown argument {show(key)}; expected some of {', '.join(sorted(allowed))}")
    v = dict(values)
    kw: dict[str, Any] = {}

    prompt = v.get("prompt", limits.default_prompt if transform else None)
    if prompt is None:
        raise UsageError("prompt is required")
    kw["prompt"] = as_text("prompt", prompt, limits.max_prompt)
    if not transform and not kw["prompt"].strip():
        raise UsageError("prompt must not be empty")
    if "negative" in v:
        kw["negative"] = as_text("negative", v["negative"], limits.max_prompt)

    _length(v, kw, limits, transform)
    seed = as_int("seed", v.get("seed", -1), -1, int(LIMITS["seed"].hi))
    kw["seed"] = seed if seed >= 0 else random_seed()
    if "steps" in v:
        kw["steps"] = bounded("steps", v["steps"])
    if "cfg" in v:
        kw["cfg"] = bounded("cfg", v["cfg"])
    kw["variations"] = bounded("variations", v.get("variations", 1))
    kw["fade_ms"] = bounded("fade_ms", v.get("fade_ms", limits.default_fade_ms))
    kw["loudness"] = parse_loudness(v.get("loudness", limits.default_loudness))
    if as_flag("loop", v.get("loop", False)):
        if "bars" not in kw or transform:
            raise UsageError("loop needs bars and a bpm, and renders from text (no source_path)")
        kw["loop"] = True
        kw["fade_ms"] = 0.0  # a loop has no ends to fade: a fade would dip at its seam
    if "lora" in v:
        from .lora_arg import parse_lora

        kw["lora"] = parse_lora(v["lora"], limits)
    if as_flag("snap", v.get("snap", False)):  # onto the asked tempo grid (engine/tempo_check.py)
        if "bpm" not in kw and prompt_bpm(kw["prompt"]) is None:
            raise UsageError('snap needs a tempo: a bpm, or a prompt that names one ("124 BPM")')
        kw["snap"] = True
    if "sampler" in v:
        kw["sampler"] = parse_sampler(v["sampler"])
    fmt = parse_format(v.get("format", "wav"))

    if transform:
        if "source_path" not in v:
            raise UsageError("source_path is required for a transform")
        source, source_seconds = check_source(v["source_path"], limits)
        kw["init_audio"] = str(source)
        if "seconds" not in kw and "bars" not in kw and source_seconds:
            kw["seconds"] = min(source_seconds, limits.window)  # keep the source's length
        kw["init_strength"] = bounded("strength", v.get("strength", limits.default_strength))
    name = check_name(v["name"], limits) if "name" in v else ""
    name = slug(name or (Path(kw["init_audio"]).stem if transform and "prompt" not in v else kw["prompt"]))
    return JobSpec(RenderRequest(**kw), name, fmt, str(Path(out_dir).resolve()), random_seed=seed < 0)


def parse_sampler(value: Any) -> str:
    sampler = as_text("sampler", value, 32)
    if sampler not in SAMPLERS:
        raise UsageError(f"sampler must be one of {', '.join(sorted(SAMPLERS))} (got {show(sampler)})")
    return sampler


def parse_format(value: Any) -> str:
    fmt = as_text("format", value, 16).lower()
    if fmt not in FORMATS:
        raise UsageError(f"format must be one of {', '.join(FORMATS)} (got {show(fmt)})")
    return fmt


def spec_from_request(
    request: RenderRequest, *, out_dir: str | os.PathLike[str], name: str | None = None, fmt: str = "wav"
) -> JobSpec:
    """A ``JobSpec`` for a ``RenderRequest`` built in-process (GUI, CLI); the seed is resolved here."""
    drawn = request.seed < 0
    if drawn:
        request = dataclasses.replace(request, seed=random_seed())
    if fmt not in FORMATS:
        raise UsageError(f"format must be one of {', '.join(FORMATS)} (got {show(fmt)})")
    return JobSpec(request, slug(name or request.prompt), fmt, str(Path(out_dir).resolve()), drawn)


def check_name(value: Any, limits: Limits) -> str:
    """An output name: text, no path separators, no traversal; it only ever names a file in the
    output folder (the file stem is a slug of it)."""
    name = as_text("name", value, limits.max_name)
    if _NAME_BAD.search(name) or ".." in name or name.startswith(".") or not name.strip():
        raise UsageError(
            f"name must be a plain file name: no path separators, '..', leading '.' or "
            f"control characters (got {show(name)})"
        )
    return name


def check_source(value: Any, limits: Limits) -> tuple[Path, float | None]:
    """A source file for audio-to-audio: an absolute path to a readable audio file, under an allowed
    root when roots are configured; -> (resolved path, its length in seconds if the header says).
    Missing files are 404, everything else 400."""
    text = as_text("source_path", value, MAX_SOURCE_PATH)
    if "\x00" in text or not text:
        raise UsageError("source_path must be a file path")
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # "~someone" for a user this machine does not know
        raise UsageError(f"source_path {show(text)} names an unknown user's home folder") from None
    if not path.is_absolute():
        raise UsageError(f"source_path must be an absolute path (got {show(text)})")
    real = Path(os.path.realpath(path))
    if limits.allowed_roots and not any(real.is_relative_to(Path(os.path.realpath(r))) for r in limits.allowed_roots):
        raise UsageError(f"source_path {show(text)} is outside the allowed source folders")
    try:  # stat can fail for reasons other than absence: a name too long, a loop, no permission
        exists = real.exists()
        readable = exists and real.is_file() and os.access(real, os.R_OK)
    except OSError as err:
        raise UsageError(f"source_path {show(text)} cannot be read ({err.strerror or err})") from None
    if not exists:
        raise SourceNotFound(f"source_path: no such file: {show(text)}")
    if not readable:
        raise UsageError(f"source_path {show(text)} is not a readable file")
    try:
        _, seconds = sniff_audio(real)
    except AudioOutOfRange as err:  # refused from its header, before anything is decoded
        raise UsageError(f"source_path {show(text)} {err}") from None
    except (OSError, ValueError) as err:
        raise UsageError(f"source_path {show(text)} is not readable audio ({err})") from None
    return real, seconds


def _length(v: dict[str, Any], kw: dict[str, Any], limits: Limits, transform: bool) -> None:
    """seconds, or bars + bpm (+ beats_per_bar); bpm alone only tags the file with a tempo."""
    if "bpm" in v:
        kw["bpm"] = bounded("bpm", v["bpm"])
    if "beats_per_bar" in v:
        kw["beats_per_bar"] = bounded("beats_per_bar", v["beats_per_bar"])
    if "bars" in v:
        if "seconds" in v:
            raise UsageError("seconds and bars are mutually exclusive")
        kw["bars"] = bars = bounded("bars", v["bars"])
        if "bpm" not in kw:
            raise UsageError("bars needs a bpm")
        seconds = bars * kw.get("beats_per_bar", 4) * 60 / kw["bpm"]
        longest, name = limits.longest(transform)
        if seconds > longest + 1e-9:
            raise TooLong(f"{bars} bars at {kw['bpm']:g} bpm is {seconds:.2f} s, longer than {name}")
    elif "seconds" in v:
        seconds = as_float("seconds", v["seconds"], 0, math.inf)
        if seconds <= 0:
            raise UsageError(f"seconds must be greater than 0 (got {seconds:g})")
        longest, name = limits.longest(transform)
        if seconds > longest + 1e-9:
            raise TooLong(f"seconds {seconds:g} is longer than {name}")
        kw["seconds"] = seconds


def random_seed() -> int:
    """A seed for a request that asked for a random one, leaving room for its variations."""
    return secrets.randbelow(int(LIMITS["seed"].hi) + 1)


def bounded(key: str, value: Any, bound: Bound | None = None) -> Any:
    """`value` checked against `LIMITS[key]` (or `bound`): an int for integer limits, else a float."""
    b = bound or LIMITS[key]
    return as_int(key, value, int(b.lo), int(b.hi)) if b.integer else as_float(key, value, b.lo, b.hi)


def as_text(key: str, value: Any, max_len: int) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{key} must be text (got {kind(value)})")
    if len(value) > max_len:
        raise UsageError(f"{key} is too long ({len(value)} characters; at most {max_len})")
    if "\x00" in value:
        raise UsageError(f"{key} must not contain NUL characters")
    return value


def as_float(key: str, value: Any, lo: float, hi: float) -> float:
    """A finite number in [lo, hi]; ints are accepted where floats are expected."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{key} must be a number (got {kind(value)})")
    x = float(value)
    if not math.isfinite(x):
        raise UsageError(f"{key} must be a finite number (got {x})")
    if not lo <= x <= hi:
        raise UsageError(f"{key} must be between {lo:g} and {hi:g} (got {x:g})")
    return x


def as_int(key: str, value: Any, lo: int, hi: int) -> int:
    """An integer in [lo, hi]; whole floats (20.0) pass, as some OSC controllers send only floats."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{key} must be an integer (got {kind(value)})")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise UsageError(f"{key} must be a whole number (got {value:g})")
    n = int(value)
    if not lo <= n <= hi:
        raise UsageError(f"{key} must be an integer between {lo} and {hi} (got {n})")
    return n


def as_flag(key: str, value: Any) -> bool:
    """On/off: true/false (JSON, OSC T/F), 1/0 (OSC controllers send numbers), or the words
    "true"/"false", "yes"/"no", "on"/"off", "1"/"0"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _FLAG_WORDS:
        return _FLAG_WORDS[value.strip().lower()]
    raise UsageError(f"{key} must be 1 or 0 (true or false) (got {kind(value)})")


_FLAG_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def kind(value: Any) -> str:
    return f"{type(value).__name__} {show(value)}"


def show(value: Any, limit: int = 60) -> str:
    """A short, printable rendering of a client's value for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
