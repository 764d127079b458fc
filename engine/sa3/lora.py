"""LoRA files as the Stable Audio 3 release saves them, applied to an `SA3Model` for one render.

The release (`stable_audio_3/models/lora/`, `docs/workflows/lora.md`) trains adapters as
`torch.nn.utils.parametrize` parametrizations on every `Linear`/`Conv1d` weight of the DiT
(`DiTWrapper`: names `model.transformer.layers.3.self_attn.to_qkv`, ...) and of the conditioner
(`conditioners.seconds_total.embedder.embedding.1`; T5Gemma is not a registered module there, so it
never gets one), and saves `<layer>.parametrizations.weight.0.<tensor>` in float16 with the JSON
`lora_config` (`rank`, `alpha`, `adapter_type`, ...) in the safetensors metadata. At load it chains
the files' parametrizations (file i is parametrization i) and sets each one's `lora_strength`.

Here a render merges the same chain into the weights it touches and swaps the merged tensors in
for the duration of the render (`applied`); the base tensors are put back afterwards untouched
(the same objects, no arithmetic undone), so a later render without LoRA is bit-identical to one
before. Per layer, with `s = alpha / rank * strength` and the release's 2-D view `[out, in * k]`:

- `lora`: `W + s * B @ A`;  `lora-xs`: `W + s * U @ M @ V^T` with `U, V` from the SVD of the base
  weight (sign-canonicalised as the release does; cached per model);
- `dora-rows` / `dora-cols` (and `-xs`): `V = W + s * delta`, each row (column) of `V` normalised and
  scaled by `magnitude`; `bora` (and `-xs`): rows then columns, by `magnitude_r` then `magnitude_c`;
  a DoRA-family adapter at strength 0 returns `W` itself (as the release).

Our DiT is diffusers' class, so each released layer name is mapped through `convert.plan` (the same
table that loads an original folder); the differential `to_qkv` rows are permuted there, so the
merge runs in the release's row order and is permuted back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from ..audio_io import file_sha256
from ..errors import LoRAError
from . import convert
from .config import SA3Config

SUFFIX = ".parametrizations.weight.0."
# The tensors each adapter type saves (the release's `_get_adapter_param_names`).
ADAPTERS: dict[str, tuple[str, ...]] = {
    "lora": ("lora_A", "lora_B"),
    "dora-rows": ("lora_A", "lora_B", "magnitude"),
    "dora-cols": ("lora_A", "lora_B", "magnitude"),
    "bora": ("lora_A", "lora_B", "magnitude_r", "magnitude_c"),
    "lora-xs": ("M_xs",),
    "dora-rows-xs": ("M_xs", "magnitude"),
    "dora-cols-xs": ("M_xs", "magnitude"),
    "bora-xs": ("M_xs", "magnitude_r", "magnitude_c"),
}
_EPS = 1e-12  # the release's norm guard


@dataclass(frozen=True)
class Layer:
    """A released layer a LoRA may adapt: the built tensor it is (`part`, `key`) and whether its
    rows are permuted between the release and diffusers (differential `to_qkv`)."""

    part: str  # convert.DIT | convert.DURATION
    key: str
    permute_qkv: bool = False


def release_layers(cfg: SA3Config) -> dict[str, Layer]:
    """Released layer name (as a LoRA file names it) -> the built weight, for every weight a LoRA
    may adapt (the DiT's and the seconds_total conditioner's matrices)."""
    out: dict[str, Layer] = {}
    for key, rule in convert.plan(cfg).items():
        if rule.part not in (convert.DIT, convert.DURATION) or not key.endswith(".weight"):
            continue
        if key.startswith(convert.PREFIX_DIT):
            name = key[len("model.") : -len(".weight")]  # relative to DiTWrapper: "model.transformer..."
        else:
            name = key[len("conditioner.") : -len(".weight")]  # relative to MultiConditioner
        out[name] = Layer(rule.part, rule.key, rule.permute_qkv)
    return out


@dataclass(frozen=True)
class LoRAFile:
    """One LoRA checkpoint, read and checked against a model: its tensors per released layer."""

    path: str
    sha256: str
    adapter_type: str
    rank: int
    alpha: float
    layers: dict[str, dict[str, Tensor]] = field(repr=False)

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def recipe(self, scale: float) -> dict[str, object]:
        """What the render's recipe records of it."""
        return {"path": self.path, "sha256": self.sha256[:12], "scale": scale, "adapter_type": self.adapter_type}


def read_lora(path: str | Path, cfg: SA3Config, model: nn.Module | None = None) -> LoRAFile:
    """Read a release LoRA `.safetensors` and check it fits `cfg`'s model (and, given `model`, its
    weights' shapes); a `LoRAError` names the path, and the key, of whatever does not fit."""
    from safetensors import SafetensorError, safe_open

    p = Path(path).expanduser()
    if not p.is_file():
        raise LoRAError(f"lora: no such file: {path}")
    if p.suffix != ".safetensors":
        raise LoRAError(
            f"lora: {path} is not a .safetensors file (convert a .ckpt with the release's "
            "convert_lora_ckpt_to_safetensors)"
        )
    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise LoRAError(f"lora: {path} is not a readable safetensors file ({err})") from None
    try:
        config = json.loads(meta.get("lora_config", "{}"))
    except json.JSONDecodeError as err:
        raise LoRAError(f"lora: {path}: its lora_config metadata is not JSON ({err})") from None
    if not isinstance(config, dict):
        raise LoRAError(f"lora: {path}: its lora_config metadata is not a JSON object")
    layers: dict[str, dict[str, Tensor]] = {}
    for key, t in tensors.items():
        name, sep, param = key.rpartition(SUFFIX)
        if not sep or "." in param:
            raise LoRAError(f"lora: {path}: {key!r} is not a LoRA tensor (<layer>{SUFFIX}<tensor>)")
        layers.setdefault(name, {})[param] = t.float()
    if not layers:
        raise LoRAError(f"lora: {path} holds no LoRA tensors")
    adapter = _adapter_type(str(config.get("adapter_type", "lora")), layers, path)
    rank = int(config.get("rank", _infer_rank(layers)))
    alpha = float(config.get("alpha", rank))
    if rank <= 0:
        raise LoRAError(f"lora: {path}: rank must be positive (got {rank})")
    known = release_layers(cfg)
    for name, params in layers.items():
        if name not in known:
            raise LoRAError(
                f"lora: {path} does not fit this Stable Audio 3 model: no layer {name!r} "
                f"(key {name + SUFFIX + next(iter(params))!r})"
            )
        want = ADAPTERS[adapter]
        for param in params:
            if param not in want:
                raise LoRAError(f"lora: {path}: {name + SUFFIX + param!r} is not a {adapter} tensor")
        for param in want:
            if param not in params:
                raise LoRAError(f"lora: {path}: {name + SUFFIX + param!r} is missing ({adapter} needs {want})")
        for param in ("magnitude", "magnitude_r", "magnitude_c"):
            if param in params and params[param].dim() == 2:  # the release's older (1, n) / (n, 1) shapes
                params[param] = params[param].reshape(-1)
        if model is not None:
            _check_shapes(path, name, params, _base(model, known[name]).shape, rank, adapter)
    return LoRAFile(str(p), file_sha256(p), adapter, rank, alpha, layers)


def _adapter_type(raw: str, layers: dict[str, dict[str, Tensor]], path: str | Path) -> str:
    """The release's `resolve_adapter_type`: legacy "dora" is rows or cols by its magnitude's shape."""
    if raw == "dora":
        for params in layers.values():
            m = params.get("magnitude")
            if m is not None and m.dim() == 2:
                return "dora-cols" if m.shape[0] == 1 else "dora-rows"
        return "dora-rows"
    if raw not in ADAPTERS:
        raise LoRAError(f"lora: {path}: unknown adapter_type {raw!r} (known: {', '.join(ADAPTERS)})")
    return raw


def _infer_rank(layers: dict[str, dict[str, Tensor]]) -> int:
    for params in layers.values():
        if "lora_A" in params:
            return int(params["lora_A"].shape[0])
        if "M_xs" in params:
            return int(params["M_xs"].shape[0])
    return 0


def _check_shapes(
    path: str | Path, name: str, params: dict[str, Tensor], shape: torch.Size, rank: int, adapter: str
) -> None:
    fan_out = int(shape[0])
    fan_in = int(torch.Size(shape[1:]).numel())
    rows_dim = adapter.startswith("dora-rows")
    want = {
        "lora_A": (rank, fan_in),
        "lora_B": (fan_out, rank),
        "M_xs": (rank, rank),
        "magnitude": (fan_out,) if rows_dim else (fan_in,),
        "magnitude_r": (fan_out,),
        "magnitude_c": (fan_in,),
    }
    for param, t in params.items():
        if tuple(t.shape) != want[param]:
            raise LoRAError(
                f"lora: {path} does not fit this Stable Audio 3 model: {name + SUFFIX + param!r} has "
                f"shape {tuple(t.shape)}, the model needs {want[param]}"
            )


def _base(model: nn.Module, layer: Layer) -> Tensor:
    module = getattr(model, layer.part)
    t: Tensor = module.get_parameter(layer.key)
    return t


def svd_bases(w0: Tensor, rank: int) -> tuple[Tensor, Tensor]:
    """The release's frozen LoRA-XS bases of a base weight `[out, in]`: `U [out, r]`, `V [in, r]`,
    signs fixed so each column of U has its largest-magnitude entry positive."""
    u, _, vh = torch.linalg.svd(w0.float().cpu(), full_matrices=False)
    idx = u.abs().argmax(dim=0)
    signs = u[idx, torch.arange(u.shape[1])].sign()
    signs[signs == 0] = 1
    u, vh = u * signs[None, :], vh * signs[:, None]
    return u[:, :rank].contiguous(), vh[:rank, :].T.contiguous()


def merge(
    w: Tensor, params: dict[str, Tensor], adapter: str, scaling: float, strength: float, bases: tuple[Tensor, Tensor]
) -> Tensor:
    """One parametrization of the release applied to `w` `[out, in]` float32 (its forward)."""
    if adapter.endswith("-xs"):
        u, v = bases
        delta = u @ params["M_xs"] @ v.T
    else:
        delta = params["lora_B"] @ params["lora_A"]
    s = scaling * torch.tensor(strength, dtype=torch.float32)
    if adapter in ("lora", "lora-xs"):
        return w + s * delta
    if strength == 0:
        return w
    v = w + s * delta
    if adapter.startswith("bora"):
        rows: Tensor = params["magnitude_r"][:, None] * (v / (v.norm(dim=1, keepdim=True) + _EPS))
        both: Tensor = params["magnitude_c"][None, :] * (rows / (rows.norm(dim=0, keepdim=True) + _EPS))
        return both
    dim = 1 if adapter.startswith("dora-rows") else 0
    out: Tensor = (v / (v.norm(dim=dim, keepdim=True) + _EPS)) * params["magnitude"].unsqueeze(dim)
    return out


SVDCache = dict[tuple[str, str, int], tuple[Tensor, Tensor]]


def _cached_bases(cache: SVDCache | None, key: tuple[str, str, int], w0: Tensor) -> tuple[Tensor, Tensor]:
    """The LoRA-XS bases of a base weight: an SVD per layer and rank, kept for the model's life
    (its base weights never change)."""
    if cache is not None and key in cache:
        return cache[key]
    found = svd_bases(w0, key[2])
    found = (found[0].to(w0.device), found[1].to(w0.device))
    if cache is not None:
        cache[key] = found
    return found


def merged_weights(
    model: nn.Module, cfg: SA3Config, loras: Sequence[tuple[LoRAFile, float]], cache: SVDCache | None = None
) -> dict[tuple[str, str], Tensor]:
    """(part, key) -> the weight with every LoRA's parametrization chained over it, in order."""
    known = release_layers(cfg)
    names = list(dict.fromkeys(n for lora, _ in loras for n in lora.layers))
    out: dict[tuple[str, str], Tensor] = {}
    for name in names:
        layer = known[name]
        base = _base(model, layer)
        w0 = base.detach().float().reshape(base.shape[0], -1)  # [out, in * k], the release's 2-D view
        if layer.permute_qkv:
            w0 = convert.unpermute_qkv(w0)
        w = w0
        for lora, strength in loras:
            params = lora.layers.get(name)
            if params is None:
                continue
            params = {k: t.to(w.device) for k, t in params.items()}
            bases = (w0, w0)  # unused by the non-XS adapters
            if lora.adapter_type.endswith("-xs"):
                bases = _cached_bases(cache, (layer.part, layer.key, lora.rank), w0)
            w = merge(w, params, lora.adapter_type, lora.scaling, strength, bases)
        if layer.permute_qkv:
            w = convert.permute_qkv(w)
        out[(layer.part, layer.key)] = w.reshape(base.shape).to(base.dtype)
    return out


@contextmanager
def applied(
    model: nn.Module, cfg: SA3Config, loras: Sequence[tuple[LoRAFile, float]], cache: SVDCache | None = None
) -> Iterator[None]:
    """Render with `loras` merged into `model`'s weights; the base tensors are restored on exit
    (the same tensor objects: no rounding is undone), whatever happens inside."""
    if not loras:
        yield
        return
    merged = merged_weights(model, cfg, loras, cache)
    saved: list[tuple[nn.Parameter, Tensor]] = []
    try:
        for (part, key), w in merged.items():
            p = getattr(model, part).get_parameter(key)
            saved.append((p, p.data))
            p.data = w
        yield
    finally:
        for p, data in reversed(saved):
            p.data = data
