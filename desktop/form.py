"""The render form's state: what a producer set, checked with the bridge's own validators.

``FormModel`` holds plain values (no widgets) and turns them into the same key/values an OSC
message or a drop-folder JSON carries, so the GUI, a DAW and the drop folder are validated by one
function (``bridge.requests.parse_request``) and refused with the same one-line reasons.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from bridge.errors import UsageError
from bridge.loudness import DEFAULT_LOUDNESS
from bridge.requests import DEFAULT_STRENGTH, LIMITS, JobSpec, Limits, parse_request

log = logging.getLogger("longplay.desktop")

SEED_MAX = int(LIMITS["seed"].hi)  # variation i renders with seed + i
LENGTH_MODES = ("seconds", "bars")


@dataclass(frozen=True)
class FormValues:
    prompt: str = ""
    negative: str = ""
    length_mode: str = "seconds"  # "seconds" | "bars"
    seconds: float = 30.0
    bars: int = 8
    bpm: float = 120.0
    beats_per_bar: int = 4
    seed: int = 0  # the locked seed; when unlocked, the last seed used (shown, not sent)
    seed_locked: bool = False
    steps: int = 100
    cfg: float = 7.0
    variations: int = 1
    init_audio: str = ""  # audio-to-audio source ("" = text-to-audio)
    init_strength: float = DEFAULT_STRENGTH
    normalize: bool = True  # bring each render to `loudness` LUFS; off: the model's own level
    loudness: float = DEFAULT_LOUDNESS
    loop: bool = False  # bars mode: a seamless loop of exactly `bars` bars (engine/loops.py)
    snap: bool = False  # stretch a render heard a little off its tempo onto the grid (engine/tempo_check.py)
    lora: str = ""  # a LoRA .safetensors for Stable Audio 3 models ("" = none)
    lora_scale: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FormValues:
        """Stored values of the right type are kept; anything else keeps its default."""
        defaults = cls()
        kept: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = data.get(f.name)
            default = getattr(defaults, f.name)
            if value is None or isinstance(value, bool) != isinstance(default, bool):
                continue
            if isinstance(default, float) and isinstance(value, (int, float)):
                kept[f.name] = float(value)
            elif type(value) is type(default):
                kept[f.name] = value
        if kept.get("length_mode", "seconds") not in LENGTH_MODES:
            kept.pop("length_mode")
        return cls(**kept)


class FormModel(QObject):
    """The form's values, the message to show under it, and the last seed used.

    ``changed`` fires only when a value really changes; ``message_changed`` when the text under
    the form does (a validation error, or "" when all is well)."""

    changed = Signal()
    message_changed = Signal(str)
    source_message_changed = Signal(str)  # about the audio-to-audio source (shown at the drop zone)
    limits_changed = Signal()  # a model loaded: its window bounds the length

    def __init__(self, values: FormValues | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.values = values or FormValues()
        self.limits = Limits()
        self.message = ""
        self.source_message = ""
        self.last_seed: int | None = None
        self._attempted = False  # "prompt must not be empty" waits until the first Generate
        self._untouched = {"steps", "cfg"}  # fields a newly loaded model may set to its defaults

    # ------------------------------------------------------------------ values
    def update(self, **changes: Any) -> None:
        """Set fields by name; unknown names are a bug (TypeError)."""
        new = dataclasses.replace(self.values, **changes)
        if new == self.values:
            return
        self._untouched -= {k for k in changes if getattr(new, k) != getattr(self.values, k)}
        self.values = new
        self.changed.emit()
        self.revalidate()

    def set_limits(self, limits: Limits) -> None:
        """A model loaded: its window is the longest render; a longer seconds value is cut to it."""
        self.limits = limits
        self.limits_changed.emit()
        if self.values.seconds > limits.max_seconds:
            self.update(seconds=float(int(limits.max_seconds * 10) / 10))
        self.revalidate()

    def apply_model_defaults(self, defaults: Mapping[str, Any]) -> None:
        """A freshly loaded model's steps and CFG, for fields the user has not set."""
        changes: dict[str, Any] = {}
        if "steps" in self._untouched and isinstance(defaults.get("steps"), int):
            changes["steps"] = int(defaults["steps"])
        if "cfg" in self._untouched and isinstance(defaults.get("cfg"), (int, float)):
            changes["cfg"] = float(defaults["cfg"])
        if changes:
            keep = set(self._untouched)
            self.update(**changes)
            self._untouched = keep

    def mark_restored(self, saved: Mapping[str, Any]) -> None:
        """Values came from the user's last session: a model's defaults must not replace them
        (fields the saved session did not hold still take the model's defaults)."""
        self._untouched = {k for k in self._untouched if saved.get(k) is None}

    def length_seconds(self) -> float:
        v = self.values
        if v.length_mode == "bars":
            return v.bars * v.beats_per_bar * 60.0 / v.bpm if v.bpm > 0 else 0.0
        return v.seconds

    # ------------------------------------------------------------------ requests
    def request_values(self) -> dict[str, Any]:
        """The form as the key/values of an OSC ``/longplay/render`` (or ``/transform``) request."""
        v = self.values
        out: dict[str, Any] = {
            "steps": v.steps,
            "cfg": v.cfg,
            "variations": v.variations,
            "seed": v.seed if v.seed_locked else -1,
            "loudness": v.loudness if v.normalize else "off",
        }
        if v.prompt.strip() or not v.init_audio:  # a restyle without a prompt is named after its source
            out["prompt"] = v.prompt
        if v.negative.strip():
            out["negative"] = v.negative
        if v.length_mode == "bars":
            out.update(bars=v.bars, bpm=v.bpm, beats_per_bar=v.beats_per_bar)
            if v.loop:
                out["loop"] = True
        else:
            out["seconds"] = v.seconds
        if v.init_audio:
            out.update(source_path=v.init_audio, strength=v.init_strength)
        if v.snap:
            out["snap"] = True
        if v.lora.strip():
            out["lora"] = f"{v.lora.strip()}:{v.lora_scale:g}"
        return out

    def spec_factory(self, out_dir: str | Path, model_name: str = "") -> Callable[[], JobSpec]:
        """A function that validates the form as it is now, the source file included (it reads
        the file's header: call it off the GUI thread) -> the ``JobSpec`` to submit.
        ``UsageError`` names the first bad value."""
        values, limits, has_source = self.request_values(), self.limits, bool(self.values.init_audio)

        def build() -> JobSpec:
            if not values.get("prompt", "").strip() and not has_source:
                raise UsageError("write a prompt first")
            spec = parse_request(values, limits=limits, out_dir=out_dir)
            return dataclasses.replace(spec, extra={**spec.extra, "model": model_name}) if model_name else spec

        return build

    def check(self) -> str:
        """What is wrong with the form, without touching the disk ("" if nothing). Cheap: it runs
        on every change, on the GUI thread."""
        values = self.request_values()
        values.pop("source_path", None)
        values.pop("strength", None)
        values.pop("lora", None)  # its file is checked at Generate, as the source's
        if self.values.lora.strip() and not LIMITS["lora_scale"].contains(self.values.lora_scale):
            return f"lora scale must be {LIMITS['lora_scale'].describe()} (got {self.values.lora_scale:g})"
        if not values.get("prompt", "").strip():
            if self.values.init_audio:
                values["prompt"] = "-"  # a transform may run without a prompt
            elif not self._attempted:
                return ""
            else:
                return "write a prompt first"
        # Checked as a render (the source file is read only at Generate); audio-to-audio is bounded
        # by the window, so it is checked against a render limit of the window.
        limits = self.limits
        if self.values.init_audio:
            limits = dataclasses.replace(limits, max_seconds=limits.window, window_seconds=None)
        try:
            parse_request(values, limits=limits, out_dir=".")
        except UsageError as err:
            return str(err)
        return ""

    def revalidate(self) -> None:
        self.set_message(self.check())

    def attempt(self) -> str:
        """The user pressed Generate: from now on an empty prompt is reported. -> the problem."""
        self._attempted = True
        self.revalidate()
        return self.message

    def set_message(self, text: str) -> None:
        if text != self.message:
            self.message = text
            self.message_changed.emit(text)

    def set_source_message(self, text: str) -> None:
        if text != self.source_message:
            self.source_message = text
            self.source_message_changed.emit(text)

    # ------------------------------------------------------------------ seeds and recall
    def note_seed(self, seed: int) -> None:
        """A render started with ``seed``: show it; a locked seed stays what the user set."""
        self.last_seed = seed
        if not self.values.seed_locked:
            self.update(seed=seed)
        else:
            self.changed.emit()

    def recall(self, request: Any, seed: int) -> None:
        """Fill the form from a past render's ``RenderRequest`` so that Generate makes it again."""
        changes: dict[str, Any] = dict(
            prompt=request.prompt,
            negative=request.negative or "",
            seed=int(seed),
            seed_locked=True,
            variations=1,
            init_audio=request.init_audio or "",
            init_strength=float(request.init_strength),
            normalize=request.loudness is not None,
            snap=bool(getattr(request, "snap", False)),
            loop=bool(getattr(request, "loop", False)),
            lora=request.lora[0][0] if getattr(request, "lora", ()) else "",
            lora_scale=float(request.lora[0][1]) if getattr(request, "lora", ()) else 1.0,
        )
        if request.loudness is not None:
            changes["loudness"] = float(request.loudness)
        if request.steps is not None:
            changes["steps"] = int(request.steps)
        if request.cfg is not None:
            changes["cfg"] = float(request.cfg)
        if getattr(request, "edit", None):
            pass  # an extend's `bars` are the bars it added, not a length to render
        elif request.bars is not None and request.bpm is not None:
            changes.update(
                length_mode="bars",
                bars=int(request.bars),
                bpm=float(request.bpm),
                beats_per_bar=int(request.beats_per_bar),
            )
        elif request.seconds is not None:
            changes.update(length_mode="seconds", seconds=float(request.seconds))
        self.update(**changes)
