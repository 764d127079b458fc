"""The key a prompt names, and the key token a keyed model reads it through (issue 19)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from bridge.train_cli import add_train_parser, dit_architecture
from engine import Generator, RenderRequest, build_model, parse_model_config, tiny_config
from engine.conditioners import KeyConditioner
from engine.dit import guided_forward
from engine.errors import ConfigError, RequestError
from engine.keys import parse_key, prompt_key, scale_pitch_classes


@pytest.mark.parametrize(
    ("prompt", "key"),
    [
        ("Key: D dorian|Genre: lo-fi|BPM: 78", (2, "dorian")),  # the corpus's three phrasings
        ("78 bpm, music box, in d dorian", (2, "dorian")),
        ("techno, key of Eb major", (3, "major")),
        ("warm house bed, 124 BPM, in F# minor, Rhodes", (6, "minor")),
        ("BPM: 124|key: bb phrygian", (10, "phrygian")),
        ("G♯ mixolydian pads", (8, "mixolydian")),
        ("a Cmajor vamp", (0, "major")),
        ("dub minor-key skank", None),  # "b minor" inside a word is not a key
        ("Cmaj7 pads, Am groove", None),  # chord symbols are not keys
        ("lo-fi, 80 BPM", None),
        ("", None),
    ],
)
def test_prompt_key_reads_the_key_a_prompt_names(prompt: str, key: tuple[int, str] | None) -> None:
    assert prompt_key(prompt) == key


def test_scales_of_modes_share_pitch_classes() -> None:
    assert scale_pitch_classes("D dorian") == scale_pitch_classes("C major") == scale_pitch_classes("A aeolian")
    assert scale_pitch_classes("F# major") == frozenset({6, 8, 10, 11, 1, 3, 5})
    assert parse_key("Bb minor") == (10, "minor") and parse_key("in Bb minor") is None
    assert scale_pitch_classes("nonsense") is None


def test_key_token_is_the_pitch_classes_of_the_named_key_and_null_without_one() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config(window_seconds=1.0, key=True))
    with torch.no_grad():
        model.conditioner.conditioners["key"].proj.weight.normal_()  # a new token starts silent
    cond = model.conditioner(
        [
            {"prompt": p, "seconds_start": 0, "seconds_total": 1}
            for p in ("Key: D dorian", "jazz, in d dorian", "jazz", "C major")
        ],
        "cpu",
    )
    tokens, mask = cond["key"]
    assert tokens.shape == (4, 1, model.config.conditioners[0].output_dim) and mask[:, 0].tolist() == [
        True,
        True,
        False,
        True,
    ]
    assert torch.equal(tokens[0], tokens[1])  # the same key, however it is written
    assert torch.count_nonzero(tokens[2]) == 0  # no key: the unconditional branch's null token
    assert not torch.allclose(tokens[0], tokens[3])  # same seven pitch classes, another tonic
    features = torch.tensor(KeyConditioner.features("in D dorian"))
    assert features[0] == 1 and features[1:13].nonzero().flatten().tolist() == sorted(scale_pitch_classes("D dorian"))
    assert features[13:].nonzero().flatten().tolist() == [2]


def test_a_keyed_model_renders_by_the_key_and_a_plain_one_loads_unchanged() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config(window_seconds=1.0, key=True))
    proj = model.conditioner.conditioners["key"].proj
    with torch.no_grad():
        proj.weight.normal_(0.0, 2.0)  # a new token starts silent; as if trained
    gen = Generator(model, device="cpu")

    def render(prompt: str) -> np.ndarray:
        return gen.render(RenderRequest(prompt, seconds=0.5, steps=3, seed=4))[0].audio

    keyed, plain = render("ambient, in F minor"), render("ambient, slow")
    said = gen.render(RenderRequest("lo-fi, in f# minor, no drums", seconds=0.5, steps=2))[0].recipe
    assert said["key"] == "F# minor"  # the recipe names the key the model was told
    assert gen.render(RenderRequest("lo-fi", seconds=0.5, steps=2))[0].recipe["key"] is None
    with torch.no_grad():
        proj.weight.zero_()  # the same model, deaf to keys
    assert not np.allclose(keyed, render("ambient, in F minor"), atol=1e-4)
    assert np.array_equal(plain, render("ambient, slow"))  # no key named: the token was null already
    bare = parse_model_config(tiny_config())
    assert bare.conditioner("key") is None and "key" not in bare.cross_attention_cond_ids
    assert (
        "key"
        not in Generator(build_model(bare), device="cpu").render(RenderRequest("x", seconds=0.5, steps=2))[0].recipe
    )


def test_train_dit_key_flag_adds_the_token_and_a_keyed_model_keeps_it() -> None:
    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers(dest="command"))
    base = ["train", "dit", "--corpus", "c", "--latents", "l", "--ae", "a", "--out", "o"]
    assert dit_architecture(parser.parse_args([*base, "--key"]), None)["key"] is True
    assert dit_architecture(parser.parse_args(base), None)["key"] is False
    keyed = parse_model_config(tiny_config(window_seconds=1.0, key=True))
    assert dit_architecture(parser.parse_args(base), keyed)["key"] is True


def test_the_key_token_reaches_every_dit_token_without_attention_and_starts_silent() -> None:
    """`add_last_cond_token`: the key token is added to every token, so the DiT reads the key even
    where cross-attention gives it no weight; the grown path starts at zero (a warm start is the old
    model) and the null token (no key named, CFG's unconditional branch) adds nothing."""
    torch.manual_seed(0)
    config = tiny_config(window_seconds=1.0, key=True)
    assert config["model"]["diffusion"]["config"]["add_last_cond_token"] is True
    net = build_model(config).model.model
    for layer in net.transformer.layers:  # cross-attention silenced: only the added path is left
        torch.nn.init.zeros_(layer.cross_attn.to_out.weight)
    x, t = torch.randn(2, 8, 172), torch.full((2,), 0.5)
    glob = torch.randn(2, net.cfg.global_cond_dim)
    tokens = torch.randn(2, 4, net.cfg.cond_token_dim)

    def out(last: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(x, t, torch.cat((tokens, last[:, None, :]), dim=1), glob)

    a, b = torch.randn(2, net.cfg.cond_token_dim), torch.randn(2, net.cfg.cond_token_dim)
    assert torch.equal(out(a), out(b))  # zero-init: silent
    with torch.no_grad():
        net.to_last_token_add.weight.normal_(0.0, 1.0)  # as if trained
    assert not torch.allclose(out(a), out(b), atol=1e-4)  # heard through the added path alone
    zero = torch.zeros(2, net.cfg.cond_token_dim)
    with torch.no_grad():
        silent = net.to_last_token_add.weight.clone()
        net.to_last_token_add.weight.zero_()
        without = out(zero)
        net.to_last_token_add.weight.copy_(silent)
    assert torch.equal(out(zero), without)  # the null token adds nothing
    bad = tiny_config(window_seconds=1.0)
    bad["model"]["diffusion"]["config"]["add_last_cond_token"] = True
    bad["model"]["diffusion"]["cross_attention_cond_ids"] = []
    with pytest.raises(ConfigError, match="add_last_cond_token"):
        parse_model_config(bad)


def test_key_cfg_guides_the_added_key_by_its_own_scale() -> None:
    """`guided_forward(key_cfg=g)`: where the network is linear in the added key, the key's pull on
    the guided output is g times its conditional pull, while the text keeps `cfg_scale`; key_cfg =
    cfg is plain CFG to the bit."""
    torch.manual_seed(0)
    net = build_model(tiny_config(window_seconds=1.0, key=True)).model
    for layer in net.model.transformer.layers:  # cross-attention silenced: the key's added path only
        torch.nn.init.zeros_(layer.cross_attn.to_out.weight)
    with torch.no_grad():
        net.model.to_last_token_add.weight.normal_(0.0, 0.002)  # small: the network ~linear in the key
    x, t = torch.randn(1, 8, 172), torch.full((1,), 0.5)
    glob = torch.randn(1, net.model.cfg.global_cond_dim)
    text = torch.randn(1, 4, net.model.cfg.cond_token_dim)
    a, b = (torch.randn(1, 1, net.model.cfg.cond_token_dim) for _ in range(2))

    def pull(key_cfg: float | None, cfg: float = 5.0) -> torch.Tensor:
        with torch.no_grad():
            outs = [guided_forward(net, x, t, torch.cat((text, k), 1), glob, cfg, key_cfg=key_cfg) for k in (a, b)]
        return outs[0] - outs[1]

    full = pull(None)
    assert full.abs().max() > 0
    assert torch.equal(pull(5.0), full)
    for g in (3.0, 1.0, 0.0):  # measured: within 0.4 % of g/5 (ignoring key_cfg would be 40-100 % off)
        assert (pull(g) - full * g / 5.0).norm() < 0.02 * full.norm()
    unguided = pull(None, cfg=1.0)
    assert (pull(1.0) - unguided).norm() < 0.02 * unguided.norm()


def test_key_cfg_is_a_model_default_and_refused_where_no_key_is_added() -> None:
    torch.manual_seed(0)
    config = tiny_config(window_seconds=1.0, key=True)
    config["longplay"] = {"defaults": {"cfg": 5.0, "key_cfg": 2.0}}
    model = build_model(config)
    with torch.no_grad():  # as if trained: a new token and its added path start silent
        model.conditioner.conditioners["key"].proj.weight.normal_(0.0, 2.0)
        model.model.model.to_last_token_add.weight.normal_(0.0, 1.0)
    gen = Generator(model, device="cpu")

    def render(**kw: float) -> np.ndarray:
        return gen.render(RenderRequest("ambient, in F minor", seconds=0.5, steps=3, seed=4, **kw))[0].audio

    assert gen.resolve(RenderRequest("x")).key_cfg == 2.0  # the folder's default
    assert gen.resolve(RenderRequest("x", cfg=7.0, key_cfg=3.0)).key_cfg == 3.0
    assert np.array_equal(render(), render(key_cfg=2.0))
    assert not np.allclose(render(), render(key_cfg=5.0), atol=1e-4)
    with pytest.raises(RequestError, match="key_cfg must be between 0 and 25"):
        gen.resolve(RenderRequest("x", key_cfg=30.0))
    del config["longplay"]["defaults"]["key_cfg"]
    assert Generator(build_model(config), device="cpu").resolve(RenderRequest("x")).key_cfg == 5.0  # = cfg
    plain = Generator(build_model(tiny_config(window_seconds=1.0)), device="cpu")
    assert plain.resolve(RenderRequest("x")).key_cfg is None
    with pytest.raises(RequestError, match="key_cfg needs a model whose DiT adds the key token"):
        plain.resolve(RenderRequest("x", key_cfg=3.0))
    bad = tiny_config(window_seconds=1.0)
    bad["longplay"] = {"defaults": {"key_cfg": 3.0}}
    with pytest.raises(ConfigError, match="key_cfg needs diffusion.config.add_last_cond_token"):
        parse_model_config(bad)
