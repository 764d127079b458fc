"""The render form's widgets: a thin skin over ``FormModel`` (every edit goes to the model; the
model's ``changed`` puts values back with signals blocked, so nothing loops)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from bridge.requests import LIMITS

from .backend import BROKEN, MISSING, READY, BridgeState
from .controller import Controller, ModelChoice
from .dropzone import DropZone
from .form import SEED_MAX
from .widgets import tool_button


def _range(key: str) -> tuple[Any, Any]:
    """The spin box range of a request key: the one table of limits (`engine.limits` via the bridge)."""
    b = LIMITS[key]
    return (int(b.lo), int(b.hi)) if b.integer else (float(b.lo), float(b.hi))


def _spin(lo: int, hi: int, suffix: str = "") -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setSuffix(suffix)
    s.setKeyboardTracking(False)
    return s


def _dspin(lo: float, hi: float, decimals: int, step: float, suffix: str = "") -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setDecimals(decimals)
    s.setSingleStep(step)
    s.setSuffix(suffix)
    s.setKeyboardTracking(False)
    return s


class FormView(QWidget):
    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.model = controller.form
        m = self.model

        # --- model picker
        self.model_combo = QComboBox()
        self.model_combo.setObjectName("modelCombo")
        self.add_model = tool_button("Add folder…")
        self.add_model.setToolTip("Use a model folder (model_config.json + model.safetensors)")
        self.model_status = QLabel()
        self.model_status.setObjectName("modelStatus")
        self.model_status.setWordWrap(True)

        # --- prompts
        self.prompt = QPlainTextEdit()
        self.prompt.setObjectName("prompt")
        self.prompt.setPlaceholderText("Describe the music: genre, instruments, mood, tempo…")
        self.prompt.setTabChangesFocus(True)
        self.prompt.setFixedHeight(72)
        self.negative = QLineEdit()
        self.negative.setPlaceholderText("What to keep out (optional)")

        # --- length
        self.by_seconds = tool_button("Seconds")
        self.by_bars = tool_button("Bars")
        for b in (self.by_seconds, self.by_bars):
            b.setCheckable(True)
        self.by_bars.setToolTip("A bar-exact length at a tempo, for loops that sit on the DAW's grid")
        self._modes = QButtonGroup(self)
        self._modes.addButton(self.by_seconds)
        self._modes.addButton(self.by_bars)
        self.seconds = _dspin(0.5, 600.0, 1, 1.0, " s")
        self.bars = _spin(*_range("bars"), " bars")
        self.bpm = _dspin(*_range("bpm"), 1, 1.0, " bpm")
        self.beats = _spin(*_range("beats_per_bar"), "/bar")
        self.beats.setToolTip("Beats per bar")
        self.length_note = QLabel()
        self.length_note.setObjectName("hint")
        bars_row = QWidget()
        bl = QHBoxLayout(bars_row)
        bl.setContentsMargins(0, 0, 0, 0)
        for w in (self.bars, QLabel("at"), self.bpm, self.beats):
            bl.addWidget(w)
        self.length_stack = QStackedWidget()
        self.length_stack.addWidget(self.seconds)
        self.length_stack.addWidget(bars_row)

        # --- seed and sampler
        self.seed = _spin(0, SEED_MAX)
        self.seed.setMinimumWidth(130)
        self.seed_lock = tool_button("Lock")
        self.seed_lock.setCheckable(True)
        self.seed_lock.setToolTip("Locked: every render uses this seed. Unlocked: a new random seed each time")
        self.seed_note = QLabel()
        self.seed_note.setObjectName("hint")
        self.seed_note.setWordWrap(True)  # a ten-digit seed must not widen the form
        self.steps = _spin(*_range("steps"))
        self.cfg = _dspin(*_range("cfg"), 1, 0.5)
        self.variations = _spin(*_range("variations"))
        self.variations.setToolTip("Renders per click, each with the next seed")
        self.normalize = QCheckBox("Normalize to")
        self.normalize.setToolTip(
            "One gain per render to this integrated loudness (ITU-R BS.1770), "
            "stopping before a peak passes -1 dBFS. Off: the model's own level"
        )
        self.loudness = _dspin(*_range("loudness"), 1, 1.0, " LUFS")
        self.snap = QCheckBox("Snap to the grid")
        self.snap.setObjectName("snap")
        self.snap.setToolTip(
            "Each render with a tempo is beat-tracked. Snap: one heard 0.2-8 % off the tempo is "
            "time-stretched onto the exact grid, keeping its length (needs a BPM: bars mode, or one in the prompt)"
        )
        self.loop = QCheckBox("Loop")
        self.loop.setObjectName("loop")
        self.loop.setToolTip(
            "Bars mode: a loop of exactly these bars that plays end-to-start without a seam "
            "(the WAV carries a loop point for samplers and DAWs)"
        )
        self.lora = QLineEdit()
        self.lora.setObjectName("lora")
        self.lora.setPlaceholderText("LoRA .safetensors path (Stable Audio 3 models; optional)")
        self.lora_scale = _dspin(*_range("lora_scale"), 2, 0.1)
        self.lora_scale.setToolTip("LoRA strength: 0 off, 1 as trained")

        # --- audio-to-audio, generate
        self.dropzone = DropZone(controller)
        self.generate = QPushButton("Generate")
        self.generate.setObjectName("generate")
        self.generate.setToolTip("Render with these settings (Ctrl+Enter)")
        self.generate.setMinimumHeight(38)
        self.message = QLabel()
        self.message.setObjectName("error")
        self.message.setWordWrap(True)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        form.setHorizontalSpacing(10)
        form.setVerticalSpacing(8)
        form.addRow("Model", _row(self.model_combo, self.add_model, stretch=0))
        form.addRow("", self.model_status)
        form.addRow("Prompt", self.prompt)
        form.addRow("Negative", self.negative)
        form.addRow("Length", _row(self.by_seconds, self.by_bars, self.length_stack, stretch=2))
        form.addRow("", self.length_note)
        form.addRow("Seed", _row(self.seed, self.seed_lock, self.seed_note, stretch=2))
        form.addRow("Steps", _row(self.steps, QLabel("CFG"), self.cfg, QLabel("Variations"), self.variations))
        form.addRow("Level", _row(self.normalize, self.loudness))
        form.addRow("Tempo", _row(self.loop, self.snap))
        form.addRow("LoRA", _row(self.lora, QLabel("Scale"), self.lora_scale, stretch=0))
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addLayout(form)
        outer.addWidget(self.dropzone)
        outer.addSpacing(4)
        outer.addWidget(self.generate)
        outer.addWidget(self.message)

        # --- edits go to the model
        self.prompt.textChanged.connect(lambda: m.update(prompt=self.prompt.toPlainText()))
        self.negative.textEdited.connect(lambda t: m.update(negative=t))
        self.by_seconds.clicked.connect(lambda: m.update(length_mode="seconds"))
        self.by_bars.clicked.connect(lambda: m.update(length_mode="bars"))
        self.seconds.valueChanged.connect(lambda v: m.update(seconds=float(v)))
        self.bars.valueChanged.connect(lambda v: m.update(bars=int(v)))
        self.bpm.valueChanged.connect(lambda v: m.update(bpm=float(v)))
        self.beats.valueChanged.connect(lambda v: m.update(beats_per_bar=int(v)))
        self.seed.valueChanged.connect(lambda v: m.update(seed=int(v)))
        self.seed_lock.toggled.connect(lambda on: m.update(seed_locked=bool(on)))
        self.steps.valueChanged.connect(lambda v: m.update(steps=int(v)))
        self.cfg.valueChanged.connect(lambda v: m.update(cfg=float(v)))
        self.variations.valueChanged.connect(lambda v: m.update(variations=int(v)))
        self.normalize.toggled.connect(lambda on: m.update(normalize=bool(on)))
        self.loudness.valueChanged.connect(lambda v: m.update(loudness=float(v)))
        self.snap.toggled.connect(lambda on: m.update(snap=bool(on)))
        self.loop.toggled.connect(lambda on: m.update(loop=bool(on)))
        self.lora.textEdited.connect(lambda t: m.update(lora=t))
        self.lora_scale.valueChanged.connect(lambda v: m.update(lora_scale=float(v)))
        self.generate.clicked.connect(controller.generate)
        self.add_model.clicked.connect(self._add_model)
        self.model_combo.activated.connect(self._model_picked)

        m.changed.connect(self.sync)
        m.limits_changed.connect(self._limits)
        m.message_changed.connect(self.message.setText)
        controller.models_changed.connect(self._set_models)
        controller.backend.state_changed.connect(self._backend_state)
        self._limits()
        self.sync()
        self._backend_state(controller.backend.state)

    # ------------------------------------------------------------------ model -> widgets
    def sync(self) -> None:
        v = self.model.values
        widgets = (
            self.prompt,
            self.negative,
            self.by_seconds,
            self.by_bars,
            self.seconds,
            self.bars,
            self.bpm,
            self.beats,
            self.seed,
            self.seed_lock,
            self.steps,
            self.cfg,
            self.variations,
            self.normalize,
            self.loudness,
            self.snap,
            self.loop,
            self.lora,
            self.lora_scale,
        )
        blockers = [QSignalBlocker(w) for w in widgets]
        if self.prompt.toPlainText() != v.prompt:
            self.prompt.setPlainText(v.prompt)
        if self.negative.text() != v.negative:
            self.negative.setText(v.negative)
        bars = v.length_mode == "bars"
        self.by_bars.setChecked(bars)
        self.by_seconds.setChecked(not bars)
        self.length_stack.setCurrentIndex(1 if bars else 0)
        self.seconds.setValue(v.seconds)
        self.bars.setValue(v.bars)
        self.bpm.setValue(v.bpm)
        self.beats.setValue(v.beats_per_bar)
        # Unlocked and nothing rendered yet: the seed is still to be drawn.
        self.seed.setSpecialValueText("random" if not v.seed_locked and self.model.last_seed is None else "")
        self.seed.setValue(v.seed)
        self.seed_lock.setChecked(v.seed_locked)
        self.seed.setReadOnly(not v.seed_locked)
        self.seed.setEnabled(v.seed_locked or self.model.last_seed is not None)  # greyed: "random"
        self.steps.setValue(v.steps)
        self.cfg.setValue(v.cfg)
        self.variations.setValue(v.variations)
        self.normalize.setChecked(v.normalize)
        self.loudness.setValue(v.loudness)
        self.loudness.setEnabled(v.normalize)
        self.snap.setChecked(v.snap)
        self.loop.setChecked(v.loop)
        self.loop.setEnabled(bars)  # a loop is a whole number of bars
        if self.lora.text() != v.lora:
            self.lora.setText(v.lora)
        self.lora_scale.setValue(v.lora_scale)
        del blockers
        self.length_note.setText(f"= {self.model.length_seconds():.2f} s" if bars else "")
        self.length_note.setVisible(bars)
        last = self.model.last_seed
        if v.seed_locked:
            self.seed_note.setText("every render uses this seed")
        else:
            self.seed_note.setText(
                f"last used {last} · new seed each render" if last is not None else "new seed each render"
            )
        self.message.setText(self.model.message)

    def _limits(self) -> None:
        limits = self.model.limits
        self.seconds.setMaximum(limits.max_seconds)
        tip = f"Up to {limits.max_seconds:.2f} s with this model"
        if limits.max_seconds > limits.window + 1e-9:
            tip = (
                f"Up to {limits.max_seconds:g} s with this model: past {limits.window:.2f} s, windows that "
                f"continue each other (audio-to-audio: up to {limits.window:.2f} s)"
            )
        self.seconds.setToolTip(tip)

    def _backend_state(self, state: BridgeState) -> None:
        text = state.model_message
        self.model_status.setText(text)
        self.model_status.setVisible(bool(text))
        self.model_status.setProperty("warn", state.model_state in (MISSING, BROKEN))
        self.model_status.style().unpolish(self.model_status)
        self.model_status.style().polish(self.model_status)
        self.generate.setEnabled(state.model_state == READY)
        self._select_current(state.model)

    def _set_models(self, models: list[ModelChoice]) -> None:
        with QSignalBlocker(self.model_combo):
            self.model_combo.clear()
            for choice in models:
                label = choice.name if choice.found else f"{choice.name} (not installed)"
                self.model_combo.addItem(label, choice.ref)
                self.model_combo.setItemData(
                    self.model_combo.count() - 1, choice.description or choice.ref, Qt.ItemDataRole.ToolTipRole
                )
        self._select_current(self.controller.backend.state.model)

    def _select_current(self, ref: str) -> None:
        for i in range(self.model_combo.count()):
            data = str(self.model_combo.itemData(i))
            if data == ref or self.model_combo.itemText(i).split(" (")[0] == ref:
                with QSignalBlocker(self.model_combo):
                    self.model_combo.setCurrentIndex(i)
                return

    def _model_picked(self, index: int) -> None:
        ref = self.model_combo.itemData(index)
        if ref:
            self.controller.choose_model(str(ref))

    def _add_model(self) -> None:
        folder = self.controller.dialogs.pick_folder("Choose a model folder")
        if folder:
            self.controller.add_model_folder(folder)


def _row(*widgets: Any, stretch: int = -1) -> QWidget:
    """Widgets side by side; ``stretch`` is the index of the one that takes the spare width
    (-1: none, the row packs to the left)."""
    w = QWidget()
    layout = QHBoxLayout(w)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(6)
    for i, child in enumerate(widgets):
        layout.addWidget(child, 1 if i == stretch else 0)
    if stretch < 0:
        layout.addStretch(1)
    return w
