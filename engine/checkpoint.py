"""Model folders: find them, load them strictly, save them.

A model folder is stable-audio-tools' release format: `model_config.json` plus
`model.safetensors` (or `model.ckpt`). Public folders load unchanged. Folders Longplay writes add
a `"longplay": {"format_version": N, ...}` block to the config (ignored by other tools); an
unknown version is refused with a `ModelLoadError` rather than failing deep inside a layer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .config import learned_latents, parse_model_config
from .errors import ConfigError, ModelLoadError
from .model import ConditionedDiffusionModel, build_model

if TYPE_CHECKING:
    from .sa3.model import SA3Model

FORMAT_VERSION = 1
CONFIG_NAME = "model_config.json"
WEIGHT_NAMES = ("model.safetensors", "model.ckpt")
REPO_MODELS = Path(__file__).resolve().parents[1] / "resources" / "models"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path
    description: str
    sample_rate: int
    window_seconds: float
    kind: str = "longplay"  # "longplay" | "stable-audio-open" | "stable-audio-3"


def model_search_paths() -> list[Path]:
    """Where model folders are looked up, first match wins: LONGPLAY_MODELS, user data, resources.

    LONGPLAY_BUILTIN_MODELS replaces the last one (`resources/models/` of this checkout), for a
    packaged app whose resources live elsewhere, or a test that must see no embedded model."""
    paths: list[Path] = []
    env = os.environ.get("LONGPLAY_MODELS")
    if env:
        paths += [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    try:
        from platformdirs import user_data_dir

        paths.append(Path(user_data_dir("longplay")) / "models")
    except ImportError:  # platformdirs is a declared dependency; tolerate its absence in odd installs
        pass
    builtin = os.environ.get("LONGPLAY_BUILTIN_MODELS")
    paths.append(Path(builtin).expanduser() if builtin else REPO_MODELS)
    return paths


def read_config(folder: Path) -> dict[str, Any]:
    cfg_path = folder / CONFIG_NAME
    if not cfg_path.is_file():
        raise ModelLoadError(f"{folder} is not a model folder: {CONFIG_NAME} is missing")
    try:
        raw: dict[str, Any] = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{cfg_path} is not readable JSON: {exc}") from exc
    meta = raw.get("longplay", {}) if isinstance(raw, dict) else {}
    version = meta.get("format_version", FORMAT_VERSION) if isinstance(meta, dict) else None
    if version != FORMAT_VERSION:
        raise ModelLoadError(
            f"{cfg_path}: longplay format_version {version!r} is not supported by this "
            f"version of Longplay (it reads version {FORMAT_VERSION})"
        )
    return raw


def trained_latents(raw: Any) -> str | None:
    """Which VAE latents a raw folder config says its network learned (`config.learned_latents`,
    for a folder not loaded as a model: `longplay train`'s defaults read it from any folder)."""
    return learned_latents(raw)


def find_models() -> list[ModelInfo]:
    """Every model folder under the search paths, named by folder; earlier paths shadow later."""
    from .sa3.folder import is_sa3_folder, read_sa3_config  # engine.sa3.folder imports this module

    seen: dict[str, ModelInfo] = {}
    for root in model_search_paths():
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if (p / CONFIG_NAME).is_file() or is_sa3_folder(p)):
            if folder.name in seen:
                continue
            try:
                if is_sa3_folder(folder):
                    sa3 = read_sa3_config(folder)
                    info = ModelInfo(folder.name, folder, "", sa3.sample_rate, sa3.max_seconds, "stable-audio-3")
                    seen[folder.name] = info
                    continue
                raw = read_config(folder)
                cfg = parse_model_config(raw)
            except ModelLoadError:
                continue
            meta = raw.get("longplay")
            desc = str(meta.get("description", "")) if isinstance(meta, dict) else ""
            kind = "longplay" if isinstance(meta, dict) else "stable-audio-open"
            seen[folder.name] = ModelInfo(folder.name, folder, desc, cfg.sample_rate, cfg.window_seconds, kind)
    return list(seen.values())


def resolve_model(name_or_path: str | os.PathLike[str] | None, default: str = "longplay-mini") -> Path:
    """A folder path, or a model name looked up in the search paths."""
    from .sa3.folder import is_sa3_folder

    name = str(name_or_path) if name_or_path is not None else default
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    for root in model_search_paths():
        if (root / name / CONFIG_NAME).is_file() or is_sa3_folder(root / name):
            return root / name
    where = ", ".join(str(p) for p in model_search_paths())
    raise ModelLoadError(f"model {name!r} not found (looked for a folder of that path, and in {where})")


def read_state_dict(folder: Path) -> dict[str, Tensor]:
    for name in WEIGHT_NAMES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            if name.endswith(".safetensors"):
                from safetensors.torch import load_file

                return load_file(str(path))
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any reader failure is a corrupt file to the user
            raise ModelLoadError(f"{path} could not be read: {exc}") from exc
        if isinstance(sd, Mapping) and "state_dict" in sd:
            sd = sd["state_dict"]
        return dict(sd)
    raise ModelLoadError(f"{folder} holds no weights ({' or '.join(WEIGHT_NAMES)})")


def load_state_dict_strict(model: torch.nn.Module, state: Mapping[str, Tensor], source: str = "checkpoint") -> None:
    """Copy `state` into `model`; any missing, unexpected or mis-shaped key is a `ModelLoadError`."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), first: {missing[0]!r}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), first: {unexpected[0]!r}")
        raise ModelLoadError(f"{source} does not fit the model config: " + "; ".join(parts))
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise ModelLoadError(
                f"{source}: key {k!r} has shape {tuple(state[k].shape)}, the config needs {tuple(v.shape)}"
            )
    model.load_state_dict(dict(state), strict=True)


def load_model(
    folder: str | os.PathLike[str] | None = None,
    text_encoder: str | os.PathLike[str] | None = None,
    require_text_encoder: bool = True,
) -> ConditionedDiffusionModel | SA3Model:
    """Load a model folder (or a model name) onto the CPU in float32, in eval mode: a
    stable-audio-tools folder (Longplay's, Stable Audio Open) or a Stable Audio 3 folder in either
    release layout (`engine.sa3.load_sa3`); `engine.Generator` renders both."""
    from .sa3.folder import is_sa3_folder, load_sa3

    path = resolve_model(folder)
    if is_sa3_folder(path):
        return load_sa3(path, text_encoder, require_text_encoder)
    raw = read_config(path)
    try:
        model = build_model(raw)
    except ConfigError as exc:
        raise ModelLoadError(f"{path / CONFIG_NAME}: {exc}") from exc
    load_state_dict_strict(model, read_state_dict(path), source=str(path))
    _attach_text_encoders(model, path, text_encoder, require_text_encoder)
    model.folder = path  # type: ignore[assignment]
    return model.eval().requires_grad_(False)


def _attach_text_encoders(
    model: ConditionedDiffusionModel, folder: Path, text_encoder: str | os.PathLike[str] | None, required: bool
) -> None:
    for cond in model.conditioner.conditioners.values():
        attach = getattr(cond, "attach", None)
        if attach is None:
            continue
        enc = Path(text_encoder) if text_encoder else folder / "text_encoder"
        tok = enc if text_encoder else folder / "tokenizer"
        if not tok.is_dir():
            tok = enc
        if enc.is_dir():
            attach(enc, tok)
        elif required:
            from .errors import TextEncoderMissingError

            raise TextEncoderMissingError(
                f"{folder} needs a text encoder: put the Hugging Face folders in {folder / 'text_encoder'} "
                f"and {folder / 'tokenizer'}, or pass a text encoder path (nothing is downloaded)"
            )


def save_model(
    model: ConditionedDiffusionModel,
    folder: str | os.PathLike[str],
    extra: Mapping[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write `model_config.json` (with the longplay block) + `model.safetensors` to `folder`.

    `dtype` (e.g. `torch.float16`) stores floating-point weights smaller; loading always builds
    float32 and copies into it, so a half-stored folder loads like any other."""
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    raw = dict(model.config.raw)
    meta = dict(raw.get("longplay", {}))
    meta["format_version"] = FORMAT_VERSION
    meta.update(extra or {})
    raw["longplay"] = meta
    tmp = out / (CONFIG_NAME + ".tmp")
    tmp.write_text(json.dumps(raw, indent=2), encoding="utf-8")
    os.replace(tmp, out / CONFIG_NAME)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    tmpw = out / "model.safetensors.tmp"
    save_file(state, str(tmpw), metadata={"format": "pt", "longplay_format_version": str(FORMAT_VERSION)})
    os.replace(tmpw, out / "model.safetensors")
    return out
