"""Parity of the engine's Stable Audio layers with an independent implementation (diffusers).

Our modules reproduce stable-audio-tools' state-dict layout; diffusers reimplements the same model
with its own layout and code. Loading *our* random weights into diffusers through the test-only
converter (`diffusers_convert.py`) and getting the same numbers shows both the layout mapping and
the arithmetic agree. Every tensor is random and non-zero (the reference zero-inits several output
layers, which would hide whole paths), except the LayerNorm bias, which is a zero buffer there too.

Also here: the full SAO 1.0 layout built on the meta device (no 1.2B-float allocation) vs the
released checkpoint's facts and diffusers' default modules, the T5 conditioner, and strict loading.
All fp32, tiny configs; the file runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

pytest.importorskip("diffusers")  # test-only oracle (the `test` extra); the engine never imports it

from diffusers import AutoencoderOobleck, StableAudioDiTModel  # noqa: E402
from diffusers.models.embeddings import get_1d_rotary_pos_embed  # noqa: E402
from diffusers.pipelines.stable_audio.modeling_stable_audio import (  # noqa: E402
    StableAudioNumberConditioner,
    StableAudioProjectionModel,
)

from engine.autoencoder import AutoencoderPretransform, SnakeBeta, vae_sample  # noqa: E402
from engine.checkpoint import load_model, load_state_dict_strict, save_model  # noqa: E402
from engine.conditioners import NumberConditioner, T5Conditioner  # noqa: E402
from engine.config import AutoencoderConfig, DiTConfig, OobleckConfig, parse_model_config  # noqa: E402
from engine.dit import DiffusionTransformer  # noqa: E402
from engine.errors import ModelLoadError, TextEncoderMissingError  # noqa: E402
from engine.model import build_model  # noqa: E402
from tests.engine import diffusers_convert as conv  # noqa: E402
from tests.engine.diffusers_convert import randomize_  # noqa: E402

# diffusers builds its Oobleck convs with the deprecated torch.nn.utils.weight_norm (whose
# weight_g/weight_v names match the released checkpoints); its warning is not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")

# The public Stable Audio Open 1.0 architecture block (stable-audio-tools release format): data,
# kept in the repository so every clone runs these checks.
SAO_CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "stable-audio-open-1.0.model_config.json"
TOL = 1e-5  # max |ours - diffusers| / max |diffusers|, fp32


def rel_err(ours: Tensor, theirs: Tensor) -> float:
    """Max abs difference relative to the reference output's max abs (scale-free, fp32-sized)."""
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    return ((ours - theirs).abs().max() / theirs.abs().max().clamp_min(1e-30)).item()


def load_into(module: nn.Module, sd: dict[str, Tensor], what: str) -> None:
    """Strict load after checking the converter filled every diffusers key exactly once."""
    conv.assert_fills(sd, module.state_dict(), what)
    module.load_state_dict(sd, strict=True)


def pipeline_rotary(rot_dim: int, seq_len: int) -> tuple[Tensor, Tensor]:
    """RoPE tables exactly as StableAudioPipeline builds them (step 7 of `__call__`)."""
    return get_1d_rotary_pos_embed(rot_dim, seq_len, use_real=True, repeat_interleave_real=False)


# ---------------------------------------------------------------------------------------- 1. DiT

DIT_CASES = {
    # SAO's rule: kv heads = cond_token_dim / dim_heads = 2, each shared by a pair of the 4 q heads.
    # dim_heads 64 as in SAO, so our max(dh // 2, 32) RoPE dims equal the pipeline's dh // 2.
    "gqa_dh64": DiTConfig(
        io_channels=16,
        embed_dim=256,
        depth=2,
        num_heads=4,
        cond_token_dim=128,
        global_cond_dim=128,
        project_cond_tokens=False,
    ),
    # 64-d cond tokens over 64-d heads: one kv head shared by both q heads.
    "mqa_dh64": DiTConfig(
        io_channels=16,
        embed_dim=128,
        depth=2,
        num_heads=2,
        cond_token_dim=64,
        global_cond_dim=128,
        project_cond_tokens=False,
    ),
    # dim_heads 32: stable-audio-tools rotates max(16, 32) = 32 dims (the whole head), the diffusers
    # pipeline would pass 16. We give diffusers the reference's 32 (its processor rotates whatever
    # width it is handed); the pipeline's rule is only right for dim_heads >= 64.
    "mha_dh32": DiTConfig(
        io_channels=16,
        embed_dim=128,
        depth=2,
        num_heads=4,
        cond_token_dim=128,
        global_cond_dim=128,
        project_cond_tokens=False,
    ),
    # project_cond_tokens: context projected to embed_dim, so kv heads = q heads.
    "projected_cond": DiTConfig(
        io_channels=16,
        embed_dim=128,
        depth=2,
        num_heads=2,
        cond_token_dim=64,
        global_cond_dim=128,
        project_cond_tokens=True,
    ),
}


@pytest.mark.parametrize("case", list(DIT_CASES))
def test_dit_parity_with_diffusers(case: str) -> None:
    cfg = DIT_CASES[case]
    torch.manual_seed(0)
    ours = DiffusionTransformer(cfg).eval()
    randomize_(ours, seed=1)
    attn = ours.transformer.layers[0].cross_attn
    assert attn.kv_heads == conv.kv_heads(cfg)
    if case in ("gqa_dh64", "mqa_dh64"):
        assert attn.kv_heads < attn.num_heads, "the case must exercise shared kv heads"
    ref = StableAudioDiTModel(**conv.dit_config(cfg)).eval()
    load_into(ref, conv.convert_dit(ours.state_dict(), cfg, prefix=""), f"DiT[{case}]")

    g = torch.Generator().manual_seed(2)
    b, t_len, s_len = 2, 24, 5
    x = torch.randn(b, cfg.io_channels, t_len, generator=g)
    t = conv.network_t(torch.tensor([0.3, 25.0]))
    ctx = torch.randn(b, s_len, cfg.cond_token_dim, generator=g)
    glob = torch.randn(b, cfg.global_cond_dim, generator=g)

    rot = conv.rotary_dim(cfg)
    if cfg.dim_heads >= 64:
        assert rot == cfg.dim_heads // 2  # the pipeline's rule, used verbatim below
    rotary = pipeline_rotary(rot, t_len + 1)  # +1: the prepended global/timestep token
    with torch.no_grad():
        out = ours(x, t, ctx, glob)
        want = ref(
            x,
            timestep=t,
            encoder_hidden_states=ctx,
            global_hidden_states=glob[:, None, :],
            rotary_embedding=rotary,
            return_dict=False,
        )[0]
    err = rel_err(out, want)
    print(f"DiT[{case}] max rel err {err:.2e}")
    assert out.abs().max() > 0.1  # a live output, not a zeroed path
    assert err <= TOL, f"DiT[{case}] relative error {err:.3e} > {TOL}"


def test_dit_parity_every_path_matters() -> None:
    """Parity is not vacuous: every converted diffusers tensor influences the output.

    One backward pass of a random projection of the output; a tensor with an all-zero gradient
    would be a dead path (e.g. a zero-init layer or a key loaded into an unused module) on which
    the comparison above says nothing.
    """
    cfg = DIT_CASES["gqa_dh64"]
    torch.manual_seed(0)
    ours = DiffusionTransformer(cfg).eval()
    randomize_(ours, seed=1)
    ref = StableAudioDiTModel(**conv.dit_config(cfg)).eval()
    ref.load_state_dict(conv.convert_dit(ours.state_dict(), cfg, prefix=""))
    ref.requires_grad_(True)  # time_proj.weight is created with requires_grad=False
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, cfg.io_channels, 12, generator=g)
    t = conv.network_t(torch.tensor([1.0, 0.2]))
    ctx = torch.randn(2, 5, cfg.cond_token_dim, generator=g)
    glob = torch.randn(2, 1, cfg.global_cond_dim, generator=g)
    out = ref(
        x,
        timestep=t,
        encoder_hidden_states=ctx,
        global_hidden_states=glob,
        rotary_embedding=pipeline_rotary(conv.rotary_dim(cfg), 13),
        return_dict=False,
    )[0]
    (out * torch.randn(out.shape, generator=g)).sum().backward()
    dead = [n for n, p in ref.named_parameters() if p.grad is None or not bool(p.grad.abs().max() > 0)]
    assert not dead, f"parameters without influence on the output: {dead}"


# ---------------------------------------------------------------------------------------- 2. VAE


def tiny_autoencoder() -> AutoencoderConfig:
    enc = OobleckConfig(
        audio_channels=2,
        channels=16,
        c_mults=(1, 2, 4),
        strides=(2, 4, 4),
        latent_dim=16,
        use_snake=True,
        final_tanh=False,
    )
    dec = OobleckConfig(
        audio_channels=2,
        channels=16,
        c_mults=(1, 2, 4),
        strides=(2, 4, 4),
        latent_dim=8,
        use_snake=True,
        final_tanh=False,
    )
    return AutoencoderConfig(
        encoder=enc, decoder=dec, bottleneck="vae", latent_dim=8, downsampling_ratio=32, io_channels=2
    )


def test_vae_parity_with_diffusers() -> None:
    ae = tiny_autoencoder()
    torch.manual_seed(0)
    ours = AutoencoderPretransform(ae).eval()
    randomize_(ours, seed=3)
    snakes = [m for m in ours.modules() if isinstance(m, SnakeBeta)]
    assert snakes and all(bool((s.alpha != 0).all() and (s.beta != 0).all()) for s in snakes)
    ref = AutoencoderOobleck(**conv.vae_config(ae)).eval()
    load_into(ref, conv.convert_vae(ours.state_dict(), ae, prefix="model."), "VAE")

    g = torch.Generator().manual_seed(4)
    # Small on purpose: Snake's sin is slow on the CI CPUs; 32 frames still span the receptive field.
    audio = torch.randn(2, 2, 32 * ae.downsampling_ratio, generator=g) * 0.5
    latents = torch.randn(2, ae.latent_dim, 64, generator=g)
    with torch.no_grad():
        pre = ours.model.encoder(audio)  # mean ++ scale, pre-bottleneck
        dist = ref.encode(audio).latent_dist
        pre_ref = dist.parameters  # diffusers keeps the raw encoder output here
        mean = ours.encode(audio, sample=False)
        sampled = ours.encode(audio, sample=True, generator=torch.Generator().manual_seed(5))
        sampled_ref = dist.sample(generator=torch.Generator().manual_seed(5))
        _, kl = vae_sample(*pre.chunk(2, dim=1))
        dec, dec_ref = ours.decode(latents), ref.decode(latents).sample  # 64 <= 128 frames: one chunk
        # Our bounded-memory chunked decode vs diffusers' whole-signal decode. This decoder sees
        # +/-18 latent frames (a hop of 32 makes the receptive field wide in frames; SAO's 2048 hop
        # keeps it near 10), so half the overlap must be >= 18 for the crop-and-join to be exact.
        dec_chunked = ours.decode(latents, chunk_frames=44, overlap_frames=38)  # 5 chunks
    errs = {
        "encoder (pre-bottleneck)": rel_err(pre, pre_ref),
        "latent_dist.mean": rel_err(mean, dist.mean),
        "posterior sample": rel_err(sampled, sampled_ref),
        "kl": rel_err(kl, dist.kl()),
        "decoder": rel_err(dec, dec_ref),
        "decoder (chunked)": rel_err(dec_chunked, dec_ref),
    }
    print("VAE max rel err " + ", ".join(f"{k} {v:.2e}" for k, v in errs.items()))
    assert pre.shape == (2, 16, 32) and dec.shape == (2, 2, 64 * 32)
    for name, err in errs.items():
        assert err <= TOL, f"VAE {name}: relative error {err:.3e} > {TOL}"


# ----------------------------------------------------------------------------- 3. conditioners


def test_number_conditioner_parity_with_diffusers() -> None:
    ours = NumberConditioner(64, min_val=0, max_val=512).eval()
    randomize_(ours, seed=6)
    ref = StableAudioNumberConditioner(64, 0, 512).eval()
    load_into(ref, conv.convert_number(ours.state_dict()), "number conditioner")
    values = [-3.0, 0.0, 7.5, 47.55, 511.9, 512.0, 900.0]  # below/at/above both clamp ends
    with torch.no_grad():
        emb, mask = ours(values, "cpu")
        want = ref(torch.tensor(values))
        # Semantics, not only equality: clamp, normalise to [0, 1], features ordered [u, sin, cos].
        u = torch.tensor(values).clamp(0, 512) / 512
        feats = ours.embedder.embedding[0](u)
        w = ours.embedder.embedding[0].weights
    err = rel_err(emb, want)
    print(f"number conditioner max rel err {err:.2e}")
    assert emb.shape == (len(values), 1, 64) and torch.equal(mask, torch.ones(len(values), 1))
    torch.testing.assert_close(feats[:, 0], u, rtol=0, atol=0)
    half = w.numel()  # 128 frequencies for the 256-wide internal embedding
    torch.testing.assert_close(feats[:, 1 : 1 + half], torch.sin(2 * math.pi * u[:, None] * w), rtol=0, atol=1e-5)
    torch.testing.assert_close(feats[:, 1 + half :], torch.cos(2 * math.pi * u[:, None] * w), rtol=0, atol=1e-5)
    # Clamped ends coincide (compared at equal batch positions: GEMM rounding may vary by row).
    with torch.no_grad():
        assert torch.equal(ours([-3.0, 512.0], "cpu")[0], ours([0.0, 900.0], "cpu")[0])
    assert err <= TOL


# A tiny local T5 (random weights) + word-level tokenizer, saved as Hugging Face folders.
T5_MAX_LEN = 8
WORDS = "a calm piano melody with soft strings and warm bass drums fast slow loud".split()


@pytest.fixture(scope="module")
def t5_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    root = tmp_path_factory.mktemp("t5")
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    # T5 appends </s> to every sequence; do the same so masks look like the real tokenizer's.
    tk.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    tok.save_pretrained(root / "tokenizer")
    # d_model 512 = T5_DIMS["t5-small"], which is how the conditioner knows the width.
    cfg = T5Config(
        vocab_size=len(vocab), d_model=512, d_kv=32, d_ff=128, num_layers=1, num_heads=4, decoder_start_token_id=0
    )
    torch.manual_seed(7)
    T5EncoderModel(cfg).eval().save_pretrained(root / "text_encoder")
    return root / "text_encoder", root / "tokenizer"


def _t5_run(enc_dir: Path, tok_dir: Path, texts: list[str]) -> tuple[Tensor, Tensor]:
    """(raw T5 last_hidden_state, bool mask), computed directly with transformers."""
    from transformers import AutoTokenizer, T5EncoderModel

    tok = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    enc = T5EncoderModel.from_pretrained(str(enc_dir), local_files_only=True).eval()
    batch = tok(texts, truncation=True, max_length=T5_MAX_LEN, padding="max_length", return_tensors="pt")
    with torch.no_grad():
        h = enc(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    return h, batch["attention_mask"].bool()


def _t5_reference(enc_dir: Path, tok_dir: Path, texts: list[str]) -> tuple[Tensor, Tensor]:
    """What the conditioner must return: T5 last_hidden_state x mask, and the mask."""
    h, mask = _t5_run(enc_dir, tok_dir, texts)
    return h * mask[..., None].float(), mask


PROMPTS = ["a calm piano melody", "loud", "a calm piano melody with soft strings and warm bass drums fast"]


def test_t5_conditioner_parity_with_transformers(t5_dirs: tuple[Path, Path]) -> None:
    enc_dir, tok_dir = t5_dirs
    cond = T5Conditioner(512, "t5-small", max_length=T5_MAX_LEN)
    assert isinstance(cond.proj_out, nn.Identity)  # width 512 == output 512: no projection
    cond.attach(enc_dir, tok_dir)
    out, mask = cond(PROMPTS, "cpu")
    want, want_mask = _t5_reference(enc_dir, tok_dir, PROMPTS)
    err = rel_err(out, want)
    print(f"T5 conditioner max rel err {err:.2e}")
    assert out.shape == (3, T5_MAX_LEN, 512) and mask.shape == (3, T5_MAX_LEN)
    assert torch.equal(mask, want_mask)
    assert mask.sum(1).tolist() == [5, 2, T5_MAX_LEN]  # words + </s>; the long prompt is truncated
    assert torch.equal(out[~mask], torch.zeros_like(out[~mask]))  # pads exactly zero
    assert bool((out[mask].abs().amax(-1) > 0).all())  # every real token carries a non-zero vector
    assert err <= TOL
    assert list(cond.state_dict()) == []  # the encoder never enters the checkpoint


def tiny_model_config(
    *, cond_dim: int, t5: bool, project_cond_tokens: bool, num_heads: int = 2, embed_dim: int = 128
) -> dict[str, Any]:
    """A complete `diffusion_cond` config in SAO's shape (prompt + seconds_start + seconds_total)."""
    configs: list[dict[str, Any]] = []
    if t5:
        configs.append(
            {"id": "prompt", "type": "t5", "config": {"t5_model_name": "t5-small", "max_length": T5_MAX_LEN}}
        )
    configs += [
        {"id": i, "type": "number", "config": {"min_val": 0, "max_val": 512}}
        for i in ("seconds_start", "seconds_total")
    ]
    oob = {"channels": 8, "c_mults": [1, 2], "strides": [2, 2], "use_snake": True}
    return {
        "model_type": "diffusion_cond",
        "sample_size": 256,
        "sample_rate": 8000,
        "audio_channels": 2,
        "model": {
            "pretransform": {
                "type": "autoencoder",
                "config": {
                    "encoder": {"type": "oobleck", "config": {**oob, "in_channels": 2, "latent_dim": 8}},
                    "decoder": {
                        "type": "oobleck",
                        "config": {**oob, "out_channels": 2, "latent_dim": 4, "final_tanh": False},
                    },
                    "bottleneck": {"type": "vae"},
                    "latent_dim": 4,
                    "downsampling_ratio": 4,
                    "io_channels": 2,
                },
            },
            "conditioning": {"configs": configs, "cond_dim": cond_dim},
            "diffusion": {
                "type": "dit",
                "cross_attention_cond_ids": [c["id"] for c in configs],
                "global_cond_ids": ["seconds_start", "seconds_total"],
                "config": {
                    "io_channels": 4,
                    "embed_dim": embed_dim,
                    "depth": 2,
                    "num_heads": num_heads,
                    "cond_token_dim": cond_dim,
                    "global_cond_dim": 2 * cond_dim,
                    "project_cond_tokens": project_cond_tokens,
                    "transformer_type": "continuous_transformer",
                },
            },
        },
    }


def test_full_conditioning_and_dit_parity_with_diffusers_pipeline_math(t5_dirs: tuple[Path, Path]) -> None:
    """Metadata -> conditioners -> DiT, ours vs StableAudioProjectionModel + StableAudioDiTModel.

    The diffusers side follows StableAudioPipeline.__call__: text projection then x mask, tokens
    concatenated [prompt, start, end] over the sequence, globals [start, end] over channels.
    Here t5-small (512) feeds cond_dim 64, so the T5 `proj_out` Linear is live too.
    """
    raw = tiny_model_config(cond_dim=64, t5=True, project_cond_tokens=False)
    model = build_model(raw).eval()
    randomize_(model, seed=8)
    model.conditioner.conditioners["prompt"].attach(*t5_dirs)
    assert model.model.model.transformer.layers[0].cross_attn.kv_heads == 1  # 64 / 64, shared by 2 q heads
    w = conv.convert_model(model.state_dict(), model.config)
    dit = StableAudioDiTModel(**conv.dit_config(model.config.dit)).eval()
    load_into(dit, w.dit, "DiT")
    proj = StableAudioProjectionModel(text_encoder_dim=512, conditioning_dim=64, min_value=0, max_value=512).eval()
    load_into(proj, w.projection_model(), "projection model")

    meta = [
        {"prompt": PROMPTS[0], "seconds_start": 3.0, "seconds_total": 30.0},
        {"prompt": PROMPTS[2], "seconds_start": 0.0, "seconds_total": 600.0},
    ]
    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, 4, 20, generator=g)
    t = conv.network_t(torch.tensor([0.05, 4.0]))
    with torch.no_grad():
        xattn, mask, glob = model.conditioning_inputs(model.conditioner(meta, "cpu"))
        out = model.network(x, t, xattn, glob)

        enc_dir, tok_dir = t5_dirs
        h, hmask = _t5_run(enc_dir, tok_dir, [m["prompt"] for m in meta])
        p = proj(text_hidden_states=h, start_seconds=torch.tensor([3.0, 0.0]), end_seconds=torch.tensor([30.0, 600.0]))
        prompt_embeds = p.text_hidden_states * hmask[..., None].float()
        tokens = torch.cat([prompt_embeds, p.seconds_start_hidden_states, p.seconds_end_hidden_states], dim=1)
        globs = torch.cat([p.seconds_start_hidden_states, p.seconds_end_hidden_states], dim=2)
        want = dit(
            x,
            timestep=t,
            encoder_hidden_states=tokens,
            global_hidden_states=globs,
            rotary_embedding=pipeline_rotary(conv.rotary_dim(model.config.dit), 21),
            return_dict=False,
        )[0]
    errs = {
        "cross-attn tokens": rel_err(xattn, tokens),
        "global": rel_err(glob, globs[:, 0]),
        "DiT output": rel_err(out, want),
    }
    print("conditioning+DiT max rel err " + ", ".join(f"{k} {v:.2e}" for k, v in errs.items()))
    assert mask is not None and mask.shape == (2, T5_MAX_LEN + 2)
    for name, err in errs.items():
        assert err <= TOL, f"{name}: relative error {err:.3e} > {TOL}"


# ------------------------------------------------------------------ 4. model folders with T5


def _t5_model(tmp_path: Path) -> Path:
    raw = tiny_model_config(cond_dim=512, t5=True, project_cond_tokens=True)
    model = build_model(raw)
    randomize_(model, seed=10)
    return save_model(model, tmp_path / "model")


def test_load_model_parity_attaches_text_encoder_folders(tmp_path: Path, t5_dirs: tuple[Path, Path]) -> None:
    import shutil

    folder = _t5_model(tmp_path)
    shutil.copytree(t5_dirs[0], folder / "text_encoder")
    shutil.copytree(t5_dirs[1], folder / "tokenizer")
    model = load_model(folder)
    cond = model.conditioner.conditioners["prompt"]
    assert isinstance(cond, T5Conditioner) and cond.ready
    out, mask = model.conditioner([{"prompt": p, "seconds_start": 0, "seconds_total": 10} for p in PROMPTS], "cpu")[
        "prompt"
    ]
    want, want_mask = _t5_reference(*t5_dirs, PROMPTS)
    assert torch.equal(mask, want_mask)
    assert rel_err(out, want) <= TOL


def test_load_model_parity_missing_text_encoder_names_folder(tmp_path: Path) -> None:
    folder = _t5_model(tmp_path)
    with pytest.raises(TextEncoderMissingError) as exc:
        load_model(folder)
    assert str(folder) in str(exc.value) and "text_encoder" in str(exc.value)
    # Without the requirement the model loads, and the conditioner says what it needs when used.
    model = load_model(folder, require_text_encoder=False)
    with pytest.raises(TextEncoderMissingError, match="t5-small"):
        model.conditioner([{"prompt": "a", "seconds_start": 0, "seconds_total": 1}], "cpu")


# --------------------------------------------------------------- 5. SAO 1.0 layout, meta device

SAO_SHAPES = {
    "model.model.transformer.layers.0.self_attn.to_qkv.weight": (4608, 1536),
    "model.model.transformer.layers.0.cross_attn.to_kv.weight": (1536, 768),
    "conditioner.conditioners.seconds_total.embedder.embedding.1.weight": (768, 257),
    "pretransform.model.decoder.layers.1.layers.1.weight_g": (2048, 1, 1),
}


@pytest.fixture(scope="module")
def sao_meta() -> tuple[Any, dict[str, Tensor]]:
    raw = json.loads(SAO_CONFIG.read_text(encoding="utf-8"))
    with torch.device("meta"):  # shapes only: nothing of the 1.2B floats is allocated
        model = build_model(raw)
    return model, model.state_dict()


def test_sao_layout_parity_with_released_checkpoint(sao_meta: tuple[Any, dict[str, Tensor]]) -> None:
    _, sd = sao_meta
    assert all(v.is_meta for v in sd.values())
    assert len(sd) == 745
    assert sum(v.numel() for v in sd.values()) == 1_213_448_210
    for key, shape in SAO_SHAPES.items():
        assert tuple(sd[key].shape) == shape, key


def test_sao_parity_converts_one_to_one_to_diffusers_defaults(sao_meta: tuple[Any, dict[str, Tensor]]) -> None:
    model, sd = sao_meta
    cfg = model.config
    with torch.device("meta"):
        dit, vae = StableAudioDiTModel(), AutoencoderOobleck()
        proj = StableAudioProjectionModel(text_encoder_dim=768, conditioning_dim=768, min_value=0, max_value=512)
    # The released diffusers SAO 1.0 repo uses exactly the default module configs.
    for name, ours_cfg, ref in (("DiT", conv.dit_config(cfg.dit), dit), ("VAE", conv.vae_config(cfg.autoencoder), vae)):
        differing = {k: (v, ref.config[k]) for k, v in ours_cfg.items() if ref.config[k] != v}
        assert not differing, f"{name} config differs from diffusers defaults: {differing}"
    assert conv.rotary_dim(cfg.dit) == dit.config.attention_head_dim // 2  # pipeline RoPE rule agrees at 64
    w = conv.convert_model(sd, cfg)
    conv.assert_fills(w.dit, dit.state_dict(), "SAO DiT")
    conv.assert_fills(w.vae, vae.state_dict(), "SAO VAE")
    conv.assert_fills(w.projection_model(), proj.state_dict(), "SAO projection model")
    for spec in cfg.conditioners:
        if spec.type == "number":
            with torch.device("meta"):
                num = StableAudioNumberConditioner(**conv.number_config(spec))
            conv.assert_fills(w.numbers[spec.id], num.state_dict(), f"SAO {spec.id}")
    # Element bookkeeping: everything but the RoPE inv_freq buffer (16 floats, recomputed by the
    # pipeline) lands in diffusers.
    n_conv = sum(v.numel() for d in (w.dit, w.vae, w.projection_model()) for v in d.values())
    assert n_conv == 1_213_448_210 - sd["model.model.transformer.rotary_pos_emb.inv_freq"].numel()


# ------------------------------------------------------------------------- 6. strict loading


def test_strict_loading_parity_names_the_key() -> None:
    raw = tiny_model_config(cond_dim=64, t5=False, project_cond_tokens=False)
    model = build_model(raw)
    good = {k: v.clone() for k, v in model.state_dict().items()}
    load_state_dict_strict(model, good)  # the model's own state dict loads

    key = "model.model.transformer.layers.1.self_attn.to_qkv.weight"
    missing = dict(good)
    del missing[key]
    with pytest.raises(ModelLoadError, match="missing") as exc:
        load_state_dict_strict(build_model(raw), missing, source="ckpt")
    assert key in str(exc.value)

    extra = dict(good)
    extra["model.model.transformer.layers.2.self_attn.to_qkv.weight"] = good[key]
    with pytest.raises(ModelLoadError, match="unexpected") as exc:
        load_state_dict_strict(build_model(raw), extra, source="ckpt")
    assert "model.model.transformer.layers.2.self_attn.to_qkv.weight" in str(exc.value)

    shaped = dict(good)
    wkey = "pretransform.model.decoder.layers.1.layers.1.weight_g"
    shaped[wkey] = torch.ones(3, 1, 1)
    with pytest.raises(ModelLoadError, match="shape") as exc:
        load_state_dict_strict(build_model(raw), shaped, source="ckpt")
    assert wkey in str(exc.value)


def test_converter_parity_bookkeeping_catches_layout_drift() -> None:
    """The converter itself refuses a source key it would drop and a config diffusers cannot express."""
    raw = tiny_model_config(cond_dim=64, t5=False, project_cond_tokens=False)
    model = build_model(raw)
    sd = dict(model.state_dict())
    sd["model.model.transformer.layers.0.self_attn.stray"] = torch.zeros(1)
    with pytest.raises(AssertionError, match="not converted"):
        conv.convert_model(sd, model.config)
    windowed = copy.deepcopy(raw)
    windowed["model"]["diffusion"]["config"]["attn_window"] = 4
    with pytest.raises(ValueError, match="attn_window"):
        conv.dit_config(parse_model_config(windowed).dit)
