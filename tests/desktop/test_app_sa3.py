"""The app renders with a Stable Audio 3 model (issue 21): the real window, controller and queue on a
tiny random SA3 folder (original layout, as tests/bridge/test_cli_sa3.py writes it), the form filled
as a person would, Generate pressed; the WAV in the history has the length asked for and its recipe
says `stable-audio-3`, and the form's LoRA field reaches the recipe's `lora` entry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("diffusers")

import soundfile as sf  # noqa: E402

from desktop.history import HistoryEntry  # noqa: E402
from desktop.main_window import MainWindow  # noqa: E402
from tests.engine import sa3_helpers as h  # noqa: E402

from .conftest import WAIT_MS  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]
MakeWindow = Callable[..., MainWindow]


@pytest.fixture(scope="module")
def sa3(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a tiny SA3 folder, a LoRA file for it)."""
    from transformers.utils import logging as tlog

    tlog.set_verbosity_error()
    root = tmp_path_factory.mktemp("sa3app")
    model = h.tiny_model()
    folder = h.write_original(model, root / "sa3-tiny", h.tiny_t5(root / "t5"))
    return folder, h.write_lora(model, root / "style.safetensors", seed=1)


def _done(window: MainWindow) -> list[HistoryEntry]:
    return [e for e in window.controller.history.entries if e.job.state == "done"]


def test_the_app_renders_with_an_sa3_model_and_its_lora_field(
    make_window: MakeWindow, qtbot: Any, sa3: tuple[Path, Path]
) -> None:
    folder, style = sa3
    window = make_window(model=folder)
    c, view = window.controller, window.form_view
    assert c.backend.ready and view.generate.isEnabled(), view.model_status.text()
    assert c.backend.model_name == "sa3-tiny"
    assert abs(c.form.limits.window - 4.0) < 0.01  # the tiny model's window

    view.prompt.setFocus()
    qtbot.keyClicks(view.prompt, "warm house")
    view.by_seconds.click()
    view.seconds.setValue(1.5)
    view.steps.setValue(2)
    view.variations.setValue(1)
    view.seed.setValue(7)
    view.seed_lock.setChecked(True)
    assert view.message.text() == ""
    view.generate.click()
    qtbot.waitUntil(lambda: len(_done(window)) == 1, timeout=WAIT_MS)
    [entry] = _done(window)
    assert entry.model == "sa3-tiny" and entry.seed == 7 and entry.prompt == "warm house"
    info = sf.info(entry.path)
    assert info.frames == int(1.5 * h.SAMPLE_RATE) and info.samplerate == h.SAMPLE_RATE and info.channels == 2
    recipe = json.loads(Path(entry.path).with_suffix(".json").read_text())
    assert recipe["model_kind"] == "stable-audio-3" and recipe["model"] == "sa3-tiny"
    assert recipe["seed"] == 7 and recipe["steps"] == 2 and recipe["lora"] == []

    # The LoRA field, typed as a person would, with a scale: the recipe lists the file.
    view.lora.setFocus()
    qtbot.keyClicks(view.lora, str(style))
    view.lora_scale.setValue(0.5)
    assert c.form.values.lora == str(style) and view.message.text() == ""
    view.generate.click()
    qtbot.waitUntil(lambda: len(_done(window)) == 2, timeout=WAIT_MS)
    styled = next(e for e in _done(window) if e.path != entry.path)
    assert sf.info(styled.path).frames == int(1.5 * h.SAMPLE_RATE)
    recipe = json.loads(Path(styled.path).with_suffix(".json").read_text())
    assert recipe["model_kind"] == "stable-audio-3"
    assert [(e["path"], e["scale"], e["adapter_type"]) for e in recipe["lora"]] == [(str(style), 0.5, "lora")]
    a, _ = sf.read(entry.path, dtype="float32")
    b, _ = sf.read(styled.path, dtype="float32")
    assert a.shape == b.shape and abs(a - b).max() > 1e-3  # the LoRA changed the render
