"""Noise schedules, denoiser wrappers and samplers for Longplay's latent diffusion (k-diffusion shape).

A *denoiser* is ``denoiser(x, sigma, **extra_args) -> x0`` with ``x`` ``[B, C, T]`` and ``sigma`` ``[B]``
(k-diffusion convention). Network parameterisations (v-prediction, rectified-flow velocity) are adapted to that
by the wrappers below, so every sampler is written once against the x0 interface.

Samplers are pure functions ``sample_x(denoiser, x, sigmas, *, extra_args, callback, generator, ...)``. The only
source of randomness is the explicit ``torch.Generator`` (or an injected ``noise_sampler``); the global RNG is
never touched, so one seed reproduces a render bit for bit.

Sources: k-diffusion 0.1.1 ``k_diffusion/sampling.py`` and ``external.py`` (Crowson, MIT), as vendored in
stable-audio-tools ``stable_audio_tools/inference/k_diffusion/``; stable-audio-tools
``stable_audio_tools/inference/sampling.py`` (``sample_rf``, ``sample_flow_pingpong``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from .errors import RequestError

__all__ = [
    "DEFAULT_SAMPLER",
    "DEFAULT_STEPS",
    "DEFAULT_SIGMA_MIN",
    "DEFAULT_SIGMA_MAX",
    "SAMPLERS",
    "SamplingError",
    "Denoiser",
    "NoiseSampler",
    "StepCallback",
    "VDenoiser",
    "RFDenoiser",
    "get_sigmas_polyexponential",
    "get_sigmas_karras",
    "get_sigmas_rf_logsnr",
    "init_sigma_for_strength",
    "sample_euler",
    "sample_dpmpp_2m",
    "sample_dpmpp_2m_sde",
    "sample_dpmpp_3m_sde",
    "sample_pingpong",
    "sample",
]

Denoiser = Callable[..., Tensor]  # (x [B, C, T], sigma [B], **extra_args) -> x0 [B, C, T]
NoiseSampler = Callable[[float, float], Tensor]  # (sigma, sigma_next) -> unit Gaussian shaped like x
StepCallback = Callable[[dict[str, Any]], None]

# Product default (Stable Audio Open 1.0 style v-model): DPM-Solver++(3M) SDE, 100 steps, polyexponential rho=1.
DEFAULT_SAMPLER = "dpmpp-3m-sde"
DEFAULT_STEPS = 100
DEFAULT_SIGMA_MIN = 0.03
DEFAULT_SIGMA_MAX = 500.0


class SamplingError(RequestError, ValueError):
    """A sampler name, schedule, strength or sampler option the samplers cannot honour (also a ValueError)."""


# ----------------------------------------------------------------------------------------------- schedules


def _append_zero(sigmas: Tensor) -> Tensor:
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def _check_schedule_args(n: int, sigma_min: float, sigma_max: float) -> None:
    if n < 1:
        raise SamplingError(f"n must be >= 1, got {n}")
    if not (0.0 < sigma_min <= sigma_max) or not math.isfinite(sigma_max):
        raise SamplingError(f"need 0 < sigma_min <= sigma_max < inf, got sigma_min={sigma_min}, sigma_max={sigma_max}")


def get_sigmas_polyexponential(
    n: int, sigma_min: float, sigma_max: float, rho: float = 1.0, device: torch.device | str = "cpu"
) -> Tensor:
    """Polynomial-in-log-sigma schedule, n sigmas from sigma_max to sigma_min plus a final 0 (k-diffusion)."""
    _check_schedule_args(n, sigma_min, sigma_max)
    # Same float32 op order as k-diffusion so schedules (and hence whole renders) match it exactly.
    ramp = torch.linspace(1, 0, n, device=device) ** rho  # [n]
    sigmas = torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min))
    return _append_zero(sigmas)  # [n + 1]


def get_sigmas_karras(
    n: int, sigma_min: float, sigma_max: float, rho: float = 7.0, device: torch.device | str = "cpu"
) -> Tensor:
    """Karras et al. (2022) eq. 5 schedule, n sigmas plus a final 0 (k-diffusion ``get_sigmas_karras``)."""
    _check_schedule_args(n, sigma_min, sigma_max)
    ramp = torch.linspace(0, 1, n, device=device)  # [n]
    min_inv_rho, max_inv_rho = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)  # [n + 1]


def get_sigmas_rf_logsnr(
    n: int,
    sigma_max: float = 1.0,
    *,
    logsnr_start: float = -6.0,
    logsnr_end: float = 2.0,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Rectified-flow times uniform in log-SNR, as stable-audio-tools ``sample_rf`` builds them for SAO Small.

    Reference: stable-audio-tools ``stable_audio_tools/inference/sampling.py`` ``sample_rf`` (the release that
    added ``sample_flow_pingpong`` for the ``rf_denoiser`` objective): with RF noise level t (x_t = (1-t)x0 + t·n)
    the log-SNR is log((1-t)/t); ``logsnr = linspace(start, 2, n+1)``, ``t = sigmoid(-logsnr)``, then
    ``t[0] = sigma_max`` and ``t[-1] = 0``. ``start`` is -6 for full generation; for audio-to-audio
    (sigma_max < 1) it is ``log((1 - sigma_max)/sigma_max + 1e-6)`` and ``logsnr_start`` is ignored, exactly as the
    reference does. That makes the first two values non-monotone when sigma_max < sigmoid(-logsnr_end) ≈ 0.119;
    kept for parity.
    """
    if n < 1:
        raise SamplingError(f"n must be >= 1, got {n}")
    if not 0.0 < sigma_max <= 1.0:
        raise SamplingError(f"rectified-flow sigma_max must be in (0, 1], got {sigma_max}")
    start = math.log((1 - sigma_max) / sigma_max + 1e-6) if sigma_max < 1 else logsnr_start
    logsnr = torch.linspace(start, logsnr_end, n + 1, device=device)  # [n + 1]
    t = torch.sigmoid(-logsnr)
    t[0] = sigma_max
    t[-1] = 0.0
    return t


def init_sigma_for_strength(strength: float, sigma_min: float, sigma_max: float) -> float:
    """Map audio-to-audio strength in [0, 1] to the sigma at which the init latent is re-noised (log-linear).

    strength 0 -> 0.0 (input returned unchanged), 1 -> sigma_max (pure noise, the input is forgotten), and in
    between ``exp(lerp(log sigma_min, log sigma_max, strength))``. Log-linear because the polyexponential (rho=1)
    schedule is uniform in log sigma and DPM-Solver steps are uniform in log-SNR: equal strength increments then
    re-run equal numbers of solver steps and change the SNR by equal decibels, which tracks how much of the
    input survives. Linear in sigma would not: with 0.03…500, strengths above 0.002 already give sigma > 1
    (SNR < 0 dB), so almost the whole slider would mean "input mostly gone".
    """
    if not (math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise SamplingError(f"strength must be in [0, 1], got {strength}")
    _check_schedule_args(1, sigma_min, sigma_max)
    if strength == 0.0:
        return 0.0
    return math.exp(math.log(sigma_min) + strength * (math.log(sigma_max) - math.log(sigma_min)))


# ---------------------------------------------------------------------------------------- denoiser wrappers


def _append_dims(v: Tensor, ndim: int) -> Tensor:
    return v.reshape(v.shape + (1,) * (ndim - v.ndim))  # [B] -> [B, 1, ..., 1]


class VDenoiser:
    """v-prediction network -> x0 denoiser, k-diffusion ``external.VDenoiser`` with sigma_data = 1.

    ``inner(x * c_in, t, **extra_args)`` predicts v with t = atan(sigma)·2/pi (the cosine-schedule time), and
    x0 = x·c_skip + v·c_out with c_skip = 1/(sigma²+1), c_out = -sigma/sqrt(sigma²+1), c_in = 1/sqrt(sigma²+1).
    """

    sigma_data = 1.0

    def __init__(self, inner: Callable[..., Tensor]) -> None:
        self.inner = inner

    def __call__(self, x: Tensor, sigma: Tensor, **extra_args: Any) -> Tensor:
        s = _append_dims(sigma, x.ndim)  # [B, 1, 1]
        # Scalings in sigma's precision, applied in x's dtype so a half-precision latent stays half precision.
        c_skip = (self.sigma_data**2 / (s**2 + self.sigma_data**2)).to(x.dtype)
        c_out = (-s * self.sigma_data / (s**2 + self.sigma_data**2) ** 0.5).to(x.dtype)
        c_in = (1 / (s**2 + self.sigma_data**2) ** 0.5).to(x.dtype)
        t = sigma.atan() / math.pi * 2  # [B]; same op order as k-diffusion/diffusers for bitwise parity
        return self.inner(x * c_in, t, **extra_args) * c_out + x * c_skip


class RFDenoiser:
    """Rectified-flow velocity network -> x0 denoiser: x0 = x_t - t·v (stable-audio-tools ``rf_denoiser``).

    sigma is the RF time t in [0, 1] with x_t = (1-t)·x0 + t·noise, passed to ``inner`` unscaled; the network
    (``rectified_flow`` and ``rf_denoiser`` objectives alike, including ARC post-training) is trained on the
    velocity target ``noise - x0``, and ``sample_flow_pingpong`` forms ``denoised = x - t * model(x, t)``.
    """

    def __init__(self, inner: Callable[..., Tensor]) -> None:
        self.inner = inner

    def __call__(self, x: Tensor, sigma: Tensor, **extra_args: Any) -> Tensor:
        v = self.inner(x, sigma, **extra_args)  # [B, C, T]
        return x - _append_dims(sigma, x.ndim).to(x.dtype) * v


# ------------------------------------------------------------------------------------------------ samplers


def _schedule(sigmas: Tensor) -> list[float]:
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise SamplingError(f"sigmas must be 1-D with at least 2 entries, got shape {tuple(sigmas.shape)}")
    values = [float(v) for v in sigmas.tolist()]
    if not all(math.isfinite(v) and v > 0 for v in values[:-1]) or not values[-1] >= 0:
        raise SamplingError("sigmas must be finite, > 0 except the last, and the last >= 0")
    return values


def _sigma_vec(value: float, x: Tensor, sigmas: Tensor) -> Tensor:
    # Keep the schedule's precision (float32 at least) for the network's noise level, whatever x's dtype.
    dtype = sigmas.dtype if sigmas.dtype in (torch.float32, torch.float64) else torch.float32
    return torch.full((x.shape[0],), value, dtype=dtype, device=x.device)  # [B]


def _noise_sampler(
    x: Tensor, generator: torch.Generator | None, noise_sampler: NoiseSampler | None, who: str
) -> NoiseSampler:
    if noise_sampler is not None:
        return noise_sampler
    if generator is None:
        raise SamplingError(f"{who} is stochastic: pass generator=torch.Generator(...) (or noise_sampler=...)")

    def draw(sigma: float, sigma_next: float) -> Tensor:
        # i.i.d. N(0, 1) per step instead of k-diffusion's torchsde BrownianTree: no torchsde dependency, and one
        # generator seed fixes the whole render. Drawn in float32 on the generator's device, then moved, so the
        # stream depends only on the seed, not on the latent's dtype/device (a CPU generator driving a CUDA
        # latent draws on CPU, as diffusers' randn_tensor does; float32 latents get diffusers' exact stream).
        noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=torch.float32)
        return noise.to(device=x.device, dtype=x.dtype)

    return draw


def _report(callback: StepCallback | None, x: Tensor, i: int, sigma: float, sigma_hat: float, den: Tensor) -> None:
    # Exceptions raised by the callback propagate on purpose: that is how a caller cancels a render.
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma_hat, "denoised": den})


@torch.no_grad()
def sample_euler(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: Mapping[str, Any] | None = None,
    callback: StepCallback | None = None,
    generator: torch.Generator | None = None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> Tensor:
    """Euler steps on the probability-flow ODE, Karras et al. (2022) Algorithm 2 (k-diffusion ``sample_euler``)."""
    s, kw = _schedule(sigmas), dict(extra_args or {})
    churn_noise = None
    for i in range(len(s) - 1):
        gamma = min(s_churn / (len(s) - 1), 2**0.5 - 1) if s_tmin <= s[i] <= s_tmax else 0.0
        sigma_hat = s[i] * (gamma + 1)
        if gamma > 0:
            # Unlike k-diffusion we only draw when churning, so the plain ODE never needs a generator.
            if churn_noise is None:
                churn_noise = _noise_sampler(x, generator, None, "sample_euler with s_churn > 0")
            x = x + churn_noise(s[i], sigma_hat) * (s_noise * (sigma_hat**2 - s[i] ** 2) ** 0.5)
        denoised = denoiser(x, _sigma_vec(sigma_hat, x, sigmas), **kw)  # [B, C, T]
        _report(callback, x, i, s[i], sigma_hat, denoised)
        d = (x - denoised) / sigma_hat  # Karras ODE derivative dx/dsigma
        x = x + d * (s[i + 1] - sigma_hat)
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: Mapping[str, Any] | None = None,
    callback: StepCallback | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """DPM-Solver++(2M), Lu et al. (2022) Algorithm 2, for VE sigmas (k-diffusion ``sample_dpmpp_2m``).

    ``generator`` is accepted for a uniform signature and unused: the solver is deterministic.
    """
    s, kw = _schedule(sigmas), dict(extra_args or {})
    old_denoised: Tensor | None = None
    for i in range(len(s) - 1):
        denoised = denoiser(x, _sigma_vec(s[i], x, sigmas), **kw)
        _report(callback, x, i, s[i], s[i], denoised)
        ratio = s[i + 1] / s[i]  # sigma_fn(t_next)/sigma_fn(t) = exp(-h); h = log-SNR/2 step, lambda = -log sigma
        if old_denoised is None or s[i + 1] == 0:
            x = ratio * x + (1 - ratio) * denoised  # first order (DDIM) step; the last step lands on x0
        else:
            r = math.log(s[i - 1] / s[i]) / math.log(s[i] / s[i + 1])  # h_last / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = ratio * x + (1 - ratio) * denoised_d
        old_denoised = denoised
    return x


@torch.no_grad()
def sample_dpmpp_2m_sde(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: Mapping[str, Any] | None = None,
    callback: StepCallback | None = None,
    generator: torch.Generator | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None,
    solver_type: str = "midpoint",
) -> Tensor:
    """DPM-Solver++(2M) SDE, Lu et al. (2022) SDE-DPM-Solver++(2M) with k-diffusion's eta (``sample_dpmpp_2m_sde``)."""
    if solver_type not in ("midpoint", "heun"):
        raise SamplingError(f"solver_type must be 'midpoint' or 'heun', got {solver_type!r}")
    s, kw = _schedule(sigmas), dict(extra_args or {})
    noise = _noise_sampler(x, generator, noise_sampler, "sample_dpmpp_2m_sde") if eta else None
    old_denoised: Tensor | None = None
    h_last: float | None = None
    for i in range(len(s) - 1):
        denoised = denoiser(x, _sigma_vec(s[i], x, sigmas), **kw)
        _report(callback, x, i, s[i], s[i], denoised)
        if s[i + 1] == 0:
            x = denoised  # final denoising step
            h = None
        else:
            h = math.log(s[i] / s[i + 1])
            eta_h = eta * h
            phi = -math.expm1(-h - eta_h)  # 1 - exp(-(1 + eta) h)
            x = (s[i + 1] / s[i] * math.exp(-eta_h)) * x + phi * denoised
            if old_denoised is not None and h_last is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + ((phi / (-h - eta_h) + 1) * (1 / r)) * (denoised - old_denoised)
                else:
                    x = x + (0.5 * phi * (1 / r)) * (denoised - old_denoised)
            if noise is not None:
                x = x + noise(s[i], s[i + 1]) * (s[i + 1] * math.sqrt(-math.expm1(-2 * eta_h)) * s_noise)
        old_denoised, h_last = denoised, h
    return x


@torch.no_grad()
def sample_dpmpp_3m_sde(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: Mapping[str, Any] | None = None,
    callback: StepCallback | None = None,
    generator: torch.Generator | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None,
) -> Tensor:
    """DPM-Solver++(3M) SDE: Lu et al. (2022) 3rd-order multistep with k-diffusion's eta (``sample_dpmpp_3m_sde``)."""
    s, kw = _schedule(sigmas), dict(extra_args or {})
    noise = _noise_sampler(x, generator, noise_sampler, "sample_dpmpp_3m_sde") if eta else None
    denoised_1: Tensor | None = None
    denoised_2: Tensor | None = None
    h_1: float | None = None
    h_2: float | None = None
    for i in range(len(s) - 1):
        denoised = denoiser(x, _sigma_vec(s[i], x, sigmas), **kw)
        _report(callback, x, i, s[i], s[i], denoised)
        if s[i + 1] == 0:
            x = denoised  # final denoising step
            h = None
        else:
            h = math.log(s[i] / s[i + 1])
            h_eta = h * (eta + 1)
            x = math.exp(-h_eta) * x + (-math.expm1(-h_eta)) * denoised
            phi_2 = math.expm1(-h_eta) / h_eta + 1
            if h_2 is not None and h_1 is not None and denoised_1 is not None and denoised_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * (r0 / (r0 + r1))
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None and denoised_1 is not None:
                x = x + phi_2 * ((denoised - denoised_1) / (h_1 / h))
            if noise is not None:
                x = x + noise(s[i], s[i + 1]) * (s[i + 1] * math.sqrt(-math.expm1(-2 * h * eta)) * s_noise)
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


@torch.no_grad()
def sample_pingpong(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: Mapping[str, Any] | None = None,
    callback: StepCallback | None = None,
    generator: torch.Generator | None = None,
    noise_sampler: NoiseSampler | None = None,
) -> Tensor:
    """Ping-pong sampling for rectified-flow denoisers (stable-audio-tools ``sample_flow_pingpong``, SAO Small).

    Each step denoises to x0 and re-noises to the next RF time: x = (1 - t_next)·x0 + t_next·n. Use with
    ``RFDenoiser`` and sigmas in [0, 1] (e.g. ``get_sigmas_rf_logsnr``).
    """
    s, kw = _schedule(sigmas), dict(extra_args or {})
    if max(s) > 1.0:
        raise SamplingError(f"pingpong needs rectified-flow times in [0, 1], got max sigma {max(s)}")
    noise = _noise_sampler(x, generator, noise_sampler, "sample_pingpong")
    for i in range(len(s) - 1):
        denoised = denoiser(x, _sigma_vec(s[i], x, sigmas), **kw)
        _report(callback, x, i, s[i], s[i], denoised)
        # Noise is drawn on every step, the last (t_next = 0) included, like the reference and diffusers'
        # stochastic FlowMatchEulerDiscreteScheduler: the same seed then gives the same render in all three.
        x = (1 - s[i + 1]) * denoised + s[i + 1] * noise(s[i], s[i + 1])
    return x


SAMPLERS: dict[str, Callable[..., Tensor]] = {
    "euler": sample_euler,
    "dpmpp-2m": sample_dpmpp_2m,
    "dpmpp-2m-sde": sample_dpmpp_2m_sde,
    "dpmpp-3m-sde": sample_dpmpp_3m_sde,
    "pingpong": sample_pingpong,
}


def sample(name: str, denoiser: Denoiser, x: Tensor, sigmas: Tensor, **kw: Any) -> Tensor:
    """Run the sampler registered under ``name`` (k-diffusion sampler registry style)."""
    try:
        fn = SAMPLERS[name]
    except KeyError:
        raise SamplingError(f"unknown sampler {name!r}; valid samplers: {', '.join(sorted(SAMPLERS))}") from None
    return fn(denoiser, x, sigmas, **kw)
