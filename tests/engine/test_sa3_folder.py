"""Stable Audio 3 folders: both release layouts load (and render what the model in memory renders),
configs are read once, and incomplete or unsupported folders fail with a reason naming what is
missing and where it goes. Tiny random models written to tmp folders; nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")

from engine.errors import ModelLoadError, TextEncoderMissingError  # noqa: E402
from engine.sa3 import (  # noqa: E402
    DIFFUSERS,
    ORIGINAL,
    PromptEmbedding,
    SA3Model,
    detect_layout,
    is_sa3_folder,
    load_sa3,
    read_sa3_config,
)
from tests.engine import sa3_helpers as h  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]
RENDER = dict(seconds=1.0, seed=2, steps=3, headroom_seconds=0.0, precision="fp32")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[SA3Model, Path, Path, Path]:
    """A tiny SAME-S-style model (chunked attention, kernel-3 decoder mapping, differential DiT) in both layouts."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.set_verbosity_error()
    root = tmp_path_factory.mktemp("sa3folders")
    t5 = h.tiny_t5(root / "t5")
    model = h.tiny_model(differential=True, same=h.TINY_SAME_CHUNKED)
    original = h.write_original(model, root / "original", t5)
    band = h.tiny_model(seed=3)  # diffusers' pipeline can only save a SAME it can express (band, kernel 1)
    diffusers_dir = h.write_diffusers(band, root / "diffusers", t5)
    return model, original, diffusers_dir, t5


@pytest.fixture(scope="module")
def prompt() -> PromptEmbedding:
    g = torch.Generator().manual_seed(1)
    return PromptEmbedding(torch.randn(1, h.MAX_TOKENS, h.TEXT_DIM, generator=g), torch.arange(h.MAX_TOKENS)[None] < 5)


def test_sa3_original_layout_loads_and_renders_the_same(built: tuple, prompt: PromptEmbedding) -> None:
    model, original, _, _ = built
    assert detect_layout(original) == ORIGINAL and is_sa3_folder(original)
    loaded = load_sa3(original)
    assert loaded.config.layout == ORIGINAL and loaded.config.same.decoder.conv_mapping
    assert loaded.text is not None and loaded.folder == original
    assert not any(p.requires_grad for p in loaded.parameters())
    want = model.generate(prompt, **RENDER)
    assert h.rel_err(loaded.generate(prompt, **RENDER), want) < 1e-5
    # The T5Gemma found in t5gemma-b-b-ul2/ encodes prompts.
    embeds = loaded.encode_prompt(["house, 124 bpm"])
    assert embeds.embeds.shape == (1, h.MAX_TOKENS, h.TEXT_DIM) and embeds.mask[0, :3].all()


def test_sa3_diffusers_layout_loads_and_renders_the_same(built: tuple, prompt: PromptEmbedding) -> None:
    _, _, folder, _ = built
    assert detect_layout(folder) == DIFFUSERS
    loaded = load_sa3(folder)
    assert loaded.config.layout == DIFFUSERS and loaded.config.same.encoder.sliding_window == (1, 1)
    want = h.tiny_model(seed=3).generate(prompt, **RENDER)
    assert h.rel_err(loaded.generate(prompt, **RENDER), want) < 1e-5
    assert loaded.text is not None and loaded.text.max_length == h.MAX_TOKENS  # capped as diffusers caps


def test_sa3_diffusers_layout_with_kernel3_decoder_is_built_as_same_s(built: tuple, tmp_path: Path) -> None:
    """A diffusers-format vae/ holding the released SAME-S decoder (kernel-3 mapping) cannot say
    how SAME-S attends; the kernel identifies it and the pair is built as released."""
    from safetensors.torch import load_file, save_file

    model, _, folder, _ = built
    copy = tmp_path / "diffusers-same-s"
    shutil.copytree(folder, copy)
    vae = copy / "vae" / "diffusion_pytorch_model.safetensors"
    sd = load_file(str(vae))
    w = sd["decoder.blocks.0.mapping.weight_v"]
    sd["decoder.blocks.0.mapping.weight_v"] = torch.stack([w[..., 0]] * 3, dim=-1)
    save_file(sd, str(vae))
    cfg = read_sa3_config(copy)
    assert cfg.same.decoder.conv_mapping and cfg.same.decoder.sliding_window is None
    assert cfg.same.decoder.chunk_midpoint_shift and not cfg.same.encoder.conv_mapping
    load_sa3(copy, require_text_encoder=False)


def test_sa3_config_is_read_once(built: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    _, original, _, _ = built
    reads: list[str] = []
    real = Path.read_text

    def counting(self: Path, *a: object, **k: object) -> str:
        reads.append(self.name)
        return real(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", counting)
    load_sa3(original, require_text_encoder=False)
    assert reads.count("model_config.json") == 1


def test_sa3_missing_text_encoder_names_what_and_where(built: tuple, tmp_path: Path) -> None:
    _, original, folder, _ = built
    bare = tmp_path / "no-t5"
    shutil.copytree(original, bare)
    shutil.rmtree(bare / "t5gemma-b-b-ul2")
    with pytest.raises(
        TextEncoderMissingError, match=r"t5gemma-b-b-ul2.*text_encoder.*tokenizer.*Nothing is downloaded"
    ):
        load_sa3(bare)
    assert load_sa3(bare, require_text_encoder=False).text is None  # renders from prompt embeddings
    no_tok = tmp_path / "no-tokenizer"
    shutil.copytree(folder, no_tok)
    shutil.rmtree(no_tok / "tokenizer")
    with pytest.raises(TextEncoderMissingError, match="tokenizer"):
        load_sa3(no_tok)


def test_sa3_text_encoder_override_path(built: tuple, tmp_path: Path) -> None:
    _, original, _, t5 = built
    bare = tmp_path / "no-t5"
    shutil.copytree(original, bare)
    shutil.rmtree(bare / "t5gemma-b-b-ul2")
    assert load_sa3(bare, text_encoder=t5).text is not None
    with pytest.raises(TextEncoderMissingError, match="config.json"):
        load_sa3(bare, text_encoder=tmp_path)


def test_sa3_incomplete_or_foreign_folders_fail_clearly(built: tuple, tmp_path: Path) -> None:
    _, original, folder, _ = built
    no_weights = tmp_path / "no-weights"
    shutil.copytree(original, no_weights)
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="holds no weights"):
        load_sa3(no_weights)
    no_vae = tmp_path / "no-vae"
    shutil.copytree(folder, no_vae)
    shutil.rmtree(no_vae / "vae")
    with pytest.raises(ModelLoadError, match="vae/config.json"):
        load_sa3(no_vae)
    sao = tmp_path / "sao"
    sao.mkdir()
    shutil.copy(
        Path(__file__).resolve().parents[1] / "fixtures" / "stable-audio-open-1.0.model_config.json",
        sao / "model_config.json",
    )
    assert detect_layout(sao) is None and detect_layout(tmp_path / "nothing") is None
    with pytest.raises(ModelLoadError, match="not a Stable Audio 3 folder"):
        load_sa3(sao)


def test_sa3_weights_that_do_not_fit_name_the_key(built: tuple, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    _, original, _, _ = built
    bad = tmp_path / "bad"
    shutil.copytree(original, bad)
    sd = load_file(str(bad / "model.safetensors"))
    sd.pop("pretransform.model.decoder.layers.3.new_tokens")
    save_file(sd, str(bad / "model.safetensors"))
    with pytest.raises(ModelLoadError, match="missing key.*decoder.layers.3.new_tokens"):
        load_sa3(bad, require_text_encoder=False)
    raw = json.loads((original / "model_config.json").read_text())
    raw["model"]["pretransform"]["config"]["decoder"]["config"]["dyt"] = False
    (bad / "model_config.json").write_text(json.dumps(raw))
    with pytest.raises(ModelLoadError, match="dyt=False is not supported"):
        load_sa3(bad, require_text_encoder=False)
