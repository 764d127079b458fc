"""The tempo check: every render asked for a tempo is beat-tracked once it is made, and with
`snap` time-stretched onto the exact grid when the model played it a little off.

`Generator.render` wraps both model paths in a `Checking` (one place every render passes): the
render's own progress takes the first 95 % of the bar, then stage "checking" reports each
variation heard, cancel is honoured between them, and "done" goes out last. Each result's recipe
gets ``tempo_check``:

    {"asked_bpm": 124.0, "bpm": 123.87, "error": -0.0011, "first_downbeat_s": 0.035,
     "confidence": 0.77, "verdict": "on tempo", "analysed_s": 60.0}

- ``bpm``: what `engine.beats.hear` heard (the asked tempo as its hint), or None when the audio is
  shorter than the tracker needs (`beats.MIN_SECONDS`).
- ``error``: relative, against the asked tempo *at the heard metrical level*: a render heard at
  half time is compared with half the asked tempo (so a steady half-time groove has error ~0 and
  the verdict "half time").
- ``verdict``: "no clear beat" (confidence under `MIN_CONFIDENCE`), "on tempo" (|error| within
  `ON_TEMPO`), "off by +1.4 %" (faster; "-" slower), "half time" / "double time" (heard at half or
  twice the asked tempo within `LEVEL_TOLERANCE`, then ", off by …" when off it too), or "too short
  to hear". Thresholds (measured here): noise, a held tone and drumless longplay-mini renders
  score confidence 0.00-0.04, its drum renders 0.38-0.87 and a clean test groove 0.9, so 0.2
  separates "no beat" from "a beat"; the tracker's tempo is off by 0.02 % on the test groove and
  by a median 0.05 % on corpus mixes, so 0.2 % is a tolerance it can vouch for (0.2 % drifts
  32 ms over 8 bars at 120 BPM, half a 32nd note).

Only the first `ANALYSE_SECONDS` are heard: the line through 60 s of beats is as precise as the
one through 285 s (0.02 % on the test groove either way), at a fifth of the cost (0.45 s vs
2.4 s on this 2-core CPU; a 285 s render takes ~27 s). A render longer than that is sampled on
one tempo grid (`engine.longform`); whether its later minutes drift is not heard here.

**Snap** (`RenderRequest.snap`): when |error| is over `SNAP_MIN` (the "on tempo" tolerance) and
under `SNAP_MAX`, and the confidence is at least `SNAP_CONFIDENCE`, the audio is time-stretched
(pedalboard's Rubber Band, pitch kept) by ``ratio = 1 / (1 + error)`` and cut to exactly the
samples it had, so a bar-exact render stays bar-exact. Sped up, the audio would end short: it is
first extended by repeating its last whole bars (at the heard tempo, joined with a short
crossfade), so it ends in time. The render's end fades are applied again and its loudness
normalized again (the stretch moves peaks a little). The result is heard again, and
``tempo_check`` describes the file as written, with ``snapped = {"from_bpm", "ratio"}``; a render
that was not snapped says why in ``not_snapped``. 8 % is where the model played another tempo
rather than this one a little off (longplay-mini's median error is 0.8 %), and the further a
stretch goes the more it colours the sound; under 0.3 confidence the heard tempo is not sure
enough to move audio by. The stretch (Rubber Band's high-quality engine) costs ~3 s per minute of
audio on this CPU (15 s for 285 s, about what rendering it took), so only a render asked to snap
pays it. Loops are never stretched: their
seam would open (they are fitted to their grid by construction, `engine/loops.py`); nor are
extends and replaces (`engine/edit.py` keeps their source's samples as they were).
"""

from __future__ import annotations

import dataclasses
import math
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import beats
from .audio_io import fade_edges, normalize_loudness
from .errors import RenderCancelled, RequestError
from .request import Progress, ProgressFn, RenderRequest, RenderResult, check_value, grid_bpm

ANALYSE_SECONDS = 60.0  # heard from the start of each render
ON_TEMPO = 0.002  # |error| within 0.2 %: on tempo
LEVEL_TOLERANCE = 0.08  # within 8 % of half or twice the asked tempo: heard at half / double time
MIN_CONFIDENCE = 0.2  # under it: "no clear beat"
SNAP_MIN = ON_TEMPO  # snapped when off by more than this ...
SNAP_MAX = 0.08  # ... and less than this ...
SNAP_CONFIDENCE = 0.3  # ... and heard at least this surely
CHECK_SHARE = 0.05  # of the progress bar, for hearing (and snapping) every variation
SEAM_SECONDS = 0.02  # crossfade where a repeated bar joins the end of a render sped up by a snap


@dataclass(frozen=True)
class TempoCheck:
    """What was heard in one render, against the tempo it was asked for."""

    asked_bpm: float
    bpm: float | None
    error: float | None  # relative, at the heard metrical level (see the module doc)
    first_downbeat_s: float | None
    confidence: float
    verdict: str
    level: float = 1.0  # heard tempo / asked: 1, 0.5 (half time) or 2 (double time)
    analysed_s: float = 0.0  # seconds heard, from the start

    def as_dict(self) -> dict[str, Any]:
        return {
            "asked_bpm": self.asked_bpm,
            "bpm": None if self.bpm is None else round(float(self.bpm), 3),
            "error": None if self.error is None else round(float(self.error), 5),
            "first_downbeat_s": None if self.first_downbeat_s is None else round(float(self.first_downbeat_s), 4),
            "confidence": round(float(self.confidence), 3),
            "verdict": self.verdict,
            "analysed_s": round(self.analysed_s, 2),
        }


def check_request(req: RenderRequest) -> None:
    """`snap` needs a tempo to snap to, and the check a bar length; a `RequestError` naming what is
    wrong before anything renders."""
    if req.snap and grid_bpm(req) is None:
        raise RequestError('snap needs a tempo: a bpm, or a prompt that names one ("124 BPM")')
    if grid_bpm(req) is not None:
        check_value("beats_per_bar", req.beats_per_bar)


def measure(audio: np.ndarray, sample_rate: int, asked_bpm: float, beats_per_bar: int = 4) -> TempoCheck:
    """Hear `audio` (`[C, N]`, its first `ANALYSE_SECONDS`) with the asked tempo as the hint."""
    head = audio[..., : int(round(ANALYSE_SECONDS * sample_rate))]
    heard_s = head.shape[-1] / sample_rate
    if heard_s < beats.MIN_SECONDS:  # the tracker needs a few beats (and librosa would load for nothing)
        return TempoCheck(asked_bpm, None, None, None, 0.0, "too short to hear", analysed_s=heard_s)
    with warnings.catch_warnings():  # librosa's chroma on a beatless, toneless render: harmless
        warnings.filterwarnings("ignore", "Trying to estimate tuning", UserWarning)
        heard = beats.hear(head, sample_rate, asked_bpm, beats_per_bar)
    if heard is None:
        return TempoCheck(asked_bpm, None, None, None, 0.0, "no clear beat", analysed_s=heard_s)
    return dataclasses.replace(
        judge(asked_bpm, float(heard.bpm), heard.first_downbeat, heard.confidence), analysed_s=heard_s
    )


def judge(asked_bpm: float, bpm: float, first_downbeat_s: float | None, confidence: float) -> TempoCheck:
    """The verdict on a heard tempo (see the module doc for the thresholds)."""
    level = min((1.0, 0.5, 2.0), key=lambda lv: abs(math.log(bpm / (asked_bpm * lv))))
    if abs(bpm / (asked_bpm * level) - 1) > LEVEL_TOLERANCE:
        level = 1.0  # far from any reading: just off
    error = bpm / (asked_bpm * level) - 1
    if confidence < MIN_CONFIDENCE:
        verdict = "no clear beat"
    else:
        off = f"off by {error * 100:+.{2 if abs(error) < 0.01 else 1}f} %"  # +0.35 %, +1.4 %
        name = {0.5: "half time", 2.0: "double time"}.get(level)
        if abs(error) <= ON_TEMPO:
            verdict = name or "on tempo"
        else:
            verdict = f"{name}, {off}" if name else off
    return TempoCheck(asked_bpm, bpm, error, first_downbeat_s, confidence, verdict, level)


def snap_reason(check: TempoCheck, req: RenderRequest) -> str | None:
    """Why `check`'s render is not snapped, or None when it should be."""
    if req.loop:
        return "a loop is fitted to its grid already (a stretch would open its seam)"
    if getattr(req, "edit", None):  # engine/edit.py keeps the source's samples outside the edit
        return "an extend or replace keeps its source's samples as they were (a stretch would move them)"
    if check.error is None:
        return check.verdict
    if check.confidence < SNAP_CONFIDENCE:
        return f"the beat is not clear enough (confidence {check.confidence:.2f} < {SNAP_CONFIDENCE})"
    if abs(check.error) <= SNAP_MIN:
        return "on tempo already"
    if abs(check.error) >= SNAP_MAX:
        return f"off by {check.error * 100:+.1f} %, more than a snap corrects ({SNAP_MAX * 100:g} %)"
    return None


def stretch_to_grid(audio: np.ndarray, sample_rate: int, ratio: float, bar_seconds: float) -> np.ndarray:
    """`[C, N]` audio time-stretched by `ratio` (> 1: faster), pitch kept, exactly N samples long.

    Sped up, the audio is first extended by its last whole bars (`bar_seconds` at the heard tempo,
    so the beat runs on across the join), crossfaded over `SEAM_SECONDS`, so it ends in time."""
    import pedalboard  # imported only when a render is snapped (`import engine` stays light)

    x = np.ascontiguousarray(audio, dtype=np.float32)
    n = x.shape[-1]
    if ratio > 1:
        bar = max(1, int(round(bar_seconds * sample_rate)))
        seam = min(int(SEAM_SECONDS * sample_rate), bar // 4)
        length = bar * (int(math.ceil((n * ratio - n) / bar)) + 1)  # one bar spare for the stretcher's edge
        if length + seam <= n:
            tail = x[:, n - length - seam :].copy()  # [C, seam + length]: the last bars and a seam before them
            ramp = np.linspace(0.0, 1.0, seam, dtype=np.float32)
            tail[:, :seam] = tail[:, :seam] * ramp + x[:, n - seam :] * (1 - ramp)
            x = np.concatenate([x[:, : n - seam], tail], axis=-1)  # [C, n + length]
        else:  # shorter than the bars it needs (a bar or two): repeat it whole
            x = np.tile(x, (1, 2 + length // n))
    out = pedalboard.time_stretch(x, float(sample_rate), stretch_factor=float(ratio))  # [C, ~len / ratio]
    if out.shape[-1] < n:
        out = np.pad(out, ((0, 0), (0, n - out.shape[-1])))
    return np.ascontiguousarray(out[:, :n], dtype=np.float32)


def snap(
    result: RenderResult, req: RenderRequest, check: TempoCheck
) -> tuple[RenderResult, TempoCheck, dict[str, Any]]:
    """`result` stretched onto the asked grid; -> (new result, the check of the new audio, the
    recipe's ``snapped``)."""
    assert check.bpm is not None and check.error is not None
    ratio = 1.0 / (1.0 + check.error)
    rate = result.sample_rate
    bar_seconds = req.beats_per_bar * 60.0 / check.bpm
    audio = stretch_to_grid(result.audio, rate, ratio, bar_seconds)
    fade_edges(audio, round(req.fade_ms * rate / 1000))
    recipe = dict(result.recipe)
    if req.loudness is not None:
        recipe.update(normalize_loudness(audio, rate, req.loudness)[1])
    after = measure(audio, rate, check.asked_bpm, req.beats_per_bar)
    snapped = {"from_bpm": round(check.bpm, 3), "ratio": round(ratio, 6)}
    new = RenderResult(audio, rate, result.seed, result.seconds, result.variation, recipe)
    return new, after, snapped


def heard_tempo(recipe: dict[str, Any]) -> float | None:
    """The tempo a render without a bpm was made to play: the grid it played on (audio-to-audio on
    a model with a tempo grid: the source's tempo as heard, halved for a take heard at double time),
    else the tempo heard in its source (`source_tempo`, an edit's `edit_bpm`)."""
    source = recipe.get("source_tempo")
    for bpm in (
        recipe.get("grid_bpm"),
        source.get("bpm") if isinstance(source, dict) else None,
        recipe.get("edit_bpm"),
    ):
        if isinstance(bpm, (int, float)) and bpm > 0:
            return float(bpm)
    return None


class Checking:
    """The tempo check around one `Generator.render` call (see the module doc).

    `report` and `cancel` go to the model path; `finish(results)` hears them and reports "done"."""

    def __init__(self, request: RenderRequest, on_progress: ProgressFn | None, cancel: threading.Event | None):
        check_request(request)
        self.request = request
        self.asked = grid_bpm(request)
        # Audio-to-audio and edits without a bpm play the tempo heard in their source (the
        # recipe's `source_tempo` / `edit_bpm`): that is the tempo they are checked against.
        self.maybe = self.asked is not None or bool(request.init_audio) or request.edit is not None
        self.cancel = cancel or threading.Event()
        self._report: ProgressFn = on_progress or (lambda p: None)
        self.report: ProgressFn = self._scaled if self.maybe else self._report

    def _scaled(self, p: Progress) -> None:
        """The render's own progress, in the first 95 % of the bar; its "done" waits for the check."""
        if p.stage != "done":
            self._report(Progress(p.stage, p.step, p.total, p.variation, p.variations, p.fraction * (1 - CHECK_SHARE)))

    def finish(self, results: list[RenderResult]) -> list[RenderResult]:
        """Hear (and snap) each result; -> the results, each recipe with ``tempo_check``."""
        if not self.maybe:
            return results
        n = len(results)
        out = []
        for i, result in enumerate(results):
            self._progress(i, n)
            asked = self.asked or heard_tempo(result.recipe)
            out.append(self._check_one(result, asked) if asked else result)
        self._progress(n, n)
        self._report(Progress("done", 1, 1, n, n, 1.0))
        return out

    def _progress(self, i: int, n: int) -> None:
        if self.cancel.is_set():
            raise RenderCancelled("render cancelled")
        self._report(Progress("checking", i, n, min(i, n - 1), n, 1 - CHECK_SHARE + CHECK_SHARE * i / max(n, 1)))

    def _check_one(self, result: RenderResult, asked: float) -> RenderResult:
        req = self.request
        check = measure(result.audio, result.sample_rate, asked, req.beats_per_bar)
        extra: dict[str, Any] = {}
        if req.snap:
            reason = snap_reason(check, req)
            if reason is None:
                result, check, extra["snapped"] = snap(result, req, check)
            else:
                extra["not_snapped"] = reason
        result.recipe["tempo_check"] = {**check.as_dict(), **extra}
        return result
