"""Stable Audio 3 sampling: the schedule equals the reference's, the per-step callback reports and
cancels, one seed is one render, and lengths follow the reference's rule."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from engine.errors import RenderCancelled, RequestError, RequestTooLong  # noqa: E402
from engine.sa3 import PromptEmbedding, SA3Model, sa3_sigmas  # noqa: E402
from tests.engine import sa3_helpers as h  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")
FAST = dict(headroom_seconds=0.0, precision="fp32")


@pytest.fixture(scope="module")
def model() -> SA3Model:
    return h.tiny_model(same=h.TINY_SAME_CHUNKED)


@pytest.fixture(scope="module")
def prompt() -> PromptEmbedding:
    g = torch.Generator().manual_seed(2)
    return PromptEmbedding(torch.randn(1, h.MAX_TOKENS, h.TEXT_DIM, generator=g), torch.arange(h.MAX_TOKENS)[None] < 6)


@pytest.mark.parametrize("steps,sigma_max", [(8, 1.0), (3, 1.0), (8, 0.6), (5, 0.05)])
def test_sa3_schedule_equals_diffusers_and_reference(steps: int, sigma_max: float) -> None:
    from diffusers.pipelines.stable_audio_3.pipeline_stable_audio_3 import logsnr_sigma_schedule

    ours = sa3_sigmas(steps, sigma_max)
    theirs = logsnr_sigma_schedule(steps, -6.2, 2.0, sigma_max)
    assert ours.shape == (steps + 1,) and ours[-1] == 0 and ours[0] == pytest.approx(sigma_max)
    assert torch.equal(ours[:-1], torch.tensor(theirs, dtype=torch.float32))
    if sigma_max == 1.0:  # uniform in log-SNR from -6.2 to 2 (stable-audio-3's LogSNRShift, rate 0)
        logsnr = torch.log((1 - ours[1:-1]) / ours[1:-1]).double()
        step = 8.2 / steps
        assert torch.allclose(logsnr.diff(), torch.full_like(logsnr.diff(), step), atol=1e-4)


def test_sa3_callback_reports_every_step_and_window(model: SA3Model, prompt: PromptEmbedding) -> None:
    seen: list[dict] = []
    model.generate(prompt, 1.0, 0, 4, callback=seen.append, **FAST)
    sampling = [s for s in seen if s["stage"] == "sampling"]
    assert [s["i"] for s in sampling] == [0, 1, 2, 3] and all(s["steps"] == 4 for s in sampling)
    assert [s["sigma"] for s in sampling] == pytest.approx(sa3_sigmas(4)[:-1].tolist())
    assert [s["stage"] for s in seen[4:]] == ["decoding"] and seen[-1]["n"] == 1


def test_sa3_cancel_stops_within_a_step(
    model: SA3Model, prompt: PromptEmbedding, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = model.dit.forward

    def counting(*a: object, **k: object) -> object:
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(model.dit, "forward", counting)

    def cancel(info: dict) -> None:
        if info["stage"] == "sampling" and info["i"] == 1:
            raise RenderCancelled("render cancelled")

    with pytest.raises(RenderCancelled):
        model.generate(prompt, 1.0, 0, 8, callback=cancel, **FAST)
    assert calls["n"] == 2


def test_sa3_same_seed_same_audio(model: SA3Model, prompt: PromptEmbedding) -> None:
    a = model.generate(prompt, 1.0, 7, 3, **FAST)
    b = model.generate(prompt, 1.0, 7, 3, **FAST)
    c = model.generate(prompt, 1.0, 8, 3, **FAST)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.abs().max() <= 1.0


def test_sa3_latent_frames_follow_the_reference_rule(model: SA3Model) -> None:
    """frames = ceil(int((seconds + headroom) * rate) / ratio), rounded up to the chunk grid (2),
    capped at the model's window; headroom 6 s by default."""
    ratio = model.config.same.downsampling_ratio  # 32 at 1024 Hz: 32 frames a second
    assert model.latent_frames(1.0, 0.0) == 32
    assert model.latent_frames(1.01, 0.0) == 34  # 33 -> the even grid
    assert model.latent_frames(1.0) == min(32 * 7, int(4.0 * 1024) // ratio)
    assert model.latent_frames(0.5, 2.0) == 80  # 2.5 s


def test_sa3_request_limits(model: SA3Model, prompt: PromptEmbedding) -> None:
    with pytest.raises(RequestTooLong, match="window of 4"):
        model.generate(prompt, 5.0, 0, 1, **FAST)
    with pytest.raises(RequestError, match="positive"):
        model.generate(prompt, 0.0, 0, 1, **FAST)
    with pytest.raises(RequestError, match="init_noise_level"):
        model.generate(prompt, 1.0, 0, 1, init_audio=torch.zeros(2, 1024), init_noise_level=0.0, **FAST)
    with pytest.raises(RequestError, match="text encoder"):
        model.generate("a prompt", 1.0, 0, 1, **FAST)


def test_sa3_negative_prompt_pads_are_zero_and_inpaint_keeps_headroom_regenerated(
    model: SA3Model, prompt: PromptEmbedding
) -> None:
    neg = PromptEmbedding(torch.randn(1, h.MAX_TOKENS, h.TEXT_DIM), torch.arange(h.MAX_TOKENS)[None] < 3)
    cond = model.conditioning(prompt, 1.0, neg, guidance=True)
    assert cond.uncond is not None and not cond.uncond[0, 3:-1].any() and cond.uncond[0, :3].any()
    assert torch.equal(cond.uncond[0, -1], cond.cross[0, -1])  # the duration token is kept
    local = model._local(48, 1.0, torch.ones(48), torch.randn(1, 16, 48), None, True)
    assert local is not None and local[0, 0, :32].all() and not local[0, 0, 32:].any()
