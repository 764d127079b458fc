"""Stable Audio 3 sampling: the log-SNR schedule, the guided x0 denoiser, the samplers.

SA3 is a rectified flow (`x_t = (1 - t) x0 + t noise`, the network predicts `noise - x0`). The
distilled checkpoints sample with 8 ping-pong steps (denoise to x0, re-noise to the next t) on a
schedule uniform in t and warped through log-SNR: `logsnr = logsnr_max - t (logsnr_max -
logsnr_min)`, `sigma = sigmoid(-logsnr)`, first value forced to `sigma_max`, last to 0
(stable-audio-3 `LogSNRShift(rate=0, anchor_logsnr=-6.2, logsnr_end=2)`; diffusers'
`logsnr_sigma_schedule`). Base (non-distilled) checkpoints use Euler steps on the same schedule.

The samplers are `engine.sampling`'s (k-diffusion shape: `sample(denoiser, x, sigmas, *,
extra_args, callback, generator)`, per-step dict callback that may raise to cancel, randomness
only from the explicit generator). `sample_pingpong` there draws each step's noise from the
generator exactly as diffusers' stochastic `FlowMatchEulerDiscreteScheduler` does, so the same
seed gives diffusers' render. This module adds the SA3 schedule and the guidance, as a denoiser
wrapper (STYLE point 4: parameterisations are wrappers, not sampler branches).

Guidance is the reference's (`DiffusionTransformer.forward`), done on x0, not on velocity:
`x0 = x0_c + (cfg - 1) * d` with `d = x0_c - x0_u`, or with APG (adaptive projected guidance,
Sadat et al. 2024, `apg_scale` 1: only the part of `d` orthogonal to `x0_c`). With `apg_scale`
0 it equals diffusers' velocity CFG. The unconditional branch is the reference's: all-zero
cross-attention tokens, or a negative prompt's tokens with its padding zeroed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .. import sampling as _sampling
from ..errors import RequestError

sample_pingpong = _sampling.sample_pingpong
sample_euler = _sampling.sample_euler
StepCallback = _sampling.StepCallback


def sa3_sigmas(
    steps: int,
    sigma_max: float = 1.0,
    logsnr_min: float = -6.2,
    logsnr_max: float = 2.0,
    device: torch.device | str = "cpu",
) -> Tensor:
    """`steps + 1` RF times from `sigma_max` to 0 on the SA3 log-SNR warp (float32, as diffusers)."""
    if steps < 1:
        raise RequestError(f"steps must be >= 1 (got {steps})")
    if not (math.isfinite(sigma_max) and 0.0 < sigma_max <= 1.0):
        raise RequestError(f"init_noise_level must be in (0, 1] (got {sigma_max})")
    t = torch.linspace(sigma_max, 0.0, steps + 1)  # [steps + 1]
    logsnr = logsnr_max - t * (logsnr_max - logsnr_min)
    sigmas = torch.sigmoid(-logsnr)
    sigmas[0] = sigma_max
    sigmas[-1] = 0.0
    return sigmas.to(device)


@dataclass
class SA3Conditioning:
    """What the DiT is conditioned on, built once per render (`SA3Model.conditioning`).

    cross `[B, S + 1, D]` (text tokens, padding handled, then the duration token), glob `[B, G]`,
    uncond `[B, S' + 1, D]` for guidance (None: no guidance possible), local `[B, 1 + C, L]`
    ([mask, masked latents], None for a DiT without inpainting input)."""

    cross: Tensor
    glob: Tensor
    uncond: Tensor | None = None
    local: Tensor | None = None


def apg_project(diff: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
    """(parallel, orthogonal) parts of `diff` w.r.t. `ref`, per batch item over `[C, T]`, in float32."""
    d, r = diff.float(), ref.float()
    r = r / torch.linalg.vector_norm(r, dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    parallel = (d * r).sum(dim=[-1, -2], keepdim=True) * r
    return parallel.to(diff.dtype), (d - parallel).to(diff.dtype)


class SA3Denoiser:
    """The SA3 DiT as an x0 denoiser `(x [B, C, L], sigma [B]) -> x0`, with CFG / APG.

    `dit` is diffusers' `StableAudio3DiTModel`; guidance batches the conditional and the
    unconditional branch into one forward pass."""

    def __init__(self, dit: Any, cond: SA3Conditioning, cfg_scale: float = 1.0, apg_scale: float = 1.0) -> None:
        if cfg_scale != 1.0 and cond.uncond is None:
            raise RequestError("guidance (cfg != 1) needs an unconditional branch")
        self.dit, self.cond = dit, cond
        self.cfg_scale, self.apg_scale = float(cfg_scale), float(apg_scale)

    def _velocity(self, x: Tensor, t: Tensor, cross: Tensor, glob: Tensor, local: Tensor | None) -> Tensor:
        out = self.dit(
            x,
            t,
            encoder_hidden_states=cross,
            global_hidden_states=glob,
            encoder_attention_mask=None,
            local_add_cond=local,
            return_dict=False,
        )[0]
        velocity: Tensor = out
        return velocity

    def __call__(self, x: Tensor, sigma: Tensor, **extra_args: Any) -> Tensor:
        c = self.cond
        t = sigma.float()  # [B]: the reference keeps t in float32 whatever the model's dtype
        tb = t.to(x.dtype).reshape(-1, 1, 1)
        if self.cfg_scale == 1.0:
            return x - tb * self._velocity(x, t, c.cross, c.glob, c.local)
        assert c.uncond is not None
        cross = _pad_cat(c.cross, c.uncond)
        local = None if c.local is None else torch.cat([c.local, c.local])
        v = self._velocity(torch.cat([x, x]), torch.cat([t, t]), cross, torch.cat([c.glob, c.glob]), local)
        v_cond, v_uncond = v.chunk(2)
        den_c, den_u = x - tb * v_cond, x - tb * v_uncond  # [B, C, L]
        diff = den_c - den_u
        if self.apg_scale == 0.0:
            guided = diff
        else:
            _, orth = apg_project(diff, den_c)
            guided = orth if self.apg_scale == 1.0 else self.apg_scale * orth + (1 - self.apg_scale) * diff
        return den_c + (self.cfg_scale - 1.0) * guided


def _pad_cat(a: Tensor, b: Tensor) -> Tensor:
    """Stack the conditional and unconditional tokens on the batch axis. Padding one to the other's
    length would add zero tokens the softmax attends to, so unequal lengths are refused."""
    if a.shape != b.shape:
        raise RequestError(f"the negative prompt's tokens {tuple(b.shape)} must match the prompt's {tuple(a.shape)}")
    return torch.cat([a, b])


def sample(
    objective: str,
    denoiser: SA3Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    callback: StepCallback | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Ping-pong for distilled (`rf_denoiser`) checkpoints, Euler for base (`rectified_flow`) ones."""
    if objective == "rf_denoiser":
        return sample_pingpong(denoiser, x, sigmas, callback=callback, generator=generator)
    return sample_euler(denoiser, x, sigmas, callback=callback, generator=generator)
