"""The form's view model: the same validators as every other door, seeds, recall, defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.errors import UsageError
from bridge.requests import Limits
from desktop.form import FormModel, FormValues

from .conftest import write_wav


def test_values_become_the_keys_an_osc_request_carries(qapp: Any) -> None:
    form = FormModel(FormValues(prompt="drums", length_mode="bars", bars=8, bpm=92.0, steps=20, cfg=6.0))
    assert form.request_values() == {
        "prompt": "drums",
        "steps": 20,
        "cfg": 6.0,
        "variations": 1,
        "seed": -1,
        "bars": 8,
        "bpm": 92.0,
        "beats_per_bar": 4,
        "loudness": -14.0,
    }
    assert "prompt" in FormModel(FormValues(prompt="")).request_values()  # so validation says it is missing
    assert form.length_seconds() == pytest.approx(8 * 4 * 60 / 92)
    form.update(seed=42, seed_locked=True, length_mode="seconds", seconds=12.5, negative="vocals")
    values = form.request_values()
    assert values["seed"] == 42 and values["seconds"] == 12.5 and values["negative"] == "vocals"
    assert "bars" not in values
    form.update(loudness=-18.0)
    assert form.request_values()["loudness"] == -18.0
    form.update(normalize=False)
    assert form.request_values()["loudness"] == "off"
    spec = form.spec_factory(".")()
    assert spec.request.loudness is None  # the model's own level


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seconds": 60.0}, "seconds 60 is longer than this model's window of 47.55 s"),
        ({"length_mode": "bars", "bars": 40, "bpm": 60.0}, "40 bars at 60 bpm is 160.00 s, longer than"),
        ({"cfg": 30.0}, "cfg must be between 0 and 25 (got 30)"),
        ({"steps": 0}, "steps must be an integer between 1 and 500 (got 0)"),
        ({"loudness": 2.0}, "loudness must be between -60 and 0 LUFS (got 2)"),
    ],
)
def test_bad_values_get_the_bridges_one_line_reason(changes: dict[str, Any], message: str, qapp: Any) -> None:
    form = FormModel(FormValues(prompt="pads"))
    seen: list[str] = []
    form.message_changed.connect(seen.append)
    form.update(**changes)
    assert message in form.message and seen == [form.message]
    form.update(**{k: getattr(FormValues(), k) for k in changes})
    assert form.message == "" and seen[-1] == ""


def test_an_empty_prompt_is_reported_only_once_generate_is_pressed(qapp: Any) -> None:
    form = FormModel()
    assert form.message == "" and form.check() == ""
    assert form.attempt() == "write a prompt first"
    form.update(init_audio="/somewhere/beatbox.wav")  # a restyle may go without a prompt
    assert form.message == ""


def test_spec_factory_validates_the_source_file(tmp_path: Path, qapp: Any) -> None:
    wav = write_wav(tmp_path / "beatbox.wav")
    form = FormModel(FormValues(prompt="", init_audio=str(wav), init_strength=0.6, seconds=0.5))
    spec = form.spec_factory(tmp_path, "tiny-test")()
    assert spec.request.init_audio == str(wav.resolve()) and spec.request.init_strength == 0.6
    assert spec.extra == {"model": "tiny-test"} and spec.name == "beatbox"
    wav.unlink()
    with pytest.raises(UsageError, match="no such file"):
        form.spec_factory(tmp_path)()


def test_seeds_locked_and_unlocked(qapp: Any) -> None:
    form = FormModel(FormValues(prompt="x", seed=5))
    form.note_seed(1234)  # unlocked: the seed drawn for the render is shown
    assert form.values.seed == 1234 and form.last_seed == 1234
    form.update(seed_locked=True, seed=7)
    form.note_seed(7)
    assert form.values.seed == 7 and form.request_values()["seed"] == 7


def test_changed_fires_only_on_a_real_change(qapp: Any) -> None:
    form = FormModel()
    fired: list[int] = []
    form.changed.connect(lambda: fired.append(1))
    form.update(prompt="a")
    form.update(prompt="a")
    assert fired == [1]


def test_model_defaults_fill_only_untouched_fields(qapp: Any) -> None:
    form = FormModel()
    form.update(cfg=3.0)
    form.apply_model_defaults({"steps": 8, "cfg": 1.0})
    assert (form.values.steps, form.values.cfg) == (8, 3.0)
    form.set_limits(Limits(max_seconds=10.0))
    assert form.values.seconds == 10.0  # the default 30 s is cut to the model's window
    # A restored session keeps what it saved; what it did not save still takes the model's defaults.
    restored = FormModel()
    restored.mark_restored({"prompt": "pads", "cfg": 6.0})
    restored.apply_model_defaults({"steps": 20, "cfg": 5.0})
    assert (restored.values.steps, restored.values.cfg) == (20, 7.0)
    everything = FormModel()
    everything.mark_restored({"steps": 50, "cfg": 6.0})
    everything.apply_model_defaults({"steps": 20, "cfg": 5.0})
    assert everything.values.steps != 20


def test_recall_puts_a_render_back(qapp: Any) -> None:
    from bridge.requests import parse_request

    spec = parse_request(
        {
            "prompt": "house",
            "bars": 4,
            "bpm": 124.0,
            "seed": 77,
            "steps": 9,
            "cfg": 5.5,
            "variations": 3,
            "negative": "vocals",
        },
        limits=Limits(),
        out_dir=".",
    )
    form = FormModel()
    form.recall(spec.request, seed=78)  # the second variation
    v = form.values
    assert (
        v.prompt,
        v.negative,
        v.length_mode,
        v.bars,
        v.bpm,
        v.steps,
        v.cfg,
        v.seed,
        v.seed_locked,
        v.variations,
        v.normalize,
        v.loudness,
    ) == ("house", "vocals", "bars", 4, 124.0, 9, 5.5, 78, True, 1, True, -14.0)
    quiet = parse_request({"prompt": "pads", "loudness": "off"}, limits=Limits(), out_dir=".")
    form.recall(quiet.request, seed=1)
    assert not form.values.normalize and form.request_values()["loudness"] == "off"


def test_stored_values_of_the_wrong_type_fall_back_to_defaults() -> None:
    v = FormValues.from_dict(
        {"prompt": "ok", "steps": "many", "seconds": 12, "seed_locked": 1, "length_mode": "furlongs", "bogus": 3}
    )
    assert (v.prompt, v.steps, v.seconds, v.seed_locked, v.length_mode) == ("ok", 100, 12.0, False, "seconds")
