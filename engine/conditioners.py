"""Conditioners: prompt text -> tokens, numbers (seconds_start / seconds_total) -> one token each,
the key a prompt names -> one token.

Layout equals stable-audio-tools' `MultiConditioner` (`conditioner.conditioners.<id>.*`). The T5
encoder's weights are not part of the model checkpoint (as in the reference); they are loaded
from a local Hugging Face folder with `local_files_only=True` — never from the network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from .config import ConditionerSpec
from .errors import ConfigError, RequestError, TextEncoderMissingError
from .keys import prompt_key, scale_of

CondTensors = dict[str, tuple[Tensor, Tensor]]  # id -> (embeddings [B, S, D], mask [B, S])


class LearnedPositionalEmbedding(nn.Module):
    """Learned Fourier features of a scalar in [0, 1]: output `[u, sin, cos]` (dim + 1 wide)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weights = nn.Parameter(torch.randn(dim // 2))

    def forward(self, x: Tensor) -> Tensor:  # x: [B]
        x = x[:, None]
        freqs = x * self.weights[None, :] * 2 * math.pi
        return torch.cat((x, freqs.sin(), freqs.cos()), dim=-1)  # [B, dim + 1]


class NumberEmbedder(nn.Module):
    def __init__(self, features: int, dim: int = 256):
        super().__init__()
        self.embedding = nn.Sequential(LearnedPositionalEmbedding(dim), nn.Linear(dim + 1, features))

    def forward(self, x: Tensor) -> Tensor:
        return cast(Tensor, self.embedding(x))


class NumberConditioner(nn.Module):
    """Clamp to [min, max], normalise to [0, 1], embed: `[B]` -> (`[B, 1, D]`, ones `[B, 1]`)."""

    def __init__(self, output_dim: int, min_val: float = 0.0, max_val: float = 1.0):
        super().__init__()
        self.min_val, self.max_val = float(min_val), float(max_val)
        self.embedder = NumberEmbedder(output_dim)

    def forward(self, values: Sequence[float], device: torch.device | str) -> tuple[Tensor, Tensor]:
        x = torch.tensor([float(v) for v in values], device=device)
        x = x.clamp(self.min_val, self.max_val)
        x = (x - self.min_val) / (self.max_val - self.min_val)
        x = x.to(cast(nn.Linear, self.embedder.embedding[1]).weight.dtype)
        emb = self.embedder(x)[:, None, :]  # [B, 1, D]
        return emb, torch.ones(emb.shape[0], 1, device=device)


T5_DIMS = {
    "t5-small": 512,
    "t5-base": 768,
    "t5-large": 1024,
    "t5-3b": 1024,
    "t5-11b": 1024,
    "google/t5-v1_1-base": 768,
    "google/flan-t5-small": 512,
    "google/flan-t5-base": 768,
    "google/flan-t5-large": 1024,
}


class T5Conditioner(nn.Module):
    """Prompt -> T5 encoder last hidden state, pads zeroed, padded to `max_length` tokens.

    The mask is returned but, as in the reference, the DiT attends to all `max_length` tokens
    (pads are zero vectors, not masked out).
    """

    def __init__(
        self,
        output_dim: int,
        t5_model_name: str = "t5-base",
        max_length: int = 128,
        project_out: bool = False,
        enable_grad: bool = False,
    ):
        super().__init__()
        if t5_model_name not in T5_DIMS:
            raise ConfigError(f"t5_model_name {t5_model_name!r} is not one of {sorted(T5_DIMS)}")
        self.model_name, self.max_length = t5_model_name, max_length
        dim = T5_DIMS[t5_model_name]
        self.proj_out = nn.Linear(dim, output_dim) if (dim != output_dim or project_out) else nn.Identity()
        # Kept out of the module tree so its weights never enter the DiT checkpoint.
        self.__dict__["encoder"] = None
        self.__dict__["tokenizer"] = None

    @property
    def ready(self) -> bool:
        return self.__dict__["encoder"] is not None

    def attach(self, encoder_dir: Path, tokenizer_dir: Path | None = None) -> None:
        """Load a Hugging Face T5 encoder (+ tokenizer) from local folders; no network access."""
        from transformers import AutoTokenizer, T5EncoderModel

        tokenizer_dir = tokenizer_dir or encoder_dir
        try:
            tok = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
            enc = T5EncoderModel.from_pretrained(str(encoder_dir), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise TextEncoderMissingError(
                f"could not load the T5 text encoder from {encoder_dir} (tokenizer {tokenizer_dir}): {exc}"
            ) from exc
        self.__dict__["encoder"] = enc.eval().requires_grad_(False)
        self.__dict__["tokenizer"] = tok

    def forward(self, texts: Sequence[str], device: torch.device | str) -> tuple[Tensor, Tensor]:
        enc, tok = self.__dict__["encoder"], self.__dict__["tokenizer"]
        if enc is None:
            raise TextEncoderMissingError(
                f"this model needs the {self.model_name} text encoder: put its Hugging Face folders in "
                f"the model folder as text_encoder/ and tokenizer/, or pass a text encoder path"
            )
        enc.to(device)
        batch = tok(list(texts), truncation=True, max_length=self.max_length, padding="max_length", return_tensors="pt")
        ids = batch["input_ids"].to(device)
        mask = batch["attention_mask"].to(device).bool()
        with torch.no_grad():
            h = enc(input_ids=ids, attention_mask=mask)["last_hidden_state"]
        h = self.proj_out(h.float())
        return h * mask[..., None].float(), mask


class KeyConditioner(nn.Module):
    """The key a prompt names -> one token: its scale's pitch-class set and its tonic (12 + 12 bits,
    plus one saying a key was named), projected without a bias, so a prompt naming no key gives
    the zero token -- the same null the unconditional branch of classifier-free guidance uses.

    Our own addition (longplay-mini v2, issue 19): a small corpus names each of 72 keys a few times,
    too few for a text encoder to learn what "Eb lydian" sounds like; as pitch classes, every song
    teaches all twelve. `engine.keys.prompt_key` is the parser, the same in training and rendering.
    """

    FEATURES = 25

    def __init__(self, output_dim: int):
        super().__init__()
        self.proj = nn.Linear(self.FEATURES, output_dim, bias=False)
        nn.init.zeros_(self.proj.weight)  # starts silent: added to a trained model, it is a null token

    @staticmethod
    def features(prompt: str) -> list[float]:
        key = prompt_key(prompt)
        if key is None:
            return [0.0] * KeyConditioner.FEATURES
        scale = scale_of(key)
        return [1.0] + [float(pc in scale) for pc in range(12)] + [float(pc == key[0]) for pc in range(12)]

    def forward(self, prompts: Sequence[str], device: torch.device | str) -> tuple[Tensor, Tensor]:
        x = torch.tensor([self.features(str(p)) for p in prompts], device=device, dtype=self.proj.weight.dtype)
        return self.proj(x)[:, None, :], x[:, :1].bool()  # [B, 1, D], mask [B, 1]: a key was named


def _longplay_text(output_dim: int, c: Mapping[str, Any]) -> nn.Module:
    from .text_encoder import LongplayTextConditioner

    return LongplayTextConditioner(
        output_dim,
        int(c.get("max_length", 64)),
        int(c.get("width", 256)),
        int(c.get("depth", 2)),
        int(c.get("num_heads", 4)),
    )


# type -> factory(output_dim, config) ; later issues register their own (e.g. our small encoder).
CONDITIONER_TYPES: dict[str, Callable[[int, Mapping[str, Any]], nn.Module]] = {
    "number": lambda d, c: NumberConditioner(d, c.get("min_val", 0), c.get("max_val", 1)),
    "longplay_text": lambda d, c: _longplay_text(d, c),
    "longplay_key": lambda d, c: KeyConditioner(d),
    "t5": lambda d, c: T5Conditioner(
        d,
        c.get("t5_model_name", "t5-base"),
        c.get("max_length", 128),
        c.get("project_out", False),
        c.get("enable_grad", False),
    ),
}


class MultiConditioner(nn.Module):
    """Runs each conditioner on its own metadata key: `[{id: value}] * B` -> {id: (emb, mask)}.
    A conditioner whose config has `"source"` reads that key instead (the key conditioner reads
    the prompt)."""

    def __init__(self, specs: Sequence[ConditionerSpec]):
        super().__init__()
        modules = {}
        self.sources = {spec.id: str(spec.config.get("source", spec.id)) for spec in specs}
        for spec in specs:
            factory = CONDITIONER_TYPES.get(spec.type)
            if factory is None:
                raise ConfigError(
                    f"conditioner {spec.id!r}: unsupported type {spec.type!r} (supported: {sorted(CONDITIONER_TYPES)})"
                )
            modules[spec.id] = factory(spec.output_dim, spec.config)
        self.conditioners = nn.ModuleDict(modules)

    def forward(self, metadata: Sequence[Mapping[str, Any]], device: torch.device | str) -> CondTensors:
        out: CondTensors = {}
        for key, cond in self.conditioners.items():
            source = self.sources[key]
            missing = [i for i, m in enumerate(metadata) if source not in m]
            if missing:
                raise RequestError(f"conditioning value {source!r} missing for batch item(s) {missing}")
            out[key] = cond([m[source] for m in metadata], device)
        return out
