"""Model-level properties: chunked == whole, CFG math, windowed attention, config and checkpoint errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from engine import ConfigError, ModelLoadError, build_model, load_model, save_model, tiny_config
from engine.autoencoder import AutoencoderPretransform
from engine.config import DiTConfig, parse_autoencoder
from engine.dit import DiffusionTransformer, guided_forward


def _randomize(module: torch.nn.Module, std: float = 0.2) -> None:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std + (1.0 if name.endswith("weight_g") else 0.0))


@pytest.fixture(scope="module")
def vae() -> AutoencoderPretransform:
    cfg = tiny_config()["model"]["pretransform"]["config"]
    ae = AutoencoderPretransform(parse_autoencoder(cfg))
    _randomize(ae, 0.1)
    return ae.eval()


def test_chunked_decode_equals_whole_decode(vae: AutoencoderPretransform) -> None:
    z = torch.randn(1, 8, 300, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = vae.decode(z, chunk_frames=10_000)
        chunked = vae.decode(z, chunk_frames=64, overlap_frames=32)
    err = (whole - chunked).abs().max() / whole.abs().max()
    assert err < 1e-5, f"chunked decode differs by {err:.2e} (relative to peak)"
    # The overlap is what makes it exact: without it the seams show.
    seams = vae.decode(z, chunk_frames=64, overlap_frames=0)
    assert (whole - seams).abs().max() / whole.abs().max() > 1e-3


def test_chunked_encode_equals_whole_encode(vae: AutoencoderPretransform) -> None:
    x = torch.randn(1, 2, 256 * 300, generator=torch.Generator().manual_seed(2)) * 0.3
    with torch.no_grad():
        whole = vae.encode(x, sample=False, chunk_frames=10_000)
        chunked = vae.encode(x, sample=False, chunk_frames=64, overlap_frames=32)
    assert ((whole - chunked).abs().max() / whole.abs().max()) < 1e-5


def test_cfg_is_uncond_plus_scaled_difference_with_zeroed_tokens() -> None:
    cfg = DiTConfig(io_channels=4, embed_dim=64, depth=1, num_heads=2, cond_token_dim=32, global_cond_dim=16)
    net = DiffusionTransformer(cfg)
    _randomize(net)
    x, t = torch.randn(1, 4, 10), torch.tensor([0.3])
    ctx, glob = torch.randn(1, 5, 32), torch.randn(1, 16)
    with torch.no_grad():
        cond = net(x, t, ctx, glob)
        uncond = net(x, t, torch.zeros_like(ctx), glob)  # tokens zeroed, global token kept
        guided = guided_forward(net, x, t, ctx, glob, cfg_scale=4.0)
        neg = torch.randn(1, 5, 32)
        guided_neg = guided_forward(net, x, t, ctx, glob, cfg_scale=4.0, negative_cross_attn_cond=neg)
        negative = net(x, t, neg, glob)
        assert torch.allclose(guided, uncond + 4.0 * (cond - uncond), atol=1e-5)
        assert torch.allclose(guided_neg, negative + 4.0 * (cond - negative), atol=1e-5)
        assert torch.equal(guided_forward(net, x, t, ctx, glob, cfg_scale=1.0), cond)
        # Rescale 1.0: the guided output takes the conditional output's std over channels.
        resc = guided_forward(net, x, t, ctx, glob, cfg_scale=4.0, cfg_rescale=1.0)
        assert torch.allclose(resc.std(dim=1), cond.std(dim=1), rtol=1e-4)


def test_windowed_attention_is_local_and_full_when_wide() -> None:
    base = dict(io_channels=4, embed_dim=64, depth=1, num_heads=2, cond_token_dim=0, global_cond_dim=0)
    full = DiffusionTransformer(DiTConfig(**base))
    _randomize(full)
    wide = DiffusionTransformer(DiTConfig(**base, attn_window=1000))
    narrow = DiffusionTransformer(DiTConfig(**base, attn_window=3))
    wide.load_state_dict(full.state_dict())
    narrow.load_state_dict(full.state_dict())
    x, t = torch.randn(1, 4, 40), torch.tensor([0.5])
    x2 = x.clone()
    x2[:, :, 0] += 5.0
    with torch.no_grad():
        assert torch.allclose(wide(x, t), full(x, t), atol=1e-6)
        # One layer, window 3: the last frame cannot see frame 0 (the global token saw only
        # the conditioning), while with full attention it can.
        assert torch.allclose(narrow(x, t)[..., -1], narrow(x2, t)[..., -1], atol=1e-6)
        assert not torch.allclose(full(x, t)[..., -1], full(x2, t)[..., -1], atol=1e-4)


def test_config_refuses_what_it_cannot_build() -> None:
    cfg = tiny_config()
    bad = copy.deepcopy(cfg)
    bad["model"]["diffusion"]["config"]["mystery_option"] = 3
    with pytest.raises(ConfigError, match="mystery_option"):
        build_model(bad)
    bad = copy.deepcopy(cfg)
    bad["model"]["diffusion"]["global_cond_ids"] = ["tempo"]
    with pytest.raises(ConfigError, match="'tempo'"):
        build_model(bad)
    bad = copy.deepcopy(cfg)
    bad["model"]["pretransform"]["config"]["downsampling_ratio"] = 512
    with pytest.raises(ConfigError, match="downsampling_ratio"):
        build_model(bad)


def test_checkpoint_errors_are_model_load_errors(tmp_path: Path) -> None:
    torch.manual_seed(0)
    folder = save_model(build_model(tiny_config()), tmp_path / "m")
    raw = json.loads((folder / "model_config.json").read_text())
    raw["longplay"]["format_version"] = 99
    (folder / "model_config.json").write_text(json.dumps(raw))
    with pytest.raises(ModelLoadError, match="format_version 99"):
        load_model(folder)
    raw["longplay"]["format_version"] = 1
    (folder / "model_config.json").write_text(json.dumps(raw))
    load_model(folder)  # back to a good folder
    (folder / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ModelLoadError, match="could not be read"):
        load_model(folder)
    (folder / "model_config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not readable JSON"):
        load_model(folder)
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path / "nothing-here")


def test_weights_that_do_not_fit_the_config_name_the_key(tmp_path: Path) -> None:
    torch.manual_seed(0)
    folder = save_model(build_model(tiny_config()), tmp_path / "m")
    raw = json.loads((folder / "model_config.json").read_text())
    raw["model"]["diffusion"]["config"]["depth"] = 3
    (folder / "model_config.json").write_text(json.dumps(raw))
    with pytest.raises(ModelLoadError, match=r"missing key.*layers\.2\."):
        load_model(folder)


def test_decoding_only_the_kept_frames_plus_margin_equals_the_whole_window(vae: AutoencoderPretransform) -> None:
    # The pipeline decodes ceil(kept / hop) + DECODE_MARGIN_FRAMES frames of a longer window.
    from engine.pipeline import DECODE_MARGIN_FRAMES

    z = torch.randn(1, 8, 200, generator=torch.Generator().manual_seed(3))
    keep = 57 * 256 + 100
    with torch.no_grad():
        whole = vae.decode(z)[..., :keep]
        part = vae.decode(z[..., : -(-keep // 256) + DECODE_MARGIN_FRAMES])[..., :keep]
    assert ((whole - part).abs().max() / whole.abs().max()) < 1e-5


def _patched_raw(patch: int = 4) -> dict:
    from engine import mini_autoencoder_config

    return mini_autoencoder_config(channels=4, c_mults=(1, 2), strides=(4, 8), latent_dim=8, patch_size=patch)


def test_patched_front_end_is_stable_audio_tools_layout_and_exactly_invertible() -> None:
    ae = AutoencoderPretransform(parse_autoencoder(_patched_raw(4)))
    assert ae.downsampling_ratio == 128 and ae.model.encoder.layers[0].weight_v.shape[1] == 8
    x = torch.arange(2 * 12, dtype=torch.float32).reshape(1, 2, 12)
    patched = ae.model.patch(x)
    # "b c (l h) -> b (c h) l": channel c*p + h at frame f holds sample f*p + h of channel c.
    assert patched.shape == (1, 8, 3)
    for c in range(2):
        for h in range(4):
            for f in range(3):
                assert patched[0, c * 4 + h, f] == x[0, c, f * 4 + h]
    assert torch.equal(ae.model.unpatch(patched), x)


def test_patched_autoencoder_chunks_exactly_and_matches_manual_patching() -> None:
    ae = AutoencoderPretransform(parse_autoencoder(_patched_raw(4)))
    _randomize(ae, 0.1)
    ae.eval()
    x = torch.randn(1, 2, 128 * 200, generator=torch.Generator().manual_seed(3)) * 0.3
    with torch.no_grad():
        whole = ae.encode(x, sample=False, chunk_frames=10_000)
        chunked = ae.encode(x, sample=False, chunk_frames=64, overlap_frames=32)
        manual = ae.model.encoder(x.reshape(1, 2, -1, 4).transpose(2, 3).reshape(1, 8, -1)).chunk(2, dim=1)[0]
        assert torch.allclose(whole, manual, atol=1e-6)
        assert ((whole - chunked).abs().max() / whole.abs().max()) < 1e-5
        y = ae.decode(whole, chunk_frames=10_000)
        y_chunked = ae.decode(whole, chunk_frames=64, overlap_frames=32)
        raw_y = ae.model.decoder(whole)  # [1, 8, L * 32]: unpatching interleaves it back to [1, 2, L * 128]
    assert y.shape == x.shape
    assert ((y - y_chunked).abs().max() / y.abs().max()) < 1e-5
    assert torch.equal(y[0, 1, 4 * 5 + 2], raw_y[0, 4 + 2, 5])


def test_patched_config_errors_name_the_problem() -> None:
    raw = _patched_raw(4)
    raw["downsampling_ratio"] = 32
    with pytest.raises(ConfigError, match="x patch_size 4"):
        parse_autoencoder(raw)
    raw = _patched_raw(4)
    raw["encoder"]["config"]["in_channels"] = 2
    with pytest.raises(ConfigError, match="in_channels is 2.*needs 8"):
        parse_autoencoder(raw)
    raw = _patched_raw(4)
    raw["pretransform"]["type"] = "pqmf"
    with pytest.raises(ConfigError, match="only 'patched'"):
        parse_autoencoder(raw)
    raw = _patched_raw(4)
    raw["pretransform"]["config"]["channels"] = 1
    with pytest.raises(ConfigError, match="channels is 1"):
        parse_autoencoder(raw)


def test_dit_patching_folds_frames_into_tokens_as_stable_audio_tools() -> None:
    """patch_size p: tokens are "b (t p) c -> b t (c p)" and the output unfolds back exactly."""
    cfg = DiTConfig(
        io_channels=3, embed_dim=64, depth=1, num_heads=2, cond_token_dim=0, global_cond_dim=0, patch_size=2
    )
    net = DiffusionTransformer(cfg).eval()
    assert net.transformer.project_in.weight.shape[1] == 6
    seen: list[torch.Tensor] = []

    def identity_transformer(
        tokens: torch.Tensor, prepend: torch.Tensor, context: object, add: object = None
    ) -> torch.Tensor:
        seen.append(tokens)
        return torch.cat((torch.zeros_like(tokens[:, :1]), tokens), dim=1)

    net.transformer.forward = identity_transformer  # type: ignore[method-assign]
    x = torch.randn(2, 3, 10, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = net(x, torch.rand(2))
    tokens = seen[0]
    assert tokens.shape == (2, 5, 6)
    for t in range(5):
        for c in range(3):
            for j in range(2):
                assert tokens[1, t, c * 2 + j] == x[1, c, t * 2 + j]
    assert torch.equal(out, x)  # zero-initialised pre/post convs: unfolding is the exact inverse
    with pytest.raises(ValueError, match="multiple of the DiT's patch_size 2"):
        net(x[..., :9], torch.rand(2))


def test_longplay_block_is_read_once_into_typed_fields() -> None:
    """Sampler defaults and the latents a DiT learned are parsed at load (typed, checked), not looked
    up in the raw dict at render time."""
    from engine import parse_model_config

    raw = tiny_config()
    raw["longplay"] = {"defaults": {"steps": 20, "cfg": 5}, "train": {"train_latents": "mean"}}
    cfg = parse_model_config(raw)
    assert cfg.defaults == {"steps": 20, "cfg": 5.0} and isinstance(cfg.defaults["cfg"], float)
    assert cfg.learned_latents == "mean"
    assert parse_model_config(tiny_config()).learned_latents is None
    raw["longplay"]["defaults"] = {"steps": "many"}
    with pytest.raises(ConfigError, match="longplay.defaults.steps must be int"):
        parse_model_config(raw)
    raw["longplay"]["defaults"] = {"stepz": 3}
    with pytest.raises(ConfigError, match="stepz: unknown"):
        parse_model_config(raw)
