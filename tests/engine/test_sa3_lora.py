"""Runtime LoRA on Stable Audio 3 (engine/sa3/lora.py): release-format LoRA files, built here with
random small weights, applied for one render through `Generator` and taken off again.

The merge is checked against the release's own `LoRAParametrization` (read from the local mirror of
`Stability-AI/stable-audio-3` when it exists; skipped otherwise) for every adapter type.
"""

from __future__ import annotations

import subprocess
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

import engine  # noqa: E402
from engine import Generator, RenderRequest  # noqa: E402
from engine.errors import LoRAError  # noqa: E402
from engine.sa3 import convert, lora  # noqa: E402
from tests.engine import sa3_helpers as h  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]
MIRROR = Path("/work/.mirror/Stability-AI+stable-audio-3/repo")
FAST = dict(seconds=1.0, seed=3, steps=2)


@pytest.fixture(scope="module")
def gen(tmp_path_factory: pytest.TempPathFactory) -> Generator:
    """A differential DiT (its to_qkv rows are permuted between the release and diffusers)."""
    from transformers.utils import logging as tlog

    tlog.set_verbosity_error()
    root = tmp_path_factory.mktemp("sa3lora")
    folder = h.write_original(h.tiny_model(differential=True), root / "sa3", h.tiny_t5(root / "t5"))
    return Generator(engine.load_model(folder), device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("loras")


def _model(gen: Generator) -> Any:
    assert gen.sa3 is not None
    return gen.sa3.model


def _render(gen: Generator, **kw: Any) -> np.ndarray:
    [res] = gen.render(RenderRequest("warm house", **{**FAST, **kw}))
    return res.audio


def test_a_lora_changes_the_render_and_leaves_the_model_as_it_was(gen: Generator, lora_dir: Path) -> None:
    model = _model(gen)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = _render(gen)
    path = h.write_lora(model, lora_dir / "style.safetensors", seed=1)
    [res] = gen.render(RenderRequest("warm house", lora=((str(path), 1.0),), **FAST))  # type: ignore[arg-type]
    assert res.audio.shape == plain.shape and not np.allclose(res.audio, plain, atol=1e-4)
    # Taken off after the render: the weights are the same tensors' same values, the render the same.
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert np.array_equal(_render(gen), plain)
    # Recorded in the recipe: path, short sha256, scale.
    [entry] = res.recipe["lora"]
    assert entry["path"] == str(path) and entry["scale"] == 1.0 and entry["adapter_type"] == "lora"
    assert len(entry["sha256"]) == 12 and entry["sha256"] == lora.read_lora(path, model.config).sha256[:12]
    # Same seed, same LoRA: same audio; a smaller scale lands nearer the plain render.
    again = _render(gen, lora=((str(path), 1.0),))
    assert np.array_equal(again, res.audio)
    half = _render(gen, lora=((str(path), 0.3),))
    assert np.abs(half - plain).mean() < np.abs(res.audio - plain).mean()


@pytest.mark.parametrize("adapter", ["lora", "dora-rows"])
def test_scale_zero_is_no_lora(gen: Generator, lora_dir: Path, adapter: str) -> None:
    path = h.write_lora(_model(gen), lora_dir / f"zero-{adapter}.safetensors", adapter=adapter, seed=2)
    assert np.array_equal(_render(gen, lora=((str(path), 0.0),)), _render(gen))


def test_two_loras_stack_in_order(gen: Generator, lora_dir: Path) -> None:
    model = _model(gen)
    a = h.write_lora(model, lora_dir / "a.safetensors", seed=3)
    b = h.write_lora(model, lora_dir / "b.safetensors", adapter="dora-rows", seed=4)
    one = _render(gen, lora=((str(a), 1.0),))
    both = _render(gen, lora=((str(a), 1.0), (str(b), 1.0)))
    assert not np.allclose(one, both, atol=1e-4)
    assert np.array_equal(_render(gen, lora=((str(a), 1.0), (str(b), 0.0))), one)


def test_bad_lora_requests_are_clear_errors(gen: Generator, lora_dir: Path, tmp_path: Path) -> None:
    model = _model(gen)
    good = h.write_lora(model, lora_dir / "ok.safetensors", seed=5)
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(LoRAError, match="no such file: .*nope.safetensors"):
        gen.render(RenderRequest("x", lora=((str(missing), 1.0),), **FAST))  # type: ignore[arg-type]
    with pytest.raises(LoRAError, match=r"lora scale .* between 0 and 10"):
        gen.render(RenderRequest("x", lora=((str(good), 11.0),), **FAST))  # type: ignore[arg-type]
    with pytest.raises(LoRAError, match="at most 4 files"):
        gen.render(RenderRequest("x", lora=((str(good), 1.0),) * 5, **FAST))  # type: ignore[arg-type]
    # A LoRA of another model: a layer this one lacks, or a wider one; the key is named.
    from dataclasses import replace

    wide = engine.sa3.SA3Model(replace(h.tiny_config(), dit=replace(h.TINY_DIT, embed_dim=256, num_heads=4)))
    h.randomize(wide, 0)
    for bad, what in (
        (
            h.write_lora(wide, tmp_path / "wide.safetensors"),
            r"'model\.\S+\.parametrizations\.weight\.0\.lora_[AB]' has shape",
        ),
        (h.write_lora(model, tmp_path / "deep.safetensors", only="layers.1."), None),
    ):
        if what is None:  # rename layer 1 to a layer 5 the tiny DiT does not have
            from safetensors.torch import load_file, save_file

            sd = load_file(str(bad))
            save_file({k.replace("layers.1.", "layers.5."): v for k, v in sd.items()}, str(bad))
            what = r"no layer 'model\.transformer\.layers\.5\..*key 'model\.transformer\.layers\.5\."
        with pytest.raises(LoRAError, match=what):
            gen.render(RenderRequest("x", lora=((str(bad), 1.0),), **FAST))  # type: ignore[arg-type]
    text = tmp_path / "not.safetensors"
    text.write_text("hello")
    with pytest.raises(LoRAError, match="not a readable safetensors file"):
        gen.render(RenderRequest("x", lora=((str(text), 1.0),), **FAST))  # type: ignore[arg-type]
    # A render after the failures is the plain one (nothing was left applied).
    assert np.array_equal(_render(gen), _render(gen, lora=()))


def test_lora_needs_an_sa3_model(lora_dir: Path) -> None:
    g = Generator(engine.build_model(engine.tiny_config()), device="cpu")
    with pytest.raises(LoRAError, match="needs a Stable Audio 3 model"):
        g.resolve(RenderRequest("x", seconds=0.5, lora=(("/x.safetensors", 1.0),)))


# ------------------------------------------------------------------------------ the release's math


def _release_parametrization() -> Any:
    """The release's `LoRAParametrization` class, from the local mirror of its repository."""
    if not (MIRROR / "HEAD").exists() and not (MIRROR / ".git").exists():
        pytest.skip("no local mirror of Stability-AI/stable-audio-3")
    try:
        src = subprocess.run(
            ["git", "-C", str(MIRROR), "show", "HEAD:stable_audio_3/models/lora/model.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("the stable-audio-3 mirror cannot be read")
    mod = types.ModuleType("sa3_release_lora")
    # Its one package-relative import is a print helper.
    exec(compile(src.replace("from ...verbose import vprint", "vprint = print"), "lora/model.py", "exec"), mod.__dict__)
    return mod.LoRAParametrization


@pytest.mark.parametrize("adapter", list(lora.ADAPTERS))
def test_merge_equals_the_release_parametrization(gen: Generator, lora_dir: Path, adapter: str) -> None:
    """Two stacked files (the second at scale 0.7) through our merge vs the release's
    parametrizations chained on each layer (its loader: file i is parametrization i)."""
    import torch.nn.utils.parametrize as parametrize

    release = _release_parametrization()
    model = _model(gen)
    cfg = model.config
    files = [
        lora.read_lora(h.write_lora(model, lora_dir / f"{adapter}-{i}.safetensors", adapter, seed=10 + i), cfg, model)
        for i in range(2)
    ]
    scales = [1.0, 0.7]
    ours = lora.merged_weights(model, cfg, list(zip(files, scales, strict=True)))
    layers = lora.release_layers(cfg)
    # Every Linear/Conv1d weight of the DiT and the duration embedder, as the release parametrizes them.
    matrices = {
        (part, f"{n}.weight")
        for part in ("dit", "duration")
        for n, m in getattr(model, part).named_modules()
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d))
    }
    assert set(ours) == {(x.part, x.key) for x in layers.values()} == matrices
    worst = 0.0
    for name, layer in layers.items():
        base = getattr(model, layer.part).get_parameter(layer.key).detach().float()
        w0 = base.reshape(base.shape[0], -1)
        if layer.permute_qkv:
            w0 = convert.unpermute_qkv(w0)
        lin = torch.nn.Linear(w0.shape[1], w0.shape[0], bias=False)
        with torch.no_grad():
            lin.weight.copy_(w0)
        for i, (f, scale) in enumerate(zip(files, scales, strict=True)):
            p = release.from_linear(lin, rank=f.rank, lora_alpha=f.alpha, adapter_type=adapter, lora_index=i)
            parametrize.register_parametrization(lin, "weight", p, unsafe=True)
            with torch.no_grad():
                for k, t in f.layers[name].items():
                    getattr(p, k).copy_(t)
                p.lora_strength.fill_(scale)
        with torch.no_grad():
            want = lin.weight.detach()
        got = ours[(layer.part, layer.key)].reshape(base.shape[0], -1)
        if layer.permute_qkv:
            got = convert.unpermute_qkv(got)
        worst = max(worst, ((got - want).abs().max() / want.abs().max()).item())
    assert worst < 1e-5, worst
