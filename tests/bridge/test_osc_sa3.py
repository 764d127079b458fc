"""Stable Audio 3 through the OSC door (real UDP on loopback, a tiny random SA3 folder): a render
with LoRA files (the `lora` key repeated), a render past the model's 4 s window, and the errors a
DAW gets for a bad `lora`. The drop folder's JSON form (`lora` as a list) goes through the same
`parse_request`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

import soundfile as sf  # noqa: E402

from bridge.errors import SourceNotFound, UsageError  # noqa: E402
from bridge.osc import OscServer  # noqa: E402
from bridge.queue import JobQueue  # noqa: E402
from bridge.requests import Limits, parse_request  # noqa: E402
from tests.engine import sa3_helpers as h  # noqa: E402

from .conftest import Client  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]
Osc = Callable[..., tuple[OscServer, JobQueue]]
ClientFor = Callable[[OscServer], Client]


@pytest.fixture(scope="module")
def sa3(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(an SA3 folder, a LoRA file for it)."""
    from transformers.utils import logging as tlog

    tlog.set_verbosity_error()
    root = tmp_path_factory.mktemp("sa3osc")
    model = h.tiny_model()
    folder = h.write_original(model, root / "sa3-tiny", h.tiny_t5(root / "t5"))
    return folder, h.write_lora(model, root / "style.safetensors", seed=1)


def _files(got: list[tuple[str, list[object]]]) -> list[Path]:
    assert got[-1][0] == "/longplay/done", got[-1]
    return [Path(str(args[2])) for a, args in got if a == "/longplay/file"]


def test_sa3_over_osc_with_loras_and_past_the_window(osc: Osc, client_for: ClientFor, sa3: tuple[Path, Path]) -> None:
    folder, style = sa3
    server, queue = osc(model=folder)
    c = client_for(server)
    base = ("prompt", "warm house", "seconds", 1.0, "seed", 4, "steps", 2, "loudness", "off")
    c.send("/longplay/render", "plain", *base)
    [plain] = _files(c.recv_until("plain"))
    c.send("/longplay/render", "styled", *base, "lora", f"{style}:0.5", "lora", str(style))
    [styled] = _files(c.recv_until("styled"))
    recipe = json.loads(styled.with_suffix(".json").read_text())
    assert recipe["model_kind"] == "stable-audio-3"
    assert [(e["path"], e["scale"]) for e in recipe["lora"]] == [(str(style), 0.5), (str(style), 1.0)]
    a, _ = sf.read(str(plain), dtype="float32")
    b, _ = sf.read(str(styled), dtype="float32")
    assert a.shape == b.shape and abs(a - b).max() > 1e-3

    # 10 s from a 4 s window: accepted (not 413), windows continuing each other, exact length.
    c.send("/longplay/render", "long", "prompt", "warm house", "seconds", 10.0, "seed", 1, "steps", 2)
    got = c.recv_until("long")
    [long] = _files(got)
    assert sf.info(str(long)).frames == 10 * h.SAMPLE_RATE
    sampling = [args for a, args in got if a == "/longplay/progress" and args[2] == "sampling"]
    # Replies are rate-limited (every stage change is sent): steps climb over all 4 windows x 2 steps.
    assert {args[4] for args in sampling} == {8}
    assert [args[3] for args in sampling] == sorted(args[3] for args in sampling)

    for rid, value, code, said in (
        ("missing", str(folder / "none.safetensors"), 404, "lora: no such file"),
        ("relative", "style.safetensors", 400, "lora must be an absolute path"),
        ("scale", f"{style}:11", 400, "lora scale must be between 0 and 10"),
        ("notlora", str(folder / "model.safetensors"), 400, "is not a LoRA tensor"),
    ):
        c.send("/longplay/render", rid, *base, "lora", value)
        [(address, args)] = c.recv_until(rid)[-1:]
        assert address == "/longplay/error" and args[1] == code and said in str(args[2]), args


def test_lora_with_a_model_that_is_not_sa3(osc: Osc, client_for: ClientFor, sa3: tuple[Path, Path]) -> None:
    server, _ = osc()  # the tiny Longplay model
    c = client_for(server)
    c.send("/longplay/render", "r", "prompt", "x", "seconds", 0.5, "steps", 2, "lora", str(sa3[1]))
    address, args = c.recv_until("r")[-1]
    assert address == "/longplay/error" and args[1] == 400 and "needs a Stable Audio 3 model" in str(args[2])


def test_drop_folder_json_takes_a_list(sa3: tuple[Path, Path], tmp_path: Path) -> None:
    style = sa3[1]
    limits = Limits(max_seconds=60.0)
    spec = parse_request({"prompt": "p", "lora": [f"{style}:0.25", str(style)]}, limits=limits, out_dir=tmp_path)
    assert spec.request.lora == ((str(style), 0.25), (str(style), 1.0))
    assert parse_request({"prompt": "p", "lora": str(style)}, limits=limits, out_dir=tmp_path).request.lora == (
        (str(style), 1.0),
    )
    again = type(spec).from_json(json.loads(json.dumps(spec.to_json())))  # the journal's round trip
    assert again.request == spec.request and again.fingerprint() == spec.fingerprint()
    with pytest.raises(UsageError, match="at most 4 files"):
        parse_request({"prompt": "p", "lora": [str(style)] * 5}, limits=limits, out_dir=tmp_path)
    with pytest.raises(UsageError, match="lora must be text"):
        parse_request({"prompt": "p", "lora": 3}, limits=limits, out_dir=tmp_path)
    with pytest.raises(SourceNotFound):
        parse_request({"prompt": "p", "lora": str(tmp_path / "x.safetensors")}, limits=limits, out_dir=tmp_path)
