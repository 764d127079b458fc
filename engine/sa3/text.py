"""T5Gemma prompts for Stable Audio 3: transformers' tokenizer and encoder, found in the model folder.

The reference (`T5GemmaConditioner`) tokenizes to `max_length` (256) with padding and truncation
and keeps the encoder's `last_hidden_state`; padded positions are replaced later, by the model's
learned padding embedding (`SA3Model.conditioning`). Nothing is downloaded: the encoder and the
tokenizer are read from folders on disk, and a missing one is a `TextEncoderMissingError` that
says which files are missing and where to put them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from ..errors import ModelLoadError, TextEncoderMissingError

ENCODER_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")


def encoder_problem(path: Path) -> str | None:
    """Why `path` is not a Hugging Face text-encoder folder, or None if it is one."""
    if not path.is_dir():
        return f"{path} does not exist"
    if not (path / "config.json").is_file():
        return f"{path} has no config.json"
    if not any((path / name).is_file() for name in ENCODER_WEIGHTS):
        return f"{path} has no weights ({' or '.join(ENCODER_WEIGHTS)})"
    return None


def tokenizer_problem(path: Path) -> str | None:
    """Why `path` is not a Hugging Face tokenizer folder, or None if it is one."""
    if not path.is_dir():
        return f"{path} does not exist"
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        return f"{path} has no {' or '.join(TOKENIZER_FILES)}"
    return None


def find_text_encoder(
    folder: Path, candidates: Sequence[tuple[Path, Path]], override: Path | None = None
) -> tuple[Path, Path]:
    """(encoder dir, tokenizer dir): `override` (one folder holding both, or a text_encoder/ with a
    tokenizer/ beside it), else the first complete candidate pair; else a TextEncoderMissingError."""
    if override is not None:
        tok = override if tokenizer_problem(override) is None else override.parent / "tokenizer"
        problems = [p for p in (encoder_problem(override), tokenizer_problem(tok)) if p]
        if problems:
            raise TextEncoderMissingError(f"text encoder {override}: {'; '.join(problems)} (nothing is downloaded)")
        return override, tok
    for enc, tok in candidates:
        if encoder_problem(enc) is None and tokenizer_problem(tok) is None:
            return enc, tok
    enc, tok = candidates[0]
    found = [p for pair in candidates for p in (encoder_problem(pair[0]), tokenizer_problem(pair[1])) if p]
    where = " or ".join(
        f"{e.relative_to(folder)}/ + {t.relative_to(folder)}/" if e != t else f"{e.relative_to(folder)}/"
        for e, t in candidates
    )
    raise TextEncoderMissingError(
        f"{folder} needs its T5Gemma text encoder and tokenizer (google/t5gemma-b-b-ul2, Hugging Face format): "
        f"{found[0]}. Put the encoder (config.json + model.safetensors) and the tokenizer (tokenizer.json or "
        f"tokenizer.model + tokenizer_config.json) in {where}, or pass a text encoder path. Nothing is downloaded."
    )


class SA3TextEncoder:
    """Prompts -> (`[B, max_length, 768]` float32 hidden states, `[B, max_length]` bool mask)."""

    def __init__(self, encoder_dir: Path, tokenizer_dir: Path, max_length: int, cap_to_tokenizer: bool = False) -> None:
        """`cap_to_tokenizer`: at most the tokenizer's `model_max_length` tokens (diffusers' pipelines
        do this; the reference's conditioner pads to its configured `max_length` regardless)."""
        from transformers import AutoConfig, AutoTokenizer, T5GemmaEncoderModel
        from transformers.utils import logging as hf_logging

        self.max_length = max_length
        self.source = encoder_dir
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # a full encoder-decoder checkpoint lists its unused decoder keys
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
            config = AutoConfig.from_pretrained(str(encoder_dir), local_files_only=True)
            config.is_encoder_decoder = False  # as the reference: the encoder of a T5Gemma checkpoint
            self.model = T5GemmaEncoderModel.from_pretrained(
                str(encoder_dir), config=config, local_files_only=True, dtype=torch.float32
            )
        except Exception as exc:  # noqa: BLE001 - any reader failure is an unusable folder to the user
            raise ModelLoadError(f"the T5Gemma text encoder in {encoder_dir} could not be loaded: {exc}") from exc
        finally:
            hf_logging.set_verbosity(verbosity)
        if cap_to_tokenizer:
            self.max_length = min(max_length, int(getattr(self.tokenizer, "model_max_length", max_length)))
        self.model.eval().requires_grad_(False)
        logging.getLogger(__name__).debug("T5Gemma loaded from %s", encoder_dir)

    @torch.no_grad()
    def encode(self, prompts: Sequence[str], trim: bool = True) -> tuple[Tensor, Tensor]:
        """`trim`: run the encoder over the longest prompt's tokens only and pad its output with zeros
        to `max_length`. The encoder masks padding, so the prompt's own positions come out the same,
        and the model replaces padded positions anyway (learned or zero padding): a 12-token prompt
        costs 12 positions, not 256. Pass False where raw pad outputs are used (padding_mode none)."""
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(
            list(prompts),
            padding="longest" if trim else "max_length",
            max_length=self.max_length,
            truncation=True,
            return_tensors="pt",
        )
        ids = tokens["input_ids"].to(device)
        mask = tokens["attention_mask"].to(device).bool()
        hidden = self.model(input_ids=ids, attention_mask=mask)[0].float()  # [B, S, D]
        short = self.max_length - hidden.shape[1]
        if short > 0:
            hidden = torch.nn.functional.pad(hidden, (0, 0, 0, short))
            mask = torch.nn.functional.pad(mask, (0, short))
        return hidden, mask
