"""The form's LoRA field (Stable Audio 3 models): it becomes the `lora` key every door takes, is
checked by the bridge's validator at Generate, and a recalled render puts it back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.errors import SourceNotFound
from desktop.form import FormModel, FormValues
from engine import RenderRequest


def test_the_lora_field_is_the_lora_key(tmp_path: Path, qapp: Any) -> None:
    style = tmp_path / "style.safetensors"
    style.write_bytes(b"")  # the door checks the path; the engine reads the file at render time
    form = FormModel(FormValues(prompt="house", lora=str(style), lora_scale=0.5))
    assert form.request_values()["lora"] == f"{style}:0.5"
    assert form.spec_factory(tmp_path)().request.lora == ((str(style), 0.5),)
    assert "lora" not in FormModel(FormValues(prompt="house")).request_values()
    form.update(lora_scale=12.0)
    assert form.check() == "lora scale must be between 0 and 10 (got 12)"
    form.update(lora_scale=1.0, lora=str(tmp_path / "none.safetensors"))
    assert form.check() == ""  # the file is looked at on Generate, off the GUI thread
    with pytest.raises(SourceNotFound, match="lora: no such file"):
        form.spec_factory(tmp_path)()
    form.recall(RenderRequest("x", seconds=2.0, lora=((str(style), 0.25),)), seed=3)
    assert form.values.lora == str(style) and form.values.lora_scale == 0.25
    assert FormValues.from_dict(form.values.to_dict()) == form.values
