"""Our Stable Audio 3 pipeline equals diffusers' SA3 pipelines on the same weights, prompt embedding,
seed and steps: text-to-audio, audio-to-audio, inpainting, guidance with a negative prompt, and a
prompt string through the same T5Gemma. Tiny random models (every tensor non-zero), fp32.

Where the release (stable-audio-3's `generate`) and diffusers differ, `SA3Model.generate`
follows the release by default; each difference has a switch, set here to diffusers' behaviour:
`headroom_seconds=0` (diffusers' `silence_padding_duration`), `local_zeros=False` (diffusers
passes no inpainting input outside inpainting), `apg_scale=0` (diffusers' plain CFG). The
release's choices are tested against their own definitions at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("diffusers")

from engine.sa3 import PromptEmbedding, SA3Model  # noqa: E402
from engine.sa3.sampling import SA3Conditioning  # noqa: E402
from engine.sa3.text import SA3TextEncoder  # noqa: E402
from tests.engine import sa3_helpers as h  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]
TOL = 1e-4  # relative to the reference's max abs (measured ~1e-6)
SECONDS, STEPS, SEED = 1.0, 4, 5
DIFFUSERS_LIKE = dict(headroom_seconds=0.0, local_zeros=False, apg_scale=0.0, precision="fp32")


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.set_verbosity_error()
    return h.tiny_t5(tmp_path_factory.mktemp("sa3") / "t5")


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "differential"])
def model(request: pytest.FixtureRequest) -> SA3Model:
    return h.tiny_model(differential=request.param)


@pytest.fixture(scope="module")
def prompt() -> PromptEmbedding:
    g = torch.Generator().manual_seed(3)
    mask = torch.zeros(1, h.MAX_TOKENS, dtype=torch.bool)
    mask[:, :7] = True  # padded positions get the learned padding embedding on both sides
    return PromptEmbedding(torch.randn(1, h.MAX_TOKENS, h.TEXT_DIM, generator=g), mask)


@pytest.fixture(scope="module")
def source() -> torch.Tensor:
    """1 s of stereo at the tiny rate: exactly the latent length (diffusers encodes what it is given)."""
    return torch.randn(2, h.SAMPLE_RATE, generator=torch.Generator().manual_seed(4)) * 0.3


def _theirs(model: SA3Model, t5_dir: Path, kind: str, embedded: PromptEmbedding | None, **kw: Any) -> torch.Tensor:
    pipe = h.diffusers_pipeline(model, t5_dir, kind)
    if embedded is not None:
        kw.update(prompt_embeds=embedded.embeds, encoder_attention_mask=embedded.mask.long())
    return pipe(
        duration=SECONDS, num_inference_steps=STEPS, generator=torch.Generator().manual_seed(SEED), **kw
    ).audios[0]


def _check(name: str, ours: torch.Tensor, theirs: torch.Tensor) -> None:
    err = h.rel_err(ours, theirs)
    print(f"sa3 parity {name}: max rel err {err:.2e}")
    assert ours.abs().max() > 0.05  # a live signal, not a zeroed path
    assert err <= TOL, f"{name}: relative error {err:.3e} > {TOL}"


def test_sa3_text_to_audio_parity_with_diffusers(model: SA3Model, t5_dir: Path, prompt: PromptEmbedding) -> None:
    ours = model.generate(prompt, SECONDS, SEED, STEPS, **DIFFUSERS_LIKE)
    assert ours.shape == (2, int(SECONDS * h.SAMPLE_RATE))
    _check("t2a", ours, _theirs(model, t5_dir, "t2a", prompt))


def test_sa3_audio_to_audio_parity_with_diffusers(
    model: SA3Model, t5_dir: Path, prompt: PromptEmbedding, source: torch.Tensor
) -> None:
    ours = model.generate(prompt, SECONDS, SEED, STEPS, init_audio=source, init_noise_level=0.6, **DIFFUSERS_LIKE)
    _check("a2a", ours, _theirs(model, t5_dir, "a2a", prompt, audio=source[None], init_noise_level=0.6))


def test_sa3_inpaint_parity_with_diffusers(
    model: SA3Model, t5_dir: Path, prompt: PromptEmbedding, source: torch.Tensor
) -> None:
    frames = model.latent_frames(SECONDS, 0.0)
    mask = model.inpaint_mask(frames, [(0.3, 0.6)])
    assert 0 < mask.sum() < frames
    ours = model.generate(prompt, SECONDS, SEED, STEPS, inpaint_mask=mask, inpaint_audio=source, **DIFFUSERS_LIKE)
    theirs = _theirs(model, t5_dir, "inpaint", prompt, audio=source[None], mask_start_seconds=0.3, mask_end_seconds=0.6)
    _check("inpaint", ours, theirs)


def test_sa3_guidance_parity_with_diffusers(model: SA3Model, t5_dir: Path, prompt: PromptEmbedding) -> None:
    """CFG 3 with a negative prompt (its mask all ones: diffusers would put the learned padding
    where the release puts zeros)."""
    neg = PromptEmbedding(
        torch.randn(1, h.MAX_TOKENS, h.TEXT_DIM, generator=torch.Generator().manual_seed(9)),
        torch.ones(1, h.MAX_TOKENS, dtype=torch.bool),
    )
    ours = model.generate(prompt, SECONDS, SEED, STEPS, cfg=3.0, negative=neg, **DIFFUSERS_LIKE)
    theirs = _theirs(
        model,
        t5_dir,
        "t2a",
        prompt,
        guidance_scale=3.0,
        negative_prompt_embeds=neg.embeds,
        negative_encoder_attention_mask=neg.mask.long(),
    )
    _check("cfg", ours, theirs)


def test_sa3_prompt_text_parity_with_diffusers(model: SA3Model, t5_dir: Path) -> None:
    model.text = SA3TextEncoder(t5_dir, t5_dir, h.MAX_TOKENS)
    try:
        ours = model.generate("dusty boom bap, 90 bpm", SECONDS, SEED, STEPS, **DIFFUSERS_LIKE)
    finally:
        model.text = None
    _check("prompt text", ours, _theirs(model, t5_dir, "t2a", None, prompt="dusty boom bap, 90 bpm"))


# ------------------------------------------------------------------------ the release's choices


def test_sa3_release_feeds_zero_inpaint_input(model: SA3Model, prompt: PromptEmbedding) -> None:
    """Outside inpainting the reference feeds [mask 0, latents 0]; its to_local_embed biases make
    that a real (non-zero) term, so it differs from passing nothing."""
    with_zeros = model.generate(prompt, SECONDS, SEED, 2, headroom_seconds=0.0, precision="fp32")
    without = model.generate(prompt, SECONDS, SEED, 2, headroom_seconds=0.0, local_zeros=False, precision="fp32")
    assert h.rel_err(with_zeros, without) > 1e-3


def test_sa3_release_guidance_is_apg_on_x0(model: SA3Model, prompt: PromptEmbedding) -> None:
    """One guided denoiser call against the reference's formula: x0 = x0_c + (cfg - 1) * (the part
    of x0_c - x0_u orthogonal to x0_c); the unconditional branch is all-zero tokens."""
    from engine.sa3 import SA3Denoiser

    g = torch.Generator().manual_seed(11)
    x = torch.randn(1, 16, 32, generator=g)
    sigma = torch.tensor([0.7])
    cond = model.conditioning(prompt, SECONDS, guidance=True)
    assert cond.uncond is not None and not cond.uncond.any()
    got = SA3Denoiser(model.dit, cond, cfg_scale=4.0, apg_scale=1.0)(x, sigma)
    plain = SA3Denoiser(model.dit, SA3Conditioning(cond.cross, cond.glob), 1.0)
    x0_c = plain(x, sigma)
    x0_u = SA3Denoiser(model.dit, SA3Conditioning(cond.uncond, cond.glob), 1.0)(x, sigma)
    d = x0_c - x0_u
    unit = x0_c / x0_c.norm()
    want = x0_c + 3.0 * (d - (d * unit).sum() * unit)
    assert h.rel_err(got, want) < 1e-5
