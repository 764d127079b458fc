"""The Stable Audio Open Small variant: q/k LayerNorm, seconds_total only, rectified flow + ping-pong."""

from __future__ import annotations

import copy

import numpy as np
import torch

from engine import Generator, RenderRequest, build_model, model_defaults, tiny_config
from engine.presets import sao_small_like_config


def test_sao_small_layout_builds_with_qk_norm_and_one_timing_conditioner() -> None:
    with torch.device("meta"):
        model = build_model(sao_small_like_config())
    sd = model.state_dict()
    assert tuple(sd["model.model.transformer.layers.0.self_attn.q_norm.weight"].shape) == (128,)
    assert tuple(sd["model.model.transformer.layers.15.cross_attn.k_norm.bias"].shape) == (128,)
    # Projected cond tokens: kv from the 1024-d projection, 8 kv heads for 8 query heads.
    assert tuple(sd["model.model.transformer.layers.0.cross_attn.to_kv.weight"].shape) == (2048, 1024)
    assert tuple(sd["model.model.to_global_embed.0.weight"].shape) == (1024, 768)
    # RoPE over max(128 / 2, 32) = 64 dims of each head.
    assert tuple(sd["model.model.transformer.rotary_pos_emb.inv_freq"].shape) == (32,)
    assert not any("seconds_start" in k for k in sd)
    assert "model.model.transformer.layers.16.pre_norm.gamma" not in sd


def _rf_tiny() -> dict:
    cfg = tiny_config(window_seconds=1.0)
    d = cfg["model"]["diffusion"]
    d["diffusion_objective"] = "rf_denoiser"
    d["cross_attention_cond_ids"] = ["prompt", "seconds_total"]
    d["global_cond_ids"] = ["seconds_total"]
    d["config"]["global_cond_dim"] = 32
    d["config"]["attn_kwargs"] = {"qk_norm": "ln"}
    d["config"]["project_cond_tokens"] = True
    cfg["model"]["conditioning"]["configs"] = [
        c for c in cfg["model"]["conditioning"]["configs"] if c["id"] != "seconds_start"
    ]
    return cfg


def test_rectified_flow_model_renders_with_pingpong_by_default() -> None:
    torch.manual_seed(0)
    model = build_model(_rf_tiny())
    assert model_defaults(model)["sampler"] == "pingpong" and model_defaults(model)["steps"] == 8
    gen = Generator(model, device="cpu")
    res = gen.render(RenderRequest("drum loop", seconds=0.5, seed=9))[0]
    assert res.recipe["sampler"] == "pingpong" and res.recipe["steps"] == 8
    again = gen.render(RenderRequest("drum loop", seconds=0.5, seed=9))[0]
    assert np.array_equal(res.audio, again.audio) and np.isfinite(res.audio).all()


def test_layernorm_bias_option_is_learned_under_the_same_key() -> None:
    cfg = copy.deepcopy(tiny_config())
    cfg["model"]["diffusion"]["config"]["norm_kwargs"] = {"bias": True}
    model = build_model(cfg)
    names = dict(model.named_parameters())
    assert "model.model.transformer.layers.0.pre_norm.beta" in names
    plain = build_model(tiny_config())
    assert "model.model.transformer.layers.0.pre_norm.beta" not in dict(plain.named_parameters())
    assert "model.model.transformer.layers.0.pre_norm.beta" in plain.state_dict()
