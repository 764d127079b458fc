"""The 1-D convolutions and the SnakeBeta activation of the autoencoder, in one place so they can be fast.

Measured on a 2-core AVX2 EPYC (no AMX, no avx512_bf16) shared with other jobs, so single ops
were timed as single-thread CPU time (min of 5-7, interleaved) and whole models with
`benchmarks/bench_engine.py` (2 threads, wall clock, interleaved medians).

Kept (pure fp32: equal to the plain torch op to ~1e-6 relative, tested in tests/engine/test_fastconv.py):

- time tiling (`run_tiled`) of each encoder/decoder block and of the audio-rate first/last conv:
  the block runs on overlapping time tiles of ~1M channels*samples (halo >= its receptive field,
  so the result is unchanged). Whole-signal tensors of the last decoder blocks are 32-64 MB at
  3 s of audio; glibc serves such sizes with fresh mmaps and every op page-faults its output in,
  while tile-sized tensors are reused from the heap and stay in cache. The tiles run in parallel
  on worker threads (1 torch thread each, see `run_tiled`): with 2 threads on a busy machine
  the last decoder block went from 4.5-5.8 s (untiled or sequential tiles) to 2.2-2.7 s.
- SnakeBeta at inference: exp(alpha), 1/(exp(beta)+1e-9) folded once (like the weight norm),
  then 3 in-place passes instead of 6 allocating ones: 1.3-1.5x per Snake.
- transposed convs with kernel 2*stride (all of Oobleck's) when the weight dominates the input
  (the first decoder block on a chunk: 2048 -> 1024 channels, 134 MB of weight): one GEMM on a
  no-copy view of the weight + a two-term overlap-add, 2x faster than `F.conv_transpose1d`
  (oneDNN re-lays out the weight on every call). A cached GEMM-layout copy would make it 3x, for
  +180 MB of SAO decoder memory: not taken. For larger inputs oneDNN is as fast (0.9-1.07x).
- k=1 convs as `addmm` with the ResidualUnit's residual add in the GEMM accumulator: the GEMM is
  as fast as oneDNN's 1x1 conv (0.95-1.2x), the fused add saves a pass and a tensor per unit.

Measured and dropped (numbers per op unless said):

- FFT (overlap-save) conv for the k=7 convs of 128-256 channels: ~1e-6 error and 1.2-1.7x faster
  alone, but only ~1.15x on a whole block, 1.1-2.5x *slower* with 2 threads (per-op or parallel
  tiles: its cached kernel spectra, 4-17 MB per conv, and complex intermediates stream from
  L3/DRAM), and +56-104 MB of spectra per model.
- k=7 convs as shifted GEMMs, im2col + GEMM, or in time-major layout: 0.7-1.0x of oneDNN, which
  runs them at this CPU's GEMM peak (~45-55 GFLOP/s per core). Polyphase split of the dilated
  ones: 0.95-1.3x, not worth the copies. `torch.backends.mkldnn` off: k=7 1.15x slower.
- torch.compile of the Snake: 30 s cold compile for 1.6x on an already-folded Snake (~3% of a
  decode). bf16: a k=7 conv takes ~170x the fp32 time here (no AMX/avx512_bf16), so nothing
  here uses bf16; `engine.devices.cpu_has_fast_bf16()` is the gate for CPUs where it pays.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F
from torch import Tensor

_fast = True  # False: every function below runs the plain torch op (the reference path)


def enabled() -> bool:
    """Fast inference paths are on (and autograd is off: the fused ops work in place)."""
    return _fast and not torch.is_grad_enabled()


@contextlib.contextmanager
def plain() -> Iterator[None]:
    """Run the plain torch ops inside the block (reference for tests and benchmarks)."""
    global _fast
    old, _fast = _fast, False
    try:
        yield
    finally:
        _fast = old


def stamp(*tensors: Tensor) -> tuple[object, ...]:
    """Identity + in-place version of parameters: a cache keyed on it goes stale when they change.

    `load_state_dict` copies into parameters in place (bumping `_version`); assigning `.data`
    changes the storage pointer. Inference tensors have no version counter (they cannot change).
    """
    out: list[object] = []
    for t in tensors:
        out += [t.data_ptr(), t.device, t.dtype, tuple(t.shape), -1 if t.is_inference() else t._version]
    return tuple(out)


# ------------------------------------------------------------------------------------------ convs


def conv1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    residual: Tensor | None = None,
) -> Tensor:
    """`[B, Cin, T]` x `[Cout, Cin, K]` -> `[B, Cout, T']`, same semantics as `F.conv1d`.

    `residual` (the output's shape) is added to the result.
    """
    if enabled() and weight.shape[-1] == 1 and stride == 1 and padding == 0 and x.dtype == weight.dtype:
        return _pointwise(x, weight[:, :, 0], bias, residual)
    y = F.conv1d(x, weight, bias, stride, padding, dilation)
    return y if residual is None else y.add_(residual)


def _pointwise(x: Tensor, w: Tensor, bias: Tensor | None, residual: Tensor | None) -> Tensor:
    """k=1 conv as `addmm` per batch item, accumulating onto the residual (and bias)."""
    b, t = x.shape[0], x.shape[-1]
    out = x.new_empty(b, w.shape[0], t)
    for i in range(b):
        if residual is not None:
            torch.addmm(residual[i], w, x[i], out=out[i])
            if bias is not None:
                out[i].add_(bias[:, None])
        elif bias is not None:
            torch.addmm(bias[:, None], w, x[i], out=out[i])
        else:
            torch.mm(w, x[i], out=out[i])
    return out


def conv_transpose1d(
    x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, padding: int = 0, dilation: int = 1
) -> Tensor:
    """`F.conv_transpose1d(x, weight [Cin, Cout, K], bias, stride, padding, dilation=dilation)`.

    Weight-dominated calls (the weight >= 4x the input, e.g. the first decoder block on a chunk)
    with K == 2*stride run as one GEMM on a no-copy view of the weight, Y = W^T x `[Cout, 2, s,
    T]`: output sample t*s + r receives Y[:, 0, r, t] + Y[:, 1, r, t-1], then `padding` samples
    are cropped at each end. Others stay on oneDNN, which is as fast there (0.9-1.07x).
    """
    cin, cout, k = weight.shape
    s = stride
    if not (
        enabled()
        and k == 2 * s
        and dilation == 1
        and 0 <= padding <= s
        and x.dtype == weight.dtype
        and weight.numel() >= 4 * x[0].numel()
    ):
        return F.conv_transpose1d(x, weight, bias, s, padding, dilation=dilation)
    b, _, t = x.shape
    wm = weight.reshape(cin, cout * k).t()  # [(Cout, K), Cin], a transposed view for the GEMM
    full = x.new_empty(b, cout, t + 1, s)
    for i in range(b):
        y = torch.mm(wm, x[i]).view(cout, 2, s, t).transpose(2, 3)  # [Cout, 2, T, s]
        full[i, :, :t] = y[:, 0]
        full[i, :, t] = 0
        full[i, :, 1:] += y[:, 1]
    out = full.view(b, cout, (t + 1) * s)[:, :, padding : (t + 1) * s - padding]
    return out + bias[:, None] if bias is not None else out.contiguous()


# ----------------------------------------------------------------------------------------- snake


def snake_beta(x: Tensor, alpha_exp: Tensor, inv_beta: Tensor) -> Tensor:
    """x + inv_beta * sin(alpha_exp * x)^2 with per-channel `[C]` factors (already exp'ed)."""
    a, ib = alpha_exp.view(1, -1, 1), inv_beta.view(1, -1, 1)
    if not enabled():
        return x + ib * torch.sin(a * x).pow(2)
    t = torch.mul(x, a).sin_().square_()
    return torch.addcmul(x, t, ib, out=t)


# ----------------------------------------------------------------------------------------- tiles

TILE_ELEMS = 1 << 20  # channels * samples of a tile's input or output: ~4 MB fp32
MIN_TILED = 1 << 20  # below this many channels * samples: one call, intra-op threads
PARALLEL_TILES = True  # tiles on worker threads, one torch thread each (see run_tiled)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _workers(n: int) -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers != n:  # noqa: SLF001
            _pool = ThreadPoolExecutor(n, thread_name_prefix="fastconv")
        return _pool


def run_tiled(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    halo: int,
    up: int = 1,
    down: int = 1,
    out_channels: int | None = None,
    tile_elems: int | None = None,
) -> Tensor:
    """`fn(x)` computed over overlapping time tiles; equal to `fn(x)` when `halo` covers its reach.

    `fn` maps `[B, C, T]` to `[B, C', T * up / down]` and is time-invariant with zero padding at
    the ends; output sample j depends on input samples within `halo` of j * down / up. Tiles start
    at multiples of `down` and their outputs are cropped by the halo, so every kept sample saw the
    same inputs as in the whole-signal call. Small inputs run in one call.

    With N > 1 torch threads the tiles (a multiple of N, of equal length) run on N worker threads
    while torch's intra-op threads are set to 1 (a process-wide setting, restored on return).
    Coarse tiles need no barrier per op: on a busy 2-core machine, where each fine-grained
    parallel op waits for its slowest (descheduled) thread, this measured 2.4x faster on the last
    decoder block than 2 intra-op threads per op. The layers' inference caches tolerate the
    concurrent first use (each thread may fold the same weight; the results are identical).
    """
    t = x.shape[-1]
    c_out = out_channels or x.shape[1]
    per_sample = max(x.shape[1], c_out * up // down)
    tile = max(down, (tile_elems or TILE_ELEMS) // per_sample // down * down)
    halo = -(-halo // down) * down
    threads = torch.get_num_threads() if PARALLEL_TILES else 1
    if not enabled() or t % down or t < threads * 4 * halo or x.shape[0] * t * per_sample <= MIN_TILED:
        return fn(x)
    n = -(-t // tile)
    n = -(-n // threads) * threads
    tile = -(-t // n // down) * down
    out = x.new_empty(x.shape[0], c_out, t * up // down)
    inference = torch.is_inference_mode_enabled()

    def work(a: int) -> None:
        b = min(a + tile, t)
        a0, b0 = max(a - halo, 0), min(b + halo, t)
        with torch.inference_mode(inference), torch.no_grad():  # grad mode is per thread
            y = fn(x[..., a0:b0])
            out[..., a * up // down : b * up // down] = y[..., (a - a0) * up // down : (b - a0) * up // down]

    starts = list(range(0, t, tile))
    if threads == 1:
        for a in starts:
            work(a)
        return out
    torch.set_num_threads(1)
    try:
        for f in [_workers(threads).submit(work, a) for a in starts]:
            f.result()
    finally:
        torch.set_num_threads(threads)
    return out
