"""Tests for engine.sampling: schedules, denoiser wrappers and samplers.

Oracles, strongest first: diffusers schedulers driving the same tiny network (``test_*parity*``); float64
references written from the papers (DPM-Solver++, Lu et al. 2022; Karras et al. 2022 Alg. 2; stable-audio-tools
ping-pong); the k-diffusion 0.1.1 source itself when its wheel is available (optional, skipped otherwise).
"""

from __future__ import annotations

import ast
import glob
import importlib
import importlib.util
import math
import os
import sys
import types
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from engine import sampling as S
from engine.errors import RenderCancelled, RequestError

B, C, T = 2, 4, 16
SIG_MIN, SIG_MAX = S.DEFAULT_SIGMA_MIN, S.DEFAULT_SIGMA_MAX


class TinyNet:
    """Fixed random channel mix with a tanh and a time dependence; ``gain`` is a required keyword extra_arg."""

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.w = torch.randn(C, C, generator=g, dtype=torch.float64) / C**0.5
        self.b = torch.randn(C, 1, generator=g, dtype=torch.float64)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, *, gain: float) -> torch.Tensor:
        w, b, tt = self.w.to(x.dtype), self.b.to(x.dtype), t.to(x.dtype)[:, None, None]
        mix = torch.einsum("oc,bct->bot", w, torch.tanh(x))  # [B, C, T]
        return gain * (mix * (1 + tt) + b * torch.cos(3 * tt) - 0.3 * x)


NET = TinyNet()
EA = {"gain": 0.7}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: a second OpenMP thread only adds wake-up latency (10x slower on a busy box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def ve_setup(n: int, dtype: torch.dtype = torch.float32, seed: int = 1):
    """Product-style VE schedule, start latent x = N(0, 1)·sigma_max and per-sigma injected noise."""
    sig = S.get_sigmas_polyexponential(n, SIG_MIN, SIG_MAX)
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(B, C, T, generator=g, dtype=torch.float64) * sig[0].double()).to(dtype)
    noises = {float(s): torch.randn(B, C, T, generator=g, dtype=torch.float64) for s in sig.tolist()}
    return sig, x, noises


def injector(noises: dict[float, torch.Tensor], dtype: torch.dtype) -> Callable[[Any, Any], torch.Tensor]:
    return lambda s, s_next: noises[float(s)].to(dtype)


def cos_time(sigma: torch.Tensor) -> torch.Tensor:
    return sigma.atan() / math.pi * 2


# --------------------------------------------------------------------------------------------- schedules


def test_polyexponential_endpoints_and_log_uniform_spacing() -> None:
    sig = S.get_sigmas_polyexponential(100, SIG_MIN, SIG_MAX)
    assert sig.shape == (101,) and sig[-1].item() == 0.0
    assert sig[0].item() == pytest.approx(SIG_MAX, rel=1e-6)
    assert sig[-2].item() == pytest.approx(SIG_MIN, rel=1e-6)
    steps = sig[:-1].double().log().diff()
    assert (steps < 0).all() and (steps.max() - steps.min()).item() < 1e-4
    sig2 = S.get_sigmas_polyexponential(100, SIG_MIN, SIG_MAX, rho=2.0)
    assert sig2[0].item() == pytest.approx(SIG_MAX, rel=1e-6) and sig2[-2].item() == pytest.approx(SIG_MIN, rel=1e-6)
    assert rel(sig2[1:-2], sig[1:-2]) > 1e-2  # rho really changes the interior


def test_karras_endpoints() -> None:
    sig = S.get_sigmas_karras(20, 0.002, 80.0)
    assert sig.shape == (21,) and sig[-1].item() == 0.0 and (sig[:-1].diff() < 0).all()
    assert sig[0].item() == pytest.approx(80.0, rel=1e-5) and sig[-2].item() == pytest.approx(0.002, rel=1e-4)


def test_rf_logsnr_schedule_is_the_reference_formula() -> None:
    t = S.get_sigmas_rf_logsnr(8)
    assert t.shape == (9,) and t[0].item() == 1.0 and t[-1].item() == 0.0 and (t.diff() < 0).all()
    expect = torch.sigmoid(-torch.linspace(-6.0, 2.0, 9, dtype=torch.float64))
    assert (t[1:-1].double() - expect[1:-1]).abs().max().item() < 1e-6
    # audio-to-audio: start log-SNR comes from sigma_max (reference quirk, incl. the +1e-6)
    t = S.get_sigmas_rf_logsnr(4, sigma_max=0.5)
    start = math.log(1.0 + 1e-6)
    expect = torch.sigmoid(-torch.linspace(start, 2.0, 5, dtype=torch.float64))
    assert t[0].item() == 0.5 and t[-1].item() == 0.0
    assert (t[1:-1].double() - expect[1:-1]).abs().max().item() < 1e-6


def _diffusers_sa3_logsnr_schedule() -> Callable[..., list[float]]:
    """diffusers' StableAudio3 ``logsnr_sigma_schedule``, lifted from its source with ast.

    Importing the pipeline module costs seconds (transformers); the function itself only needs torch.
    """
    spec = importlib.util.find_spec("diffusers")
    if spec is None or spec.origin is None:
        pytest.skip("diffusers not installed")
    path = os.path.join(os.path.dirname(spec.origin), "pipelines", "stable_audio_3", "pipeline_stable_audio_3.py")
    if not os.path.isfile(path):
        pytest.skip("this diffusers has no StableAudio3 pipeline")
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "logsnr_sigma_schedule"), None)
    if fn is None:
        pytest.skip("logsnr_sigma_schedule not found in diffusers' StableAudio3 pipeline")
    ns: dict[str, Any] = {"torch": torch, "List": list}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), path, "exec"), ns)
    return ns["logsnr_sigma_schedule"]


def test_rf_logsnr_schedule_parity_with_diffusers_sa3() -> None:
    ref = torch.tensor(_diffusers_sa3_logsnr_schedule()(8, -6.0, 2.0) + [0.0])
    assert (S.get_sigmas_rf_logsnr(8) - ref).abs().max().item() < 1e-6


def test_schedule_argument_validation() -> None:
    for bad in [(0, 0.1, 1.0), (5, 0.0, 1.0), (5, 2.0, 1.0), (5, 0.1, math.inf)]:
        with pytest.raises(ValueError):
            S.get_sigmas_polyexponential(*bad)
        with pytest.raises(ValueError):
            S.get_sigmas_karras(*bad)
    for sigma_max in (0.0, 1.5):
        with pytest.raises(ValueError):
            S.get_sigmas_rf_logsnr(8, sigma_max=sigma_max)


def test_strength_mapping() -> None:
    f = lambda s: S.init_sigma_for_strength(s, SIG_MIN, SIG_MAX)  # noqa: E731
    assert f(0.0) == 0.0 and f(1.0) == pytest.approx(SIG_MAX, rel=1e-12)
    grid = [f(i / 20) for i in range(21)]
    assert all(a < b for a, b in zip(grid, grid[1:]))
    assert f(0.5) == pytest.approx(math.sqrt(SIG_MIN * SIG_MAX), rel=1e-12)  # log-linear
    for bad in (-0.01, 1.01, math.nan):
        with pytest.raises(ValueError):
            f(bad)


# ---------------------------------------------------------------------------------------------- wrappers


def test_vdenoiser_recovers_x0_from_the_exact_v() -> None:
    g = torch.Generator().manual_seed(3)
    x0, eps = (torch.randn(B, C, T, generator=g, dtype=torch.float64) for _ in range(2))
    sigma = torch.tensor([0.05, 40.0], dtype=torch.float64)

    def oracle_v(x_in: torch.Tensor, t: torch.Tensor, *, tag: str) -> torch.Tensor:
        assert tag == "passed"
        a, s = (t * math.pi / 2).cos()[:, None, None], (t * math.pi / 2).sin()[:, None, None]
        e = (x_in - a * x0) / s  # x_in must be the VP-scaled input a·x0 + s·eps
        return a * e - s * x0  # v target of Salimans & Ho (2022)

    out = S.VDenoiser(oracle_v)(x0 + sigma[:, None, None] * eps, sigma, tag="passed")
    assert (out - x0).abs().max().item() < 1e-12


def test_rfdenoiser_recovers_x0_from_the_exact_velocity() -> None:
    g = torch.Generator().manual_seed(4)
    x0, n = (torch.randn(B, C, T, generator=g, dtype=torch.float64) for _ in range(2))
    t = torch.tensor([0.3, 0.9], dtype=torch.float64)

    def oracle_v(x: torch.Tensor, tt: torch.Tensor, *, tag: str) -> torch.Tensor:
        assert tag == "passed"
        return n - x0  # stable-audio-tools rf target: noise - x0

    xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * n
    assert (S.RFDenoiser(oracle_v)(xt, t, tag="passed") - x0).abs().max().item() < 1e-12


# ------------------------------------------------------------------------------------ diffusers parity


def drive(
    sched: Any,
    x: torch.Tensor,
    net_time: Callable[[int, Any], torch.Tensor],
    *,
    v_scaled: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Diffusers pipeline loop: (scale input) -> TinyNet -> scheduler.step."""
    for i, t in enumerate(sched.timesteps):
        inp = sched.scale_model_input(x, t) if v_scaled else x
        out = NET(inp, net_time(i, t).expand(x.shape[0]), **EA)
        kw = {"generator": generator} if generator is not None else {}
        x = sched.step(out, t, x, **kw).prev_sample
    return x


def edm_dpmsolver(n: int, sig: torch.Tensor, **cfg: Any):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.EDMDPMSolverMultistepScheduler(
        sigma_min=SIG_MIN,
        sigma_max=SIG_MAX,
        sigma_data=1.0,
        sigma_schedule="exponential",
        prediction_type="v_prediction",
        lower_order_final=True,
        euler_at_final=False,
        final_sigmas_type="zero",
        **cfg,
    )
    sched.set_timesteps(n)
    # Its exponential schedule is k-diffusion's polyexponential(rho=1) up to float32 rounding...
    assert rel(sched.sigmas, sig) < 1e-5
    # ...then run both on the identical sigma list. Its c_noise (log(sigma)/4) is EDM's, so the harness feeds
    # the network VDenoiser's time atan(sigma)·2/pi itself; c_in, c_skip/c_out and the solver are diffusers'.
    sched.sigmas, sched.timesteps = sig.clone(), 0.25 * sig[:-1].log()
    return sched


def test_dpmpp_2m_parity_with_diffusers_edm_dpmsolver() -> None:
    n = 25  # >= 15 so diffusers does not drop to lower order on the second-to-last step (k-diffusion never does)
    sig, x, _ = ve_setup(n)
    sched = edm_dpmsolver(n, sig, solver_order=2, algorithm_type="dpmsolver++", solver_type="midpoint")
    ref = drive(sched, x, lambda i, t: cos_time(sched.sigmas[i]), v_scaled=True)
    ours = S.sample_dpmpp_2m(S.VDenoiser(NET), x, sig, extra_args=EA)
    assert rel(ours, ref) < 1e-5


def test_dpmpp_3m_sde_eta0_parity_with_diffusers_edm_dpmsolver_order3() -> None:
    # k-diffusion's 3M at eta=0 is DPM-Solver++(3M); its 2nd step uses the "heun" 2nd-order coefficient.
    n = 25
    sig, x, _ = ve_setup(n)
    sched = edm_dpmsolver(n, sig, solver_order=3, algorithm_type="dpmsolver++", solver_type="heun")
    ref = drive(sched, x, lambda i, t: cos_time(sched.sigmas[i]), v_scaled=True)
    ours = S.sample_dpmpp_3m_sde(S.VDenoiser(NET), x, sig, extra_args=EA, eta=0.0)
    assert rel(ours, ref) < 1e-5


def test_dpmpp_2m_sde_parity_with_diffusers_edm_sde_same_generator_seed() -> None:
    # diffusers' sde-dpmsolver++ draws i.i.d. noise from the generator each step, like us: same seed, same render.
    n = 25
    sig, x, _ = ve_setup(n)
    sched = edm_dpmsolver(n, sig, solver_order=2, algorithm_type="sde-dpmsolver++", solver_type="midpoint")
    ref = drive(
        sched, x, lambda i, t: cos_time(sched.sigmas[i]), v_scaled=True, generator=torch.Generator().manual_seed(7)
    )
    ours = S.sample_dpmpp_2m_sde(S.VDenoiser(NET), x, sig, extra_args=EA, generator=torch.Generator().manual_seed(7))
    assert rel(ours, ref) < 1e-5


@pytest.fixture
def cosine_scheduler_cls(monkeypatch: pytest.MonkeyPatch):
    """diffusers' CosineDPMSolverMultistepScheduler (StableAudioPipeline's scheduler) without torchsde.

    The module imports torchsde only for its Brownian-tree noise, which the test replaces with injected noise,
    so a stub is enough. Modules imported under the stub are evicted afterwards so nothing else sees them.
    """
    pytest.importorskip("diffusers")
    if importlib.util.find_spec("torchsde") is None:
        monkeypatch.setitem(sys.modules, "torchsde", types.ModuleType("torchsde"))
    before = set(sys.modules)
    mod = importlib.import_module("diffusers.schedulers.scheduling_cosine_dpmsolver_multistep")
    yield mod.CosineDPMSolverMultistepScheduler
    for name in set(sys.modules) - before:
        sys.modules.pop(name, None)


def test_vdenoiser_dpmpp_2m_sde_parity_with_diffusers_cosine_dpmsolver(cosine_scheduler_cls: Any) -> None:
    n = 25
    sig, x, noises = ve_setup(n)
    sched = cosine_scheduler_cls(
        sigma_min=SIG_MIN,
        sigma_max=SIG_MAX,
        sigma_data=1.0,
        sigma_schedule="exponential",
        solver_order=2,
        prediction_type="v_prediction",
        solver_type="midpoint",
        lower_order_final=True,
        euler_at_final=False,
        final_sigmas_type="zero",
    )
    sched.set_timesteps(n)
    assert rel(sched.sigmas, sig) < 1e-5
    # Same sigma list; its timesteps are atan(sigma)·2/pi, so here the network time is the scheduler's own.
    sched.sigmas, sched.timesteps = sig.clone(), cos_time(sig[:-1])
    sched.noise_sampler = injector(noises, torch.float32)
    ref = drive(sched, x, lambda i, t: t, v_scaled=True)
    ours = S.sample_dpmpp_2m_sde(
        S.VDenoiser(NET), x, sig, extra_args=EA, eta=1.0, noise_sampler=injector(noises, torch.float32)
    )
    assert rel(ours, ref) < 1e-5


def test_euler_parity_with_diffusers_edm_euler() -> None:
    diffusers = pytest.importorskip("diffusers")
    n = 30
    sig, x, _ = ve_setup(n)
    sched = diffusers.EDMEulerScheduler(
        sigma_min=SIG_MIN,
        sigma_max=SIG_MAX,
        sigma_data=1.0,
        sigma_schedule="exponential",
        prediction_type="v_prediction",
        final_sigmas_type="zero",
    )
    sched.set_timesteps(n)
    assert rel(sched.sigmas, sig) < 1e-5
    sched.sigmas, sched.timesteps = sig.clone(), 0.25 * sig[:-1].log()
    ref = drive(sched, x, lambda i, t: cos_time(sched.sigmas[i]), v_scaled=True)
    assert rel(S.sample_euler(S.VDenoiser(NET), x, sig, extra_args=EA), ref) < 1e-5


def test_pingpong_parity_with_diffusers_flowmatch_stochastic_same_generator_seed() -> None:
    diffusers = pytest.importorskip("diffusers")
    t = S.get_sigmas_rf_logsnr(8)
    x = torch.randn(B, C, T, generator=torch.Generator().manual_seed(5))
    sched = diffusers.FlowMatchEulerDiscreteScheduler(stochastic_sampling=True)
    sched.set_timesteps(sigmas=t[:-1].tolist())
    assert torch.equal(sched.sigmas, t)
    ref = drive(sched, x, lambda i, _: sched.sigmas[i], v_scaled=False, generator=torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(9)
    ours = S.sample_pingpong(S.RFDenoiser(NET), x, t, extra_args=EA, generator=g)
    assert rel(ours, ref) < 1e-6
    # Same number of draws as diffusers and the reference (the last, zero-weighted one included), so a generator
    # shared with later work is left in the same state.
    g_ref = torch.Generator().manual_seed(9)
    for _ in range(len(t) - 1):
        torch.randn(B, C, T, generator=g_ref)
    assert torch.equal(g.get_state(), g_ref.get_state())


# ----------------------------------------------------------------------------- float64 paper references


def ref_euler(den: Callable, x: torch.Tensor, sig: list[float]) -> torch.Tensor:
    """Karras et al. (2022) Algorithm 2 without churn: x += (sigma_next - sigma)·(x - D(x))/sigma."""
    for s, s_next in zip(sig[:-1], sig[1:]):
        x = x + (s_next - s) * (x - den(x, s)) / s
    return x


def ref_dpmsolverpp(
    den: Callable,
    x: torch.Tensor,
    sig: list[float],
    *,
    order: int,
    eta: float = 0.0,
    noise: Callable | None = None,
    second: str = "midpoint",
) -> torch.Tensor:
    """DPM-Solver++ multistep (Lu et al. 2022, Alg. 2 for order 2; official 3rd-order multistep), VE: alpha = 1,
    lambda = -log sigma. SDE form with eta as in k-diffusion: x-coefficient sigma_t/sigma_s·e^{-eta h}, the phi
    functions evaluated at (1+eta)h, noise sigma_t·sqrt(1 - e^{-2 eta h}). The last step (sigma = 0) returns D."""
    lam = [-math.log(s) if s > 0 else math.inf for s in sig]
    ms: list[torch.Tensor] = []
    for i in range(len(sig) - 1):
        ms.append(den(x, sig[i]))
        if sig[i + 1] == 0:
            x = ms[-1]
            continue
        h = lam[i + 1] - lam[i]
        hh = (1 + eta) * h
        phi1, phi2 = -math.expm1(-hh), math.expm1(-hh) / hh + 1
        k = min(order, len(ms))
        x_new = sig[i + 1] / sig[i] * math.exp(-eta * h) * x + phi1 * ms[-1]
        if k >= 2:
            r0 = (lam[i] - lam[i - 1]) / h
            d1_0 = (ms[-1] - ms[-2]) / r0
            if k == 2:
                x_new = x_new + (0.5 * phi1 if (order == 2 and second == "midpoint") else phi2) * d1_0
            else:
                r1 = (lam[i - 1] - lam[i - 2]) / h
                d1_1 = (ms[-2] - ms[-3]) / r1
                d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                x_new = x_new + phi2 * d1 - (phi2 / hh - 0.5) * d2
        if eta and noise is not None:
            x_new = x_new + sig[i + 1] * math.sqrt(-math.expm1(-2 * eta * h)) * noise(sig[i], sig[i + 1])
        x = x_new
    return x


def f64_den(x: torch.Tensor, s: float) -> torch.Tensor:
    return S.VDenoiser(NET)(x, torch.full((x.shape[0],), s, dtype=torch.float64), **EA)


@pytest.mark.parametrize("case", ["euler", "2m", "2m-sde", "2m-sde-heun-eta0.5", "3m-sde", "3m-sde-eta0.5", "3m-ode"])
def test_samplers_match_float64_references(case: str) -> None:
    n = 100 if case.startswith("3m-sde") else 40  # 3M SDE: the product default, 100 steps, 0.03…500
    sig, x, noises = ve_setup(n)
    sl = [float(v) for v in sig.tolist()]
    nz = injector(noises, torch.float64)
    refs = {
        "euler": lambda: ref_euler(f64_den, x.double(), sl),
        "2m": lambda: ref_dpmsolverpp(f64_den, x.double(), sl, order=2),
        "2m-sde": lambda: ref_dpmsolverpp(f64_den, x.double(), sl, order=2, eta=1.0, noise=nz),
        "2m-sde-heun-eta0.5": lambda: ref_dpmsolverpp(
            f64_den, x.double(), sl, order=2, eta=0.5, noise=nz, second="heun"
        ),
        "3m-sde": lambda: ref_dpmsolverpp(f64_den, x.double(), sl, order=3, eta=1.0, noise=nz),
        "3m-sde-eta0.5": lambda: ref_dpmsolverpp(f64_den, x.double(), sl, order=3, eta=0.5, noise=nz),
        "3m-ode": lambda: ref_dpmsolverpp(f64_den, x.double(), sl, order=3),
    }
    ref = refs[case]()

    def ours(dtype: torch.dtype) -> torch.Tensor:
        kw: dict[str, Any] = {"extra_args": EA}
        sde = "dpmpp-2m-sde" if case.startswith("2m") else "dpmpp-3m-sde"
        name = {"euler": "euler", "2m": "dpmpp-2m"}.get(case, sde)
        if name.endswith("sde"):
            kw.update(noise_sampler=injector(noises, dtype), eta=0.5 if "eta0.5" in case else 1.0)
            if case == "3m-ode":
                kw["eta"] = 0.0
            if "heun" in case:
                kw["solver_type"] = "heun"
        return S.sample(name, S.VDenoiser(NET), x.to(dtype), sig.to(dtype), **kw)

    assert rel(ours(torch.float64), ref) < 1e-12
    assert rel(ours(torch.float32), ref) < 1e-5


def test_pingpong_matches_float64_reference() -> None:
    t = S.get_sigmas_rf_logsnr(8)
    tl = [float(v) for v in t.tolist()]
    g = torch.Generator().manual_seed(2)
    x = torch.randn(B, C, T, generator=g, dtype=torch.float64)
    z = [torch.randn(B, C, T, generator=g, dtype=torch.float64) for _ in tl]
    ref = x.clone()
    for i in range(len(tl) - 1):  # sample_flow_pingpong: x0 = x - t·v, then x = (1 - t')·x0 + t'·z
        v = NET(ref, torch.full((B,), tl[i], dtype=torch.float64), **EA)
        ref = (1 - tl[i + 1]) * (ref - tl[i] * v) + tl[i + 1] * z[i]
    ns = lambda s, s_next, d=torch.float64: z[tl.index(float(s))].to(d)  # noqa: E731
    ours64 = S.sample_pingpong(S.RFDenoiser(NET), x, t.double(), extra_args=EA, noise_sampler=ns)
    ours32 = S.sample_pingpong(
        S.RFDenoiser(NET), x.float(), t, extra_args=EA, noise_sampler=lambda s, sn: ns(s, sn, torch.float32)
    )
    assert rel(ours64, ref) < 1e-12 and rel(ours32, ref) < 1e-5


# ----------------------------------------------------------------------------------------- properties

STOCHASTIC = [
    ("dpmpp-2m-sde", S.VDenoiser, {}),
    ("dpmpp-3m-sde", S.VDenoiser, {}),
    ("pingpong", S.RFDenoiser, {}),
    ("euler", S.VDenoiser, {"s_churn": 5.0}),
]


def _start(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    if name == "pingpong":
        return torch.randn(B, C, T, generator=g), S.get_sigmas_rf_logsnr(8)
    sig = S.get_sigmas_polyexponential(12, SIG_MIN, SIG_MAX)
    return torch.randn(B, C, T, generator=g) * sig[0], sig


@pytest.mark.parametrize("name,wrap,kw", STOCHASTIC)
def test_seed_reproducibility_and_no_global_rng(name: str, wrap: type, kw: dict[str, Any]) -> None:
    x, sig = _start(name)

    def run(seed: int) -> torch.Tensor:
        return S.sample(name, wrap(NET), x, sig, extra_args=EA, generator=torch.Generator().manual_seed(seed), **kw)

    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = run(123)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is never consumed
    torch.manual_seed(999)  # ...and never read
    assert torch.equal(run(123), a)
    assert rel(run(124), a) > 1e-3
    with pytest.raises(ValueError, match="generator"):
        S.sample(name, wrap(NET), x, sig, extra_args=EA, **kw)


@pytest.mark.parametrize("name,wrap,kw", STOCHASTIC)
def test_seeded_noise_does_not_depend_on_latent_dtype(name: str, wrap: type, kw: dict[str, Any]) -> None:
    # The generator draws float32 whatever x's dtype, so a float64 run is the float32 render to rounding.
    x, sig = _start(name)

    def run(dtype: torch.dtype) -> torch.Tensor:
        return S.sample(
            name, wrap(NET), x.to(dtype), sig, extra_args=EA, generator=torch.Generator().manual_seed(5), **kw
        )

    assert rel(run(torch.float32), run(torch.float64)) < 1e-5


ALL = [
    ("euler", {}),
    ("dpmpp-2m", {}),
    ("dpmpp-2m-sde", {"eta": 0.0}),
    ("dpmpp-3m-sde", {"eta": 0.0}),
    ("dpmpp-2m-sde", {"generator": None}),
    ("dpmpp-3m-sde", {"generator": None}),
    ("pingpong", {"generator": None}),
]


@pytest.mark.parametrize("name,kw", ALL)
def test_perfect_denoiser_returns_x0_and_ode_stays_on_the_noise_ray(name: str, kw: dict[str, Any]) -> None:
    x, sig = _start(name)
    eps = torch.randn(B, C, T, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    x0 = torch.randn(B, C, T, generator=torch.Generator().manual_seed(13), dtype=torch.float64).float()
    if name == "pingpong":
        x = ((1 - sig[0]) * x0 + sig[0] * eps).float()
    else:
        x = (x0 + sig[0] * eps).float()
    kw = {k: (torch.Generator().manual_seed(1) if k == "generator" else v) for k, v in kw.items()}
    seen: list[dict[str, Any]] = []
    out = S.sample(name, lambda xx, s: x0, x, sig, callback=seen.append, **kw)
    assert rel(out, x0) < 1e-6
    assert all(torch.equal(d["denoised"], x0) for d in seen)
    stochastic = name == "pingpong" or kw.get("eta", 1.0) != 0.0
    if not stochastic:  # exact ODE solution with D = x0 is x0 + sigma·eps: every solver must stay on it
        for d in seen:
            assert rel(d["x"], x0 + d["sigma"] * eps) < 1e-5


@pytest.mark.parametrize("name", sorted(S.SAMPLERS))
def test_callback_once_per_step_in_order(name: str) -> None:
    x, sig = _start(name)
    wrap = S.RFDenoiser if name == "pingpong" else S.VDenoiser
    seen: list[dict[str, Any]] = []
    S.sample(name, wrap(NET), x, sig, extra_args=EA, callback=seen.append, generator=torch.Generator().manual_seed(0))
    assert [d["i"] for d in seen] == list(range(len(sig) - 1))
    assert [d["sigma"] for d in seen] == pytest.approx(sig[:-1].tolist())
    assert all(set(d) == {"x", "i", "sigma", "sigma_hat", "denoised"} for d in seen)


@pytest.mark.parametrize("name", sorted(S.SAMPLERS))
def test_callback_exception_cancels_sampling(name: str) -> None:
    x, sig = _start(name)
    calls = []

    def den(xx: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        calls.append(s[0].item())
        return torch.zeros_like(xx)

    def cb(d: dict[str, Any]) -> None:
        if d["i"] == 2:
            raise RenderCancelled("stop")

    with pytest.raises(RenderCancelled):
        S.sample(name, den, x, sig, callback=cb, generator=torch.Generator().manual_seed(0))
    assert len(calls) == 3


def test_unknown_sampler_name_lists_valid_names() -> None:
    x, sig = _start("euler")
    with pytest.raises(ValueError) as info:
        S.sample("dpmpp-4m", S.VDenoiser(NET), x, sig)
    assert isinstance(info.value, S.SamplingError) and isinstance(info.value, RequestError)
    msg = str(info.value)
    assert "dpmpp-4m" in msg and all(k in msg for k in S.SAMPLERS)
    assert set(S.SAMPLERS) == {"euler", "dpmpp-2m", "dpmpp-2m-sde", "dpmpp-3m-sde", "pingpong"}


def test_extra_args_reach_the_network() -> None:
    x, sig = _start("euler")
    a = S.sample_dpmpp_2m(S.VDenoiser(NET), x, sig, extra_args={"gain": 0.7})
    b = S.sample_dpmpp_2m(S.VDenoiser(NET), x, sig, extra_args={"gain": 0.2})
    assert rel(a, b) > 1e-3
    with pytest.raises(TypeError):
        S.sample_dpmpp_2m(S.VDenoiser(NET), x, sig)  # gain is required by TinyNet


def test_invalid_sigmas_and_options_raise() -> None:
    x, sig = _start("euler")
    with pytest.raises(ValueError):
        S.sample_euler(S.VDenoiser(NET), x, sig[None], extra_args=EA)
    with pytest.raises(ValueError):
        S.sample_euler(S.VDenoiser(NET), x, torch.tensor([1.0, -0.5, 0.0]), extra_args=EA)
    with pytest.raises(ValueError):
        S.sample_pingpong(
            S.RFDenoiser(NET), x, torch.tensor([2.0, 0.5, 0.0]), extra_args=EA, generator=torch.Generator()
        )
    with pytest.raises(ValueError):
        S.sample_dpmpp_2m_sde(S.VDenoiser(NET), x, sig, extra_args=EA, solver_type="rk4", generator=torch.Generator())


def test_half_precision_latent_stays_half() -> None:
    x, sig = _start("euler")
    out = S.sample_dpmpp_3m_sde(
        S.VDenoiser(NET), x.to(torch.bfloat16), sig, extra_args=EA, generator=torch.Generator().manual_seed(0)
    )
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


# ------------------------------------------------------------------- optional oracle: k-diffusion itself


def _kdiffusion_wheel() -> str | None:
    # `make venv` downloads it to .venv/oracles/; elsewhere point LONGPLAY_KDIFFUSION_WHEEL at one.
    root = Path(__file__).resolve().parents[2]
    paths = [os.environ.get("LONGPLAY_KDIFFUSION_WHEEL", "")] + sorted(
        glob.glob(str(root / ".venv" / "oracles" / "k_diffusion-*.whl")) + glob.glob("/tmp/kd/k_diffusion-*.whl")
    )
    return next((p for p in paths if p and os.path.isfile(p)), None)


@pytest.fixture(scope="module")
def kdiff() -> dict[str, types.ModuleType]:
    """k-diffusion 0.1.1 ``sampling.py``/``external.py`` straight from its wheel, with import-only stubs.

    The package ``__init__`` (which pulls torchvision) is never run; scipy/torchdiffeq/torchsde are only needed
    by functions not exercised here, and the Brownian tree is replaced by injected noise.
    """
    wheel = _kdiffusion_wheel()
    if wheel is None:
        pytest.skip(
            "k-diffusion wheel not found (make venv fetches it: pip download --no-deps "
            "k-diffusion==0.1.1.post1 -d .venv/oracles)"
        )
    with zipfile.ZipFile(wheel) as zf:
        src = {n: zf.read(f"k_diffusion/{n}.py").decode() for n in ("sampling", "external")}
    pkg = types.ModuleType("kd_oracle")
    pkg.__path__ = []
    utils = types.ModuleType("kd_oracle.utils")
    utils.append_dims = lambda v, n: v[(...,) + (None,) * (n - v.ndim)]  # type: ignore[attr-defined]
    stubs = {n: types.ModuleType(n) for n in ("scipy", "scipy.integrate", "torchdiffeq", "torchsde")}
    stubs["scipy"].integrate = stubs["scipy.integrate"]  # type: ignore[attr-defined]
    stubs["torchdiffeq"].odeint = None  # type: ignore[attr-defined]
    saved = {k: sys.modules.get(k) for k in [*stubs, "kd_oracle", "kd_oracle.utils"]}
    sys.modules.update(stubs, kd_oracle=pkg, **{"kd_oracle.utils": utils})
    mods: dict[str, types.ModuleType] = {}
    try:
        for n in ("sampling", "external"):
            mod = types.ModuleType(f"kd_oracle.{n}")
            mod.__package__ = "kd_oracle"
            sys.modules[f"kd_oracle.{n}"] = mod
            setattr(pkg, n, mod)
            exec(compile(src[n], f"k_diffusion/{n}.py", "exec"), mod.__dict__)
            mods[n] = mod
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
        for n in ("sampling", "external"):
            sys.modules.pop(f"kd_oracle.{n}", None)
    return mods


@pytest.mark.parametrize(
    "name,kw",
    [
        ("euler", {}),
        ("dpmpp_2m", {}),
        ("dpmpp_2m_sde", {"eta": 1.0}),
        ("dpmpp_2m_sde", {"eta": 0.5, "solver_type": "heun"}),
        ("dpmpp_3m_sde", {"eta": 1.0}),
        ("dpmpp_3m_sde", {"eta": 0.0}),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_kdiffusion_source_parity(
    kdiff: dict[str, types.ModuleType], name: str, kw: dict[str, Any], dtype: torch.dtype
) -> None:
    ks, ke = kdiff["sampling"], kdiff["external"]
    sig = S.get_sigmas_polyexponential(30, SIG_MIN, SIG_MAX)
    assert torch.equal(sig, ks.get_sigmas_polyexponential(30, SIG_MIN, SIG_MAX))
    _, x, noises = ve_setup(30, dtype)
    sig = sig.to(dtype)
    if name.endswith("sde"):
        kw = {**kw, "noise_sampler": injector(noises, dtype)}
    ours = getattr(S, f"sample_{name}")(S.VDenoiser(NET), x, sig, extra_args=EA, **kw)
    theirs = getattr(ks, f"sample_{name}")(ke.VDenoiser(NET), x, sig, extra_args=EA, disable=True, **kw)
    assert rel(ours, theirs) < (1e-13 if dtype == torch.float64 else 2e-6)
