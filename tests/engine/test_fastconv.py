"""engine.fastconv: every fast path equals the plain torch op; the inference caches never go stale.

Fast paths run only without autograd (they work in place), so the comparisons run under
`torch.no_grad()`; `fastconv.plain()` switches everything back to the plain torch ops.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine import fastconv
from engine.autoencoder import AudioAutoencoder, DecoderBlock, EncoderBlock, ResidualUnit, SnakeBeta, WNConv1d
from engine.config import AutoencoderConfig, OobleckConfig

TOL = 1e-5  # max |fast - plain| / max |plain|, fp32


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------ convs


@pytest.mark.parametrize("b,t", [(1, 257), (2, 64), (3, 1)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("residual", [True, False])
def test_pointwise_conv_is_gemm_with_fused_residual(b: int, t: int, bias: bool, residual: bool) -> None:
    x, w = rand(b, 12, t, seed=1), rand(20, 12, 1, seed=2) / 4
    bb = rand(20, seed=3) if bias else None
    r = rand(b, 20, t, seed=4) if residual else None
    want = F.conv1d(x, w, bb) + (r if r is not None else 0)
    with torch.no_grad():
        got = fastconv.conv1d(x, w, bb, residual=r)
    assert got.is_contiguous()
    assert rel(got, want) <= TOL


# Every conv the Oobleck has: k7 dilated "same", k3 pad 1, strided k=2s pad ceil(s/2), odd lengths.
@pytest.mark.parametrize(
    "k,stride,padding,dilation",
    [
        (7, 1, 3, 1),
        (7, 1, 9, 3),
        (7, 1, 27, 9),
        (3, 1, 1, 0 + 1),
        (4, 2, 1, 1),
        (8, 4, 2, 1),
        (16, 8, 4, 1),
        (6, 3, 2, 1),
    ],
)
@pytest.mark.parametrize("t", [97, 128])
def test_conv1d_equals_torch(k: int, stride: int, padding: int, dilation: int, t: int) -> None:
    x, w, b = rand(2, 6, t, seed=5), rand(10, 6, k, seed=6) / 5, rand(10, seed=7)
    r = rand(*F.conv1d(x, w, b, stride, padding, dilation).shape, seed=8)
    with torch.no_grad():
        assert (
            rel(fastconv.conv1d(x, w, b, stride, padding, dilation), F.conv1d(x, w, b, stride, padding, dilation))
            <= TOL
        )
        assert (
            rel(
                fastconv.conv1d(x, w, b, stride, padding, dilation, residual=r),
                F.conv1d(x, w, b, stride, padding, dilation) + r,
            )
            <= TOL
        )


@pytest.mark.parametrize("stride", [2, 4, 8, 3])
@pytest.mark.parametrize("t", [1, 5, 33])
@pytest.mark.parametrize("bias", [True, False])
def test_transposed_conv_is_gemm_plus_overlap_add(stride: int, t: int, bias: bool) -> None:
    x, w = rand(2, 40, t, seed=9), rand(40, 24, 2 * stride, seed=10) / 3  # weight >= 4x input: GEMM path
    bb = rand(24, seed=11) if bias else None
    pad = math.ceil(stride / 2)
    want = F.conv_transpose1d(x, w, bb, stride, pad)
    with torch.no_grad():
        got = fastconv.conv_transpose1d(x, w, bb, stride, pad)
        assert got.is_contiguous() and rel(got, want) <= TOL
        w3 = rand(40, 24, 3, seed=12)  # kernels that are not 2*stride stay on torch
        assert rel(fastconv.conv_transpose1d(x, w3, bb, 2, 1), F.conv_transpose1d(x, w3, bb, 2, 1)) <= TOL


def test_plain_mode_and_autograd_use_torch_ops() -> None:
    x, w = rand(1, 4, 16, seed=13).requires_grad_(), rand(4, 4, 1, seed=14)
    assert not fastconv.enabled() and torch.is_grad_enabled()
    fastconv.conv1d(x, w, None).sum().backward()  # grad mode: plain ops, differentiable
    assert x.grad is not None
    with torch.no_grad():
        assert fastconv.enabled()
        with fastconv.plain():
            assert not fastconv.enabled()
        assert fastconv.enabled()


# ----------------------------------------------------------------------------------------- snake


def test_snake_fold_equals_formula() -> None:
    x = rand(2, 8, 301, seed=15)[:, :, 1:-3]  # a non-contiguous view, as a time tile is
    alpha, beta = rand(8, seed=16) * 0.5, rand(8, seed=17) * 0.5
    want = x + 1.0 / (beta.exp().view(1, -1, 1) + 1e-9) * torch.sin(alpha.exp().view(1, -1, 1) * x).pow(2)
    with torch.no_grad():
        got = fastconv.snake_beta(x, alpha.exp(), 1.0 / (beta.exp() + 1e-9))
    assert rel(got, want) <= 1e-6
    snake = SnakeBeta(8)
    with torch.no_grad():
        snake.alpha.copy_(alpha)
        snake.beta.copy_(beta)
        assert rel(snake(x), want) <= 1e-6
    assert rel(snake(x), want) <= 1e-6  # grad mode: the unfolded formula


def test_snake_cache_refreshes() -> None:
    snake, x = SnakeBeta(4).eval(), rand(1, 4, 50, seed=18)

    def plain_out() -> torch.Tensor:
        a, b = snake.alpha.detach().exp().view(1, -1, 1), snake.beta.detach().exp().view(1, -1, 1)
        return x + 1.0 / (b + 1e-9) * torch.sin(a * x).pow(2)

    with torch.no_grad():
        snake(x)
        snake.alpha.add_(0.3)  # in-place change (as an optimizer step)
        assert rel(snake(x), plain_out()) <= 1e-6
        snake.load_state_dict({"alpha": rand(4, seed=19), "beta": rand(4, seed=20)})
        assert rel(snake(x), plain_out()) <= 1e-6
        snake.beta.data = rand(4, seed=21)  # storage swapped
        assert rel(snake(x), plain_out()) <= 1e-6


# ---------------------------------------------------------------------------- weight-norm caches


@pytest.mark.parametrize("transpose", [False, True])
def test_wnconv_caches_refresh_on_any_parameter_change(transpose: bool) -> None:
    conv = WNConv1d(
        24, 24, 8 if transpose else 1, stride=4 if transpose else 1, padding=2 if transpose else 0, transpose=transpose
    ).eval()
    x = rand(1, 24, 20, seed=22)

    def plain_out(xx: torch.Tensor = x) -> torch.Tensor:
        with fastconv.plain():
            w = conv.weight().detach()
        if transpose:
            return F.conv_transpose1d(xx, w, conv.bias, 4, 2)
        return F.conv1d(xx, w, conv.bias)

    with torch.no_grad():
        first = conv(x)
        assert rel(first, plain_out()) <= TOL and conv._folded is not None
        conv.weight_v.mul_(-1.5)  # in place: a stale fold would give `first` again
        assert rel(conv(x), plain_out()) <= TOL
        conv.weight_g.add_(0.25)
        assert rel(conv(x), plain_out()) <= TOL
        sd = {k: rand(*v.shape, seed=23 + i) for i, (k, v) in enumerate(conv.state_dict().items())}
        conv.load_state_dict(sd)
        assert rel(conv(x), plain_out()) <= TOL
        conv.weight_v.data = rand(*conv.weight_v.shape, seed=30)
        assert rel(conv(x), plain_out()) <= TOL
        conv.double()  # dtype change: a new fold in float64
        got = conv(x.double())
        assert got.dtype == torch.float64 and rel(got, plain_out(x.double())) <= TOL


def test_residual_unit_fused_equals_plain() -> None:
    unit = ResidualUnit(8, 3, use_snake=True).eval()
    x = rand(2, 8, 77, seed=31)
    with torch.no_grad():
        with fastconv.plain():
            want = unit(x)
        assert rel(unit(x), want) <= TOL


# ----------------------------------------------------------------------------------------- tiles


@pytest.fixture
def small_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiles of a few dozen samples, so tiny blocks split into many tiles."""
    monkeypatch.setattr(fastconv, "TILE_ELEMS", 256)
    monkeypatch.setattr(fastconv, "MIN_TILED", 512)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("block", ["dec2", "dec4", "near4", "enc2", "enc4"])
def test_tiled_blocks_equal_whole_blocks(block: str, threads: int, small_tiles: None) -> None:
    torch.manual_seed(0)
    m = {
        "dec2": lambda: DecoderBlock(8, 4, 2, True, False),
        "dec4": lambda: DecoderBlock(8, 4, 4, True, False),
        "near4": lambda: DecoderBlock(8, 4, 4, True, True),
        "enc2": lambda: EncoderBlock(4, 8, 2, True),
        "enc4": lambda: EncoderBlock(4, 8, 4, True),
    }[block]().eval()
    enc = block.startswith("enc")
    t = 4 * 193 if enc else 193  # odd tile counts; the encoder's input a multiple of its stride
    x = rand(2, 4 if enc else 8, t, seed=32) * 0.5
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            with fastconv.plain():
                want = m(x)
            got = m(x)
            with torch.inference_mode():
                got_inf = m(x)
    finally:
        torch.set_num_threads(old)
    assert torch.get_num_threads() == old  # the parallel tiles restore the thread count
    assert rel(got, want) <= TOL and rel(got_inf, want) <= TOL


def test_run_tiled_short_input_is_one_call(small_tiles: None) -> None:
    calls = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[-1])
        return x * 2

    with torch.no_grad():
        fastconv.run_tiled(fn, torch.ones(1, 4, 20), halo=8)
        assert calls == [20]
        fastconv.run_tiled(fn, torch.ones(1, 4, 400), halo=2)
        assert len(calls) > 3 and sum(calls[1:]) > 400


def _tiny_autoencoder() -> AudioAutoencoder:
    enc = OobleckConfig(
        audio_channels=2,
        channels=8,
        c_mults=(1, 2, 4),
        strides=(2, 4, 4),
        latent_dim=8,
        use_snake=True,
        final_tanh=False,
    )
    dec = OobleckConfig(
        audio_channels=2,
        channels=8,
        c_mults=(1, 2, 4),
        strides=(2, 4, 4),
        latent_dim=4,
        use_snake=True,
        final_tanh=True,
    )
    ae = AudioAutoencoder(
        AutoencoderConfig(
            encoder=enc, decoder=dec, bottleneck="vae", latent_dim=4, downsampling_ratio=32, io_channels=2
        )
    ).eval()
    g = torch.Generator().manual_seed(33)
    with torch.no_grad():
        for name, p in ae.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "weight_g":
                p.copy_(0.25 + 0.5 * torch.rand(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 if leaf in ("alpha", "beta") else 0.1))
    return ae


@pytest.mark.parametrize("threads", [1, 2])
def test_whole_autoencoder_fast_equals_plain(threads: int, small_tiles: None) -> None:
    ae = _tiny_autoencoder()
    z, audio = rand(2, 4, 37, seed=34), rand(2, 2, 32 * 37, seed=35) * 0.5
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            with fastconv.plain():
                want_dec, want_enc = ae.decode(z), ae.encode(audio, sample=False)[0]
            got_dec, got_enc = ae.decode(z), ae.encode(audio, sample=False)[0]
    finally:
        torch.set_num_threads(old)
    assert rel(got_dec, want_dec) <= TOL and rel(got_enc, want_enc) <= TOL
