"""`SA3Model`: a Stable Audio 3 model ready to render, and `generate`, its one-call entry point.

Parts, and whose they are (module docs of each say why):

| part | implementation |
|---|---|
| DiT | diffusers' `StableAudio3DiTModel` (block RMSNorm eps set to the release's 1e-5) |
| duration (`seconds_total`) | diffusers' `StableAudio3DurationEmbedder` |
| SAME autoencoder | diffusers' SAME modules in the release's attention layout (`same.py`) |
| T5Gemma | transformers' `T5GemmaEncoderModel` + tokenizer (`text.py`) |
| conditioning, guidance, schedule, windowed decode | ours (`model.py`, `sampling.py`, `same.py`) |
| samplers | `engine.sampling` (ping-pong, Euler) |

`generate` follows the reference's `StableAudioModel.generate` where it and diffusers' pipelines
differ: 6 s of latent headroom past the requested length, latent lengths on the autoencoder's
chunk grid, an all-zero inpainting input when not inpainting (the DiT's `to_local_embed` bias
path is part of the released model), guidance on x0 with APG, the unconditional branch as zeros.
Each of these has a switch, and with them set to diffusers' behaviour the output equals
diffusers' SA3 pipelines (tests/engine/test_sa3_parity.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from ..devices import autocast_for, half_dtype
from ..errors import RequestError, RequestTooLong
from .config import SA3Config, SA3DiTConfig
from .deps import diffusers_module
from .same import SAMEAutoencoder
from .sampling import SA3Conditioning, SA3Denoiser, sa3_sigmas, sample
from .text import SA3TextEncoder

Callback = Callable[[dict[str, Any]], None]
HEADROOM_SECONDS = 6.0  # the reference's `duration_padding_sec`


@dataclass(frozen=True)
class PromptEmbedding:
    """Encoded prompt(s): T5Gemma hidden states `[B, S, D]` and their token mask `[B, S]` (True = token)."""

    embeds: Tensor
    mask: Tensor


def build_dit(cfg: SA3DiTConfig) -> nn.Module:
    """diffusers' StableAudio3DiTModel for `cfg`, with the release's norm eps and RoPE width."""
    classes = diffusers_module("models.transformers.transformer_stable_audio3")
    dit = classes.StableAudio3DiTModel(
        io_channels=cfg.io_channels,
        patch_size=cfg.patch_size,
        embed_dim=cfg.embed_dim,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        cond_token_dim=cfg.cond_token_dim,
        global_cond_dim=cfg.global_cond_dim,
        local_add_cond_dim=cfg.local_add_cond_dim or cfg.io_channels + 1,
        timestep_features_dim=cfg.timestep_features_dim,
        ff_mult=cfg.ff_mult,
        num_memory_tokens=cfg.num_memory_tokens,
        use_differential_attention=cfg.differential,
    )
    for block in dit.transformer_blocks:
        for norm in (block.pre_norm, block.cross_attend_norm, block.ff_norm):
            norm.eps = cfg.norm_eps
    rot = max(cfg.dim_heads // 2, 32)  # the reference's ContinuousTransformer; diffusers uses dim_heads // 2
    if rot != cfg.dim_heads // 2:
        dit.rotary_pos_emb = classes.StableAudio3RotaryEmbedding(rot)
    module: nn.Module = dit
    return module


def build_duration(cfg: SA3Config) -> nn.Module:
    embedder = diffusers_module("pipelines.stable_audio_3.modeling_stable_audio_3").StableAudio3DurationEmbedder
    module: nn.Module = embedder(
        output_dim=cfg.dit.global_cond_dim,
        fourier_dim=cfg.duration.fourier_dim,
        min_val=cfg.duration.min_val,
        max_val=cfg.duration.max_val,
    )
    return module


class SA3Model(nn.Module):
    """DiT + duration embedder + SAME (state-dict names: diffusers'); the T5Gemma encoder rides along."""

    def __init__(self, config: SA3Config, text: SA3TextEncoder | None = None) -> None:
        super().__init__()
        self.config = config
        self.dit = build_dit(config.dit)
        self.duration = build_duration(config)
        self.same = SAMEAutoencoder(config.same)
        self.text = text  # a plain attribute: T5Gemma's weights are not part of this model's state
        self.folder: Path | None = None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> SA3Model:
        super()._apply(fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        if self.text is not None:  # follow .to(device) / .float() into the text encoder
            self.text.model._apply(fn)
        return self

    # ------------------------------------------------------------------ conditioning
    def encode_prompt(self, prompts: Sequence[str]) -> PromptEmbedding:
        if self.text is None:
            raise RequestError("this SA3 model was loaded without its text encoder: pass prompt embeddings")
        embeds, mask = self.text.encode(prompts, trim=self.config.text.padding_mode != "none")
        return PromptEmbedding(embeds, mask)

    def _padded(self, p: PromptEmbedding) -> Tensor:
        """Text tokens with padded positions as the conditioner leaves them (learned / zero / raw)."""
        mask = p.mask.to(self.device).bool()[..., None]  # [B, S, 1]
        embeds = p.embeds.to(self.device, torch.float32)
        mode = self.config.text.padding_mode
        if mode == "learned":
            pad = cast(Tensor, self.dit.prompt_padding_embedding).float().view(1, 1, -1)
            return torch.where(mask, embeds, pad)
        return embeds * mask if mode == "zero" else embeds

    def conditioning(
        self,
        prompt: PromptEmbedding,
        seconds: float,
        negative: PromptEmbedding | None = None,
        guidance: bool = False,
        local: Tensor | None = None,
    ) -> SA3Conditioning:
        """Cross-attention tokens (text, then the duration token), the global duration vector, and for
        guidance the unconditional tokens: the negative prompt's with padding zeroed, else zeros."""
        b = prompt.embeds.shape[0]
        secs = torch.full((b,), float(seconds), device=self.device)
        glob = self.duration(secs).float()  # [B, G]
        token = glob[:, None, :]  # seconds_total is both a global and a cross-attention input
        cross = torch.cat([self._padded(prompt), token], dim=1)  # [B, S + 1, D]
        uncond = None
        if guidance:
            if negative is None:
                uncond = torch.zeros_like(cross)
            else:
                neg = self._padded(negative) * negative.mask.to(self.device)[..., None]
                uncond = torch.cat([neg, token.expand(neg.shape[0], -1, -1)], dim=1)
        return SA3Conditioning(cross, glob, uncond, local)

    # ------------------------------------------------------------------ lengths and audio
    def latent_frames(self, seconds: float, headroom: float = HEADROOM_SECONDS) -> int:
        """Latent frames sampled for `seconds` (the reference's `_adapt_sample_size`)."""
        cfg = self.config
        ratio, align = cfg.same.downsampling_ratio, cfg.same.latent_align
        frames = -(-int((seconds + headroom) * cfg.sample_rate) // ratio)
        frames = -(-frames // align) * align
        cap = int(round(cfg.max_seconds * cfg.sample_rate)) // ratio
        return max(1, min(frames, cap))

    def encode_audio(self, audio: Tensor, frames: int) -> Tensor:
        """`[C, N]` or `[B, C, N]` audio at the model's rate -> `[B, latent_dim, frames]`, cut or
        zero-padded to `frames * ratio` samples first (as the reference prepares init audio)."""
        x = audio if audio.dim() == 3 else audio[None]
        n = frames * self.config.same.downsampling_ratio
        x = x[..., :n] if x.shape[-1] >= n else torch.nn.functional.pad(x, (0, n - x.shape[-1]))
        return self.same.encode(x.to(self.device, torch.float32))[..., :frames]

    def decode(
        self, latents: Tensor, window: int = 256, callback: Callback | None = None, precision: str = "auto"
    ) -> Tensor:
        """Latents `[B, latent_dim, L]` -> audio `[B, C, L * ratio]` float32, in windows (bounded
        memory). bf16 (where `precision` picks it) runs a bf16 copy of the decoder, not autocast."""
        dtype = half_dtype(self.device, precision)
        return self.same.decode(
            latents, window=window, callback=callback, dtype=dtype if dtype == torch.bfloat16 else None
        )

    def inpaint_mask(self, frames: int, regions: Sequence[tuple[float, float]]) -> Tensor:
        """`[1, 1, frames]` mask, 0 inside the regions to regenerate (seconds), 1 elsewhere
        (diffusers' frame rule: `int(s * rate / ratio)`)."""
        mask = torch.ones(1, 1, frames)
        per_frame = self.config.sample_rate / self.config.same.downsampling_ratio
        for start, end in regions:
            mask[..., int(start * per_frame) : min(int(end * per_frame), frames)] = 0.0
        return mask

    # ------------------------------------------------------------------ render
    @torch.no_grad()
    def generate(
        self,
        prompt: str | PromptEmbedding,
        seconds: float,
        seed: int = 0,
        steps: int | None = None,
        cfg: float = 1.0,
        *,
        negative: str | PromptEmbedding | None = None,
        apg_scale: float = 1.0,
        init_audio: Tensor | None = None,
        init_noise_level: float | None = None,
        inpaint_mask: Tensor | None = None,
        inpaint_audio: Tensor | None = None,
        inpaint_latents: Tensor | None = None,
        headroom_seconds: float = HEADROOM_SECONDS,
        local_zeros: bool = True,
        callback: Callback | None = None,
        precision: str = "auto",
        decode: bool = True,
        decode_window: int = 256,
    ) -> Tensor:
        """Render one prompt -> audio `[C, round-down(seconds * rate)]` float32 on the CPU, in [-1, 1]
        (or, with `decode=False`, latents `[1, latent_dim, frames]`).

        `init_audio` `[C, N]` (model rate) with `init_noise_level` in (0, 1]: audio-to-audio.
        `inpaint_mask` `[frames]`/`[1, 1, frames]` (1 keep, 0 regenerate) with `inpaint_latents`,
        `inpaint_audio` or else `init_audio` as the source: inpainting through the DiT's local
        conditioning. `callback` gets each sampler step (`engine.sampling`'s dict plus
        `"stage": "sampling", "steps"`) and each decoded window (`"stage": "decoding", "i", "n"`);
        raising in it cancels. Same seed, same arguments: same audio."""
        c = self.config
        if not (math.isfinite(seconds) and seconds > 0):
            raise RequestError(f"seconds must be a positive number (got {seconds})")
        if seconds > c.max_seconds + 1e-6:
            raise RequestTooLong(f"seconds {seconds:g} is longer than this model's window of {c.max_seconds:g} s")
        steps = int(steps if steps is not None else c.default_steps)
        if not (math.isfinite(cfg) and cfg >= 0):
            raise RequestError(f"cfg must be a non-negative number (got {cfg})")
        if init_noise_level is not None and not (math.isfinite(init_noise_level) and 0.0 < init_noise_level <= 1.0):
            raise RequestError(f"init_noise_level must be in (0, 1] (got {init_noise_level})")
        frames = self.latent_frames(seconds, headroom_seconds)
        texts = [p for p in (prompt, negative) if isinstance(p, str)]
        encoded = self.encode_prompt(texts) if texts else None  # one T5Gemma pass for both
        pos = prompt if isinstance(prompt, PromptEmbedding) else _row(encoded, 0)
        neg = negative if not isinstance(negative, str) else _row(encoded, len(texts) - 1)
        a2a = init_audio is not None and init_noise_level is not None and init_noise_level < 1.0
        init_latents = self.encode_audio(init_audio, frames) if a2a and init_audio is not None else None
        if inpaint_mask is not None and inpaint_latents is None and inpaint_audio is None:
            inpaint_latents = init_latents  # the init audio is the inpainting source too: encode it once
        local = self._local(
            frames,
            seconds,
            inpaint_mask,
            inpaint_latents,
            inpaint_audio if inpaint_audio is not None else init_audio,
            local_zeros,
        )
        cond = self.conditioning(pos, seconds, neg, guidance=cfg != 1.0, local=local)
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        noise = torch.randn((1, c.dit.io_channels, frames), generator=gen).to(self.device)  # [1, C, L]
        sigma_max = 1.0
        x = noise
        if init_latents is not None and init_noise_level is not None:
            sigma_max = float(init_noise_level)
            x = (1.0 - sigma_max) * init_latents + sigma_max * noise
        sigmas = sa3_sigmas(steps, sigma_max, c.logsnr_min, c.logsnr_max, device=self.device)

        def on_step(info: dict[str, Any]) -> None:
            if callback is not None:
                callback({**info, "stage": "sampling", "steps": steps})

        with autocast_for(self.device, precision):
            latents = sample(
                c.objective, SA3Denoiser(self.dit, cond, cfg, apg_scale), x, sigmas, callback=on_step, generator=gen
            ).float()
        if not decode:
            return latents

        def on_window(info: dict[str, Any]) -> None:
            if callback is not None:
                callback({**info, "stage": "decoding"})

        audio = self.decode(latents, window=decode_window, callback=on_window, precision=precision)
        keep = int(seconds * c.sample_rate)
        return audio[0, :, :keep].float().clamp(-1.0, 1.0).cpu()

    def _local(
        self,
        frames: int,
        seconds: float,
        mask: Tensor | None,
        latents: Tensor | None,
        audio: Tensor | None,
        zeros: bool,
    ) -> Tensor | None:
        """The DiT's inpainting input `[1, 1 + C, frames]`: [mask, latents * mask]; zeros when not
        inpainting (the reference's `generate`) if `zeros`, else None (diffusers' t2a/a2a)."""
        c = self.config
        if not c.inpaint:
            if mask is not None:
                raise RequestError("this SA3 model has no inpainting input")
            return None
        if mask is None:
            return torch.zeros(1, c.dit.io_channels + 1, frames, device=self.device) if zeros else None
        m = mask.float().reshape(1, 1, -1).to(self.device)
        if m.shape[-1] != frames:
            m = torch.nn.functional.interpolate(m, size=frames, mode="nearest")
        # Past the requested length (the headroom) is always regenerated, as the reference does.
        past = torch.arange(frames, device=self.device) * c.same.downsampling_ratio >= int(seconds * c.sample_rate)
        m = m.masked_fill(past, 0.0)
        if latents is None:
            if audio is None:
                raise RequestError("inpainting needs the source: inpaint_latents, inpaint_audio or init_audio")
            latents = self.encode_audio(audio, frames)
        lat = latents.to(self.device, torch.float32)
        lat = (
            lat[..., :frames] if lat.shape[-1] >= frames else torch.nn.functional.pad(lat, (0, frames - lat.shape[-1]))
        )
        return torch.cat([m, lat * m], dim=1)


def _row(p: PromptEmbedding | None, i: int) -> PromptEmbedding:
    assert p is not None
    return PromptEmbedding(p.embeds[i : i + 1], p.mask[i : i + 1])
