"""What a render is asked for and what it gives back: `RenderRequest`, `Progress`, `RenderResult`,
and the prompt readings every model path shares (negated clauses, a named tempo).

Split from `engine/pipeline.py` so the request's shape lives in one small file that the
Longplay/Stable Audio Open path (`pipeline.py`) and the Stable Audio 3 path (`sa3/render.py`) both read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import RequestError
from .limits import DEFAULT_STRENGTH, LIMITS


@dataclass(frozen=True)
class RenderRequest:
    """Everything that decides a render. Unset (None) values take the model's defaults."""

    prompt: str
    seconds: float | None = None
    negative: str = ""
    seed: int = -1
    steps: int | None = None
    cfg: float | None = None
    cfg_rescale: float = 0.0
    # The guidance scale of the key a prompt names, where the model's DiT adds the key token to
    # every token (`engine/dit.py` `guided_forward`); None: the model's default, else `cfg`.
    key_cfg: float | None = None
    cfg_interval: tuple[float, float] | None = None  # sigma range where CFG applies (None: all steps)
    sampler: str | None = None
    sigma_min: float | None = None
    sigma_max: float | None = None
    seconds_start: float = 0.0
    init_audio: str | None = None
    init_strength: float = DEFAULT_STRENGTH
    variations: int = 1
    # Tempo grid: with bars, the length is exactly round(bars * beats_per_bar * 60 / bpm * rate) samples.
    bpm: float | None = None
    bars: int | None = None
    beats_per_bar: int = 4
    # Raised-cosine fades at both ends, in milliseconds (0: none), so a cut file has no clicks.
    fade_ms: float = 0.0
    # Integrated loudness (LUFS, ITU-R BS.1770) each render is brought to by one gain, peaks kept
    # under -1 dBFS (`audio_io.normalize_loudness`); None keeps the level the model renders at.
    # The engine's default is None, as Stable Audio's own sampling; the doors default to -14.
    loudness: float | None = None
    # A seamless loop of exactly `bars` bars at `bpm` (engine/loops.py): it plays end-to-start
    # without a seam; no fades (they would dip at the seam).
    loop: bool = False
    # Extend or replace (engine/edit.py): "extend" adds `bars` bars to the end of `edit_source`;
    # "replace" regenerates its bars `from_bar` to `to_bar` (1-based, inclusive). The rest of the
    # source is kept bit for bit; the tempo is `bpm`, else the one heard in the source.
    edit: str | None = None
    edit_source: str | None = None
    from_bar: int | None = None
    to_bar: int | None = None
    # LoRA files (Stable Audio 3 models only), each (path to a release .safetensors, strength),
    # applied in order for this render only; the base weights are left as they were.
    lora: tuple[tuple[str, float], ...] = ()
    # Every render with a tempo is beat-tracked once made (`engine/tempo_check.py`: the recipe's
    # `tempo_check`); with snap, one heard a little off the asked tempo (0.2-8 %, clearly) is
    # time-stretched onto the exact grid, keeping its length in samples.
    snap: bool = False


@dataclass(frozen=True)
class Progress:
    """One progress event: stage is loading | conditioning | sampling | decoding | checking (the
    tempo check, `engine/tempo_check.py`) | done."""

    stage: str
    step: int
    total: int
    variation: int
    variations: int
    fraction: float


@dataclass
class RenderResult:
    audio: np.ndarray  # [C, N] float32
    sample_rate: int
    seed: int
    seconds: float
    variation: int
    recipe: dict[str, Any] = field(default_factory=dict)


ProgressFn = Callable[[Progress], None]

# Share of one variation's progress bar spent sampling; decoding takes the rest (every model path).
SAMPLE_SHARE = 0.9


_BPM_PATTERNS = (
    re.compile(r"(\d{2,3}(?:\.\d+)?)\s*bpm\b", re.IGNORECASE),
    re.compile(r"\bbpm\s*[:=]?\s*(\d{2,3}(?:\.\d+)?)", re.IGNORECASE),
)


# "no drums", "without vocals", "w/o percussion" as a clause of its own (comma- or |-separated);
# "beatless"/"drumless" say "no drums" in one word.
_NEGATION = re.compile(r"^(?:no|without|w/o)\s+(?P<what>\S.*)$", re.IGNORECASE)
_NEGATING_WORDS = {"beatless": "drums", "drumless": "drums"}
_NOT_NEGATIONS = {"no wave"}  # a genre, not a request


def split_negations(prompt: str) -> tuple[str, list[str]]:
    """("house, 124 BPM, no drums") -> ("house, 124 BPM", ["drums"]): negated clauses taken out.

    Text encoders learn what captions name, not what they deny (CLAP's and T5's users know it;
    ours, trained from scratch on bytes, is no different): "hip hop, 93 BPM, no drums" rendered as
    percussive as "... , drums" (percussive ratio 0.27 vs 0.27 over 4 seeds), while
    "hip hop, 93 BPM" with the negative prompt "drums" fell to 0.09 and "ambient" with it to
    0.03 (0.09 with "no drums" in the prompt). So the generator moves each negated clause into
    the negative prompt, where classifier-free guidance steers away from it. Clauses are split on
    the separators our prompts use (`,` and `|`); anything else is left as written.
    """
    kept: list[str] = []
    negated: list[str] = []
    for part in re.split(r"([,|])", prompt):
        clause = part.strip()
        m = None if clause.lower() in _NOT_NEGATIONS else _NEGATION.match(clause)
        word = _NEGATING_WORDS.get(clause.lower())
        if m is not None or word is not None:
            negated.append(m.group("what") if m is not None else str(word))
            if kept and kept[-1] in ",|":
                kept.pop()  # the separator before the clause goes with it
            continue
        if not kept and part in ",|":
            continue  # a prompt that started with a negation: no leading separator
        kept.append(part)
    return "".join(kept).strip(), list(dict.fromkeys(negated))


@dataclass(frozen=True)
class Prompts:
    """What a render is conditioned on: the prompt without its negated clauses, and the negative
    prompt (the request's own, then those clauses; `split_negations` says why)."""

    prompt: str
    negative: str
    moved: bool  # the prompt had negated clauses, now in the negative prompt

    def recipe(self) -> dict[str, Any]:
        """The recipe's `conditioned_on`, when it differs from what was asked."""
        return {"conditioned_on": {"prompt": self.prompt, "negative": self.negative}} if self.moved else {}


def prompts(req: RenderRequest) -> Prompts:
    prompt, negated = split_negations(req.prompt)
    negative = ", ".join(([req.negative.strip()] if req.negative.strip() else []) + negated)
    return Prompts(prompt, negative, bool(negated))


def check_value(key: str, value: Any, what: str | None = None, allow_none: bool = False) -> None:
    """`value` within `LIMITS[key]`, else a `RequestError` naming it (`what`, default the key)."""
    if value is None and allow_none:
        return
    if not LIMITS[key].contains(value):
        raise RequestError(f"{what or key} must be {LIMITS[key].describe()} (got {value})")


def prompt_bpm(prompt: str) -> float | None:
    """The tempo a prompt names ("124 BPM", "bpm: 93", "90bpm"), if one within `LIMITS["bpm"]`."""
    for pattern in _BPM_PATTERNS:
        m = pattern.search(prompt)
        if m and LIMITS["bpm"].contains(float(m.group(1))):
            return float(m.group(1))
    return None


def grid_bpm(req: RenderRequest) -> float | None:
    """The tempo a render's beat grid uses: the request's `bpm`, else the one its prompt names."""
    return req.bpm if req.bpm is not None else prompt_bpm(req.prompt)
