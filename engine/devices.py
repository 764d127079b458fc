"""Device and precision choice: CUDA or MPS when present, else CPU; half precision only where it pays.

On CPU, bf16 autocast is used only when the CPU has AMX tiles or AVX512-BF16: there a bf16 matmul
runs several times faster than fp32, while on AVX2-only CPUs it runs far slower (measured in
benchmarks/bench_engine.py). On CUDA, bf16 where supported, else fp16.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .errors import RequestError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """`None`/"auto" -> cuda, else mps, else cpu; an explicit device that is absent is an error."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RequestError(f"device {device!r} requested but CUDA is not available on this machine")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RequestError(f"device {device!r} requested but MPS is not available on this machine")
    return dev


def cpu_has_fast_bf16() -> bool:
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(cpu, probe, None)
        if fn is not None and fn():
            return True
    return False


def half_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for the DiT on `device`, or None for plain fp32."""
    if precision not in PRECISIONS:
        raise RequestError(f"precision must be one of {', '.join(PRECISIONS)} (got {precision!r})")
    if precision == "fp32":
        return None
    if precision in ("bf16", "fp16"):
        return torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return None


@contextlib.contextmanager
def autocast_for(device: torch.device, precision: str = "auto") -> Iterator[None]:
    dtype = half_dtype(device, precision)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
