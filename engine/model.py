"""The whole model: conditioner + DiT + autoencoder pretransform, and `build_model(config)`.

Top-level names mirror stable-audio-tools' `ConditionedDiffusionModelWrapper`
(`model.model.*`, `conditioner.conditioners.*`, `pretransform.model.*`), so `state_dict()` of a
model built from a public config has exactly the released checkpoint's keys and shapes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .autoencoder import AutoencoderPretransform
from .conditioners import CondTensors, MultiConditioner
from .config import AutoencoderConfig, ModelConfig, parse_model_config
from .dit import DiTWrapper, guided_forward
from .stft_codec import STFTCodecPretransform


class ConditionedDiffusionModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.model = DiTWrapper(config.dit)
        self.conditioner = MultiConditioner(config.conditioners)
        ae = config.autoencoder
        self.pretransform: AutoencoderPretransform | STFTCodecPretransform = (
            AutoencoderPretransform(ae) if isinstance(ae, AutoencoderConfig) else STFTCodecPretransform(ae)
        )

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def conditioning_inputs(self, cond: CondTensors) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """-> (cross-attention tokens `[B, S, D]`, their mask `[B, S]`, global vector `[B, G]`).

        Cross-attention inputs are concatenated over tokens in `cross_attention_cond_ids` order;
        global inputs over channels in `global_cond_ids` order (as the reference).
        """
        cfg = self.config
        xattn = mask = glob = None
        if cfg.cross_attention_cond_ids:
            xattn = torch.cat([cond[k][0] for k in cfg.cross_attention_cond_ids], dim=1)
            mask = torch.cat([cond[k][1] for k in cfg.cross_attention_cond_ids], dim=1)
        if cfg.global_cond_ids:
            glob = torch.cat(
                [cond[k][0][:, 0, :] if cond[k][0].dim() == 3 else cond[k][0] for k in cfg.global_cond_ids], dim=-1
            )
        return xattn, mask, glob

    def tempo_inputs(self, metadata: Sequence[Mapping[str, Any]]) -> Tensor | None:
        """`[{"bpm": float | None, "seconds_start": s}] * B` -> the DiT's `tempo [B, 2]` (beats per
        latent frame, beat position of the first frame; NaN without a bpm; a third column when any
        row has `wrap_beats`, a loop's length in beats; a fourth when any row has `swing`, where a swung
        source's off-beat falls in the beat), or None for models without `beat_phase`. Beat 0 is at
        second 0 of the piece (a render starts on a downbeat), unless `beat_offset` (the beat
        position at second 0) puts it where an audio-to-audio source's first downbeat is
        (engine/groove.py)."""
        if not self.config.dit.beat_phase:
            return None
        rate = self.config.sample_rate / self.config.autoencoder.downsampling_ratio
        rows: list[tuple[float, ...]] = []
        for m in metadata:
            bpm = m.get("bpm")
            if bpm is None:
                rows.append((math.nan, 0.0))
            else:
                beats_per_s = float(bpm) / 60.0
                # `beat_offset`: the beat at second 0, when it is not a downbeat (an audio-to-audio
                # source whose first downbeat comes later: engine/groove.py).
                start = float(m.get("seconds_start", 0.0)) * beats_per_s + float(m.get("beat_offset", 0.0))
                rows.append((beats_per_s / rate, start))
        if any(m.get("wrap_beats") for m in metadata):  # loops: positions wrap at the loop's length
            rows = [(*r, float(m.get("wrap_beats") or 0.0)) for r, m in zip(rows, metadata, strict=True)]
        if any(m.get("swing") for m in metadata):  # a swung source's off-beat (engine/groove.py)
            rows = [
                (*r, *((0.0,) if len(r) == 2 else ()), float(m.get("swing") or 0.0))
                for r, m in zip(rows, metadata, strict=True)
            ]
        return torch.tensor(rows, dtype=torch.float64, device=self.device)

    def encode_conditioning(
        self, metadata: Sequence[Mapping[str, Any]], negative: bool = False
    ) -> dict[str, Tensor | None]:
        """Metadata dicts -> keyword arguments for `network` (or its negative-prompt part)."""
        xattn, mask, glob = self.conditioning_inputs(self.conditioner(metadata, self.device))
        if negative:
            # A negative prompt's padded tokens become the null (zero) embedding, as the reference.
            if xattn is not None and mask is not None:
                xattn = xattn * mask[..., None].to(xattn.dtype)
            return {"negative_cross_attn_cond": xattn}
        return {"cross_attn_cond": xattn, "global_cond": glob, "tempo": self.tempo_inputs(metadata)}

    def network(
        self,
        x: Tensor,
        t: Tensor,
        cross_attn_cond: Tensor | None = None,
        global_cond: Tensor | None = None,
        cfg_scale: float = 1.0,
        negative_cross_attn_cond: Tensor | None = None,
        cfg_rescale: float = 0.0,
        tempo: Tensor | None = None,
        key_cfg: float | None = None,
    ) -> Tensor:
        """The DiT with classifier-free guidance: the `inner` of a v- or RF-denoiser wrapper."""
        return guided_forward(
            self.model,
            x,
            t,
            cross_attn_cond,
            global_cond,
            cfg_scale,
            negative_cross_attn_cond,
            cfg_rescale,
            tempo,
            key_cfg,
        )


def build_model(config: Mapping[str, Any] | ModelConfig) -> ConditionedDiffusionModel:
    """Build a model (random weights) from a `model_config.json` dict or a parsed `ModelConfig`."""
    cfg = config if isinstance(config, ModelConfig) else parse_model_config(config)
    return ConditionedDiffusionModel(cfg)
