"""Stable Audio 3 layout: a model built from the release configs has exactly the released tensors.

The stable-audio-3 repository ships no JSON configs (they live with the weights on Hugging
Face); `tests/fixtures/stable-audio-3-{small-music,medium}.model_config.json` are reconstructed
from its code defaults and optimized ports (see tests/fixtures/README.md). The released key names
and shapes are written out below from the reference module tree (stable_audio_3/models: the
DiT's ContinuousTransformer, the TransformerResamplingBlock, the conditioners), independently of
`engine.sa3.convert`; the built model, on the meta device (no 433 M floats allocated), must map
onto them one to one. Known sizes: sm-music's DiT has 433 M parameters without its inpainting
projections, SAME-S about 54 M per half (issue 21).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

pytest.importorskip("diffusers")

from engine.errors import ModelLoadError  # noqa: E402
from engine.sa3 import (  # noqa: E402
    build_empty,
    convert,  # noqa: E402
    parse_original,
)
from tests.engine import sa3_helpers as h  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
Shapes = dict[str, tuple[int, ...]]


def _fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"stable-audio-3-{name}.model_config.json").read_text())


def released_layout(raw: dict[str, Any]) -> Shapes:
    """Key -> shape of the released `model.safetensors`, from the reference module tree."""
    model = raw["model"]
    dc = model["diffusion"]["config"]
    d, depth, dh = dc["embed_dim"], dc["depth"], dc["embed_dim"] // dc["num_heads"]
    io, cond, glob, tf = dc["io_channels"], dc["cond_token_dim"], dc["global_cond_dim"], dc["timestep_features_dim"]
    diff = dc["attn_kwargs"]["differential"]
    p, t = "model.model.", "model.model.transformer."
    out: Shapes = {
        p + "to_timestep_embed.0.weight": (d, tf),
        p + "to_timestep_embed.0.bias": (d,),
        p + "to_timestep_embed.2.weight": (d, d),
        p + "to_timestep_embed.2.bias": (d,),
        p + "to_cond_embed.0.weight": (d, cond),
        p + "to_cond_embed.2.weight": (d, d),
        p + "to_global_embed.0.weight": (d, glob),
        p + "to_global_embed.2.weight": (d, d),
        p + "preprocess_conv.weight": (io, io, 1),
        p + "postprocess_conv.weight": (io, io, 1),
        t + "project_in.weight": (d, io),
        t + "project_out.weight": (io, d),
        t + "rotary_pos_emb.inv_freq": (max(dh // 2, 32) // 2,),
        t + "memory_tokens": (dc["num_memory_tokens"], d),
        t + "global_cond_embedder.0.weight": (d, d),
        t + "global_cond_embedder.0.bias": (d,),
        t + "global_cond_embedder.2.weight": (6 * d, d),
        t + "global_cond_embedder.2.bias": (6 * d,),
        "conditioner.conditioners.prompt.padding_embedding": (cond,),
        "conditioner.conditioners.seconds_total.embedder.embedding.1.weight": (cond, 256),
        "conditioner.conditioners.seconds_total.embedder.embedding.1.bias": (cond,),
    }
    for i in range(depth):
        lp = f"{t}layers.{i}."
        out.update(
            {
                lp + "pre_norm.gamma": (d,),
                lp + "self_attn.to_qkv.weight": ((5 if diff else 3) * d, d),
                lp + "self_attn.to_out.weight": (d, d),
                lp + "self_attn.q_norm.gamma": (dh,),
                lp + "self_attn.k_norm.gamma": (dh,),
                lp + "cross_attend_norm.gamma": (d,),
                lp + "cross_attn.to_q.weight": ((2 if diff else 1) * d, d),
                lp + "cross_attn.to_kv.weight": ((3 if diff else 2) * d, d),
                lp + "cross_attn.to_out.weight": (d, d),
                lp + "cross_attn.q_norm.gamma": (dh,),
                lp + "cross_attn.k_norm.gamma": (dh,),
                lp + "ff_norm.gamma": (d,),
                lp + "ff.ff.0.proj.weight": (8 * d, d),
                lp + "ff.ff.0.proj.bias": (8 * d,),
                lp + "ff.ff.2.weight": (d, 4 * d),
                lp + "ff.ff.2.bias": (d,),
                lp + "to_scale_shift_gate": (6 * d,),
                lp + "to_local_embed.0.weight": (d, dc["local_add_cond_dim"]),
                lp + "to_local_embed.0.bias": (d,),
                lp + "to_local_embed.2.weight": (d, d),
                lp + "to_local_embed.2.bias": (d,),
            }
        )
    ae = model["pretransform"]["config"]
    a = "pretransform.model."
    lat = ae["latent_dim"]
    for side, io_key in (("encoder", "in_channels"), ("decoder", "out_channels")):
        c = ae[side]["config"]
        ch, outer, k = c["channels"] * c["c_mults"][0], c[io_key], 3 if c.get("conv_mapping") else 1
        hd = min(c["dim_heads"], ch)
        blk = f"{a}{side}.layers.{0 if side == 'encoder' else 3}."
        out.update(
            {
                blk + "mapping.weight_g": (ch if side == "encoder" else outer, 1, 1),
                blk + "new_tokens": (1, 1, ch),
                blk + "mapping.weight_v": (ch, outer, k) if side == "encoder" else (outer, ch, k),
                blk + "mapping.bias": (ch if side == "encoder" else outer,),
            }
        )
        for j in range(c["transformer_depths"][0]):
            tp = f"{blk}transformers.{j}."
            for norm, width in (
                ("pre_norm.", ch),
                ("ff_norm.", ch),
                ("self_attn.q_norm.", hd),
                ("self_attn.k_norm.", hd),
            ):
                out.update({tp + norm + "alpha": (1,), tp + norm + "gamma": (width,), tp + norm + "beta": (width,)})
            out.update(
                {
                    tp + "self_attn.to_qkv.weight": (5 * ch, ch),
                    tp + "self_attn.to_out.weight": (ch, ch),
                    tp + "ff.ff.0.proj.weight": (6 * ch, ch),
                    tp + "ff.ff.0.proj.bias": (6 * ch,),
                    tp + "ff.ff.2.weight": (ch, 3 * ch),
                    tp + "ff.ff.2.bias": (ch,),
                    tp + "rope.inv_freq": (hd // 4,),
                }
            )
        proj = f"{a}encoder.layers.2." if side == "encoder" else f"{a}decoder.layers.1."
        shape = (lat, ch) if side == "encoder" else (ch, lat)
        out.update({proj + "weight": shape, proj + "bias": (shape[0],)})
    out.update(
        {
            a + "bottleneck.scaling_factor": (1, lat, 1),
            a + "bottleneck.bias": (1, lat, 1),
            a + "bottleneck.noise_scaling_factor": (1, 0, 1),
            a + "bottleneck.running_std": (1,),
        }
    )
    return out


@pytest.fixture(scope="module", params=["small-music", "medium"])
def release(request: pytest.FixtureRequest) -> tuple[dict[str, Any], Any]:
    raw = _fixture(request.param)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return raw, build_empty(parse_original(raw))


def _parts(model: Any) -> dict[str, dict[str, Tensor]]:
    return {
        convert.DIT: model.dit.state_dict(),
        convert.DURATION: model.duration.state_dict(),
        convert.SAME: model.same.state_dict(),
    }


def test_sa3_full_size_layout_equals_release(release: tuple[dict[str, Any], Any]) -> None:
    raw, model = release
    assert all(p.is_meta for p in model.parameters())
    ours = {k: tuple(v.shape) for k, v in convert.to_original(_parts(model), convert.plan(model.config)).items()}
    want = released_layout(raw)
    assert sorted(set(want) - set(ours))[:3] == [] and sorted(set(ours) - set(want))[:3] == []
    bad = [(k, ours[k], want[k]) for k in want if ours[k] != want[k]]
    assert not bad, f"{len(bad)} shape mismatch(es), first {bad[0]} (ours, release)"
    print(f"sa3 layout: {len(want)} tensors, {sum(math.prod(s) for s in want.values()):,} elements")


def test_sa3_full_size_parameter_counts() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_empty(parse_original(_fixture("small-music")))
    dit = sum(p.numel() for n, p in model.dit.named_parameters() if "to_local_embed" not in n)
    assert dit == 432_855_808  # "sm-music DiT ... ≈ 433 M without the inpaint projections"
    for half in (model.same.encoder, model.same.decoder):
        assert 53e6 < sum(p.numel() for p in half.parameters()) < 55e6  # "SAME-S ≈ 54 M per half"
    assert model.config.max_seconds == pytest.approx(120.0, abs=0.1)
    assert model.latent_frames(120.0) == 1292 and model.latent_frames(30.0) == 388


def test_sa3_built_same_equals_diffusers_names() -> None:
    """SAME-L (band) builds exactly diffusers' AutoencoderSAME state dict; SAME-S differs only in the
    kernel of its decoder's channel mapping (3, as released; diffusers has 1)."""
    from diffusers import AutoencoderSAME

    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        small, large = (build_empty(parse_original(_fixture(n))).same for n in ("small-music", "medium"))
        ref_s = AutoencoderSAME().state_dict()
        ref_l = AutoencoderSAME(
            encoder_channels=256, encoder_transformer_depths=(12,), decoder_sinusoidal_blocks=(8,)
        ).state_dict()
    assert {k: v.shape for k, v in large.state_dict().items()} == {k: v.shape for k, v in ref_l.items()}
    ours_s = {k: v.shape for k, v in small.state_dict().items()}
    diff = [k for k in ref_s if ours_s.get(k) != ref_s[k].shape]
    assert set(ours_s) == set(ref_s) and diff == ["decoder.blocks.0.mapping.weight_v"]
    assert ours_s[diff[0]] == (512, 768, 3) and ref_s[diff[0]].shape == (512, 768, 1)


def test_sa3_converter_round_trip_and_names_drift() -> None:
    model = h.tiny_model(differential=True, same=h.TINY_SAME_CHUNKED)
    rules = convert.plan(model.config)
    original = convert.to_original(_parts(model), rules)
    back = convert.convert(original, rules, "test")
    for part, sd in _parts(model).items():
        assert set(back[part]) | ({"freqs"} if part == convert.DURATION else set()) == set(sd)
        assert all(torch.equal(back[part][k], sd[k]) for k in back[part])
    dropped = dict(original)
    key = "model.model.transformer.layers.1.self_attn.to_qkv.weight"
    dropped.pop(key)
    with pytest.raises(ModelLoadError, match="missing key.*layers.1.self_attn.to_qkv"):
        convert.convert(dropped, rules, "test")
    with pytest.raises(ModelLoadError, match="unexpected key.*extra"):
        convert.convert({**original, "model.model.extra": torch.zeros(1)}, rules, "test")


def _release_differential_attention(
    x: Tensor, w_qkv: Tensor, w_out: Tensor, q_norm: Any, k_norm: Any, heads: int, rot: int
) -> Tensor:
    """The reference's fused differential self-attention, from its definition: rows of to_qkv are
    [q, k, v, q_diff, k_diff]; out = attn(q, k, v) - attn(q_diff, k_diff, v); RoPE on `rot` dims."""
    b, n, d = x.shape
    q, k, v, qd, kd = (t.reshape(b, n, heads, -1).transpose(1, 2) for t in (x @ w_qkv.T).chunk(5, dim=-1))
    inv = 1.0 / (10000 ** (torch.arange(0, rot, 2).float() / rot))
    freqs = torch.outer(torch.arange(n).float(), inv)
    freqs = torch.cat([freqs, freqs], dim=-1)  # [N, rot]

    def rope(t: Tensor) -> Tensor:
        r, rest = t[..., :rot], t[..., rot:]
        x1, x2 = r.chunk(2, dim=-1)
        return torch.cat([r * freqs.cos() + torch.cat([-x2, x1], dim=-1) * freqs.sin(), rest], dim=-1)

    q, qd, k, kd = rope(q_norm(q)), rope(q_norm(qd)), rope(k_norm(k)), rope(k_norm(kd))
    out = F.scaled_dot_product_attention(q, k, v) - F.scaled_dot_product_attention(qd, kd, v)
    return out.transpose(1, 2).reshape(b, n, d) @ w_out.T


@pytest.mark.parametrize("where", ["dit", "same"])
def test_sa3_differential_qkv_rows_convert_to_diffusers_order(where: str) -> None:
    """Released to_qkv rows, converted, give diffusers' attention the release's arithmetic."""
    model = h.tiny_model(differential=True)
    with torch.no_grad():
        if where == "dit":
            attn = model.dit.transformer_blocks[0].self_attn
            rope = model.dit.rotary_pos_emb.inv_freq.numel() * 2
            run = lambda x: attn(x, rope=model.dit.rotary_pos_emb(x.shape[1], x.device))  # noqa: E731
        else:
            from diffusers.models.autoencoders.autoencoder_same import SAMEAttnProcessor

            attn = model.same.decoder.blocks[0].transformers[0].attn
            attn.set_processor(SAMEAttnProcessor())  # full attention, as the hand-written release math
            rope = attn.rope.inv_freq.numel() * 2
            run = lambda x: attn(x)  # noqa: E731
        d, heads = attn.to_out.weight.shape[0], attn.heads
        g = torch.Generator().manual_seed(1)
        w_release = torch.randn(5 * d, d, generator=g) / math.sqrt(d)
        attn.to_qkv.weight.copy_(convert._permute_qkv(w_release))
        assert torch.equal(convert.unpermute_qkv(attn.to_qkv.weight), w_release)
        x = torch.randn(1, 40, d, generator=g)
        want = _release_differential_attention(x, w_release, attn.to_out.weight, attn.q_norm, attn.k_norm, heads, rope)
        assert h.rel_err(run(x), want) < 1e-5
