"""Growing a trained autoencoder without starting it over: a wider decoder (`widen_decoder`) or
more latent channels (`widen_latents`), each starting as (nearly) the same function.

Written by hand: no maintained library widens weight-normed 1-D conv stacks (torch has no
Net2Net, Chen et al. 2016).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch

from engine.autoencoder import AudioAutoencoder, OobleckDecoder, SnakeBeta, WNConv1d
from engine.config import parse_autoencoder

from .errors import TrainingError

# Relative noise on widened weights: copies of a channel that start nearly equal get nearly equal
# gradients and stay a narrow decoder for long; 0.03 moves the output ~4 % at the start (1e-3 left
# a widened decoder no better than the narrow one after 400 steps).
WIDEN_NOISE = 0.03
# The new latent channels' encoder rows are drawn at the old rows' scale (so the new channels carry
# as much signal as the old from the first step), and the decoder reads them through columns that
# start at zero: the widened autoencoder is exactly the old one at first, and the decoder's
# gradient for those columns is full-sized at once. (Measured: rows started at 5 % of the old
# scale were still at 3 % after 400 steps at lr 1e-4 - weight norm's gain moves by ~lr a step.)
NEW_LATENT_SCALE = 1.0


@torch.no_grad()
def widen_decoder(
    model: AudioAutoencoder, ae_raw: Mapping[str, Any], channels: int, noise: float = WIDEN_NOISE, seed: int = 0
) -> tuple[AudioAutoencoder, dict[str, Any]]:
    """A copy of `model` whose decoder is `channels` wide (an integer multiple of its width) and
    computes the same function (Net2WiderNet, Chen et al. 2016), encoder untouched.

    Every hidden channel c of the decoder becomes copies c, c + C, ...: weights are tiled along
    each widened output axis and tiled and divided by the factor along each widened input axis,
    SnakeBeta parameters and biases are tiled, and weight norm is re-derived (v = w, g = |w|). So
    `decoder-only` training can grow a trained decoder on frozen latents (the DiT's latent space
    is the encoder's, which stays) without starting it from scratch. Relative noise `noise` on the
    new weights breaks the symmetry between copies; 0 keeps the function exact. Written by hand:
    no maintained library widens weight-normed 1-D conv stacks (torch has no Net2Net).
    """
    old = model.cfg.decoder.channels
    if channels < old or channels % old:
        raise TrainingError(f"decoder channels {channels} must be a multiple of the current {old}")
    factor = channels // old
    raw = json.loads(json.dumps(ae_raw))
    raw["decoder"]["config"]["channels"] = channels
    wide = AudioAutoencoder(parse_autoencoder(raw, "autoencoder"))
    wide.encoder.load_state_dict(model.encoder.state_dict())
    gen = torch.Generator().manual_seed(seed)
    src = dict(model.decoder.named_modules())
    for name, mod in wide.decoder.named_modules():
        if isinstance(mod, SnakeBeta):
            mod.alpha.copy_(src[name].alpha.repeat(factor))
            mod.beta.copy_(src[name].beta.repeat(factor))
        elif isinstance(mod, WNConv1d):
            small = src[name]
            w = small.weight()  # conv [out, in, k]; transposed [in, out, k]
            o_ax, i_ax = (1, 0) if mod.transpose else (0, 1)
            reps = [1, 1, 1]
            if mod.weight_v.shape[o_ax] != w.shape[o_ax]:
                reps[o_ax] = factor
            if mod.weight_v.shape[i_ax] != w.shape[i_ax]:
                reps[i_ax] = factor
            w = w.repeat(*reps) / reps[i_ax]
            if noise > 0:
                w = w + noise * w.std() * torch.randn(w.shape, generator=gen)
            mod.weight_v.copy_(w)
            mod.weight_g.copy_(w.flatten(1).norm(dim=1).view(-1, 1, 1))
            if mod.bias is not None:
                mod.bias.copy_(small.bias.repeat(mod.bias.shape[0] // small.bias.shape[0]))
    return wide.train(model.training), raw


@torch.no_grad()
def widen_latents(
    model: AudioAutoencoder, ae_raw: Mapping[str, Any], latent_dim: int, seed: int = 0
) -> tuple[AudioAutoencoder, dict[str, Any]]:
    """A copy of `model` with `latent_dim` latent channels (more than it has), the old ones first
    and unchanged, computing the same audio.

    The encoder's last conv gains output rows (VAE: new mean rows after the old means, drawn at
    their scale, `NEW_LATENT_SCALE`; new scale rows after the old scales, weights zero and biases
    the old ones' mean), the decoder's first conv input columns, at zero. So the new channels are
    there for the training to fill with what the old ones do not carry (a note's phase), and a DiT
    trained on the old channels can be warm-started on the new latents (`grow_dit_io`)."""
    old = model.cfg.latent_dim
    if latent_dim <= old:
        raise TrainingError(f"latent_dim {latent_dim} must be larger than the current {old}")
    if not isinstance(model.decoder, OobleckDecoder):
        raise TrainingError("widen_latents grows an Oobleck decoder; this model has another")
    vae = model.cfg.bottleneck == "vae"
    raw = json.loads(json.dumps(ae_raw))
    raw["latent_dim"] = latent_dim
    raw["encoder"]["config"]["latent_dim"] = latent_dim * (2 if vae else 1)
    raw["decoder"]["config"]["latent_dim"] = latent_dim
    new = AudioAutoencoder(parse_autoencoder(raw, "autoencoder"))
    new.load_state_dict(
        {k: v for k, v in model.state_dict().items() if new.state_dict()[k].shape == v.shape}, strict=False
    )
    gen = torch.Generator().manual_seed(seed)
    extra = latent_dim - old

    def like_rows(like: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        return NEW_LATENT_SCALE * like.std() * torch.randn(shape, generator=gen)

    enc_old, enc_new = model.encoder.layers[-1], new.encoder.layers[-1]
    assert isinstance(enc_old, WNConv1d) and isinstance(enc_new, WNConv1d)
    w = enc_old.weight()  # [2 * old (VAE) or old, in, k]
    b = enc_old.bias
    assert b is not None and enc_new.bias is not None
    groups = [(w[:old], b[:old], False)] + ([(w[old:], b[old:], True)] if vae else [])
    ws, bs = [], []
    for gw, gb, is_scale in groups:
        ws += [gw, like_rows(gw, (extra, *gw.shape[1:])) * (0 if is_scale else 1)]
        bs += [gb, gb.mean().expand(extra) if is_scale else torch.zeros(extra)]
    wn = torch.cat(ws)
    enc_new.weight_v.copy_(wn + (wn == 0) * 1e-8)  # a zero row has no direction for weight norm
    enc_new.weight_g.copy_(wn.flatten(1).norm(dim=1).view(-1, 1, 1))
    enc_new.bias.copy_(torch.cat(bs))

    dec_old, dec_new = model.decoder.layers[0], new.decoder.layers[0]
    assert isinstance(dec_old, WNConv1d) and isinstance(dec_new, WNConv1d)
    w = dec_old.weight()  # [out, old, k]
    wn = torch.cat([w, torch.zeros(w.shape[0], extra, w.shape[2])], dim=1)
    dec_new.weight_v.copy_(wn)
    dec_new.weight_g.copy_(wn.flatten(1).norm(dim=1).view(-1, 1, 1))
    if dec_old.bias is not None and dec_new.bias is not None:
        dec_new.bias.copy_(dec_old.bias)
    return new.train(model.training), raw


# The DiT's weights that touch the latent channels (`engine/dit.py`): 1x1 residual convs over the
# channels, and the token projections whose features are "b (t p) f -> b t (f p)" (channel-major).
DIT_IO_KEYS = (
    "model.model.preprocess_conv.weight",
    "model.model.postprocess_conv.weight",
    "model.model.transformer.project_in.weight",
    "model.model.transformer.project_out.weight",
)


def grow_dit_io(
    weights: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], patch: int
) -> dict[str, torch.Tensor]:
    """A DiT's `weights` for latents of C channels, fitted into a model (`own`: its state dict) of
    more: the old channels keep their weights, the new ones start at zero in both directions, so
    the grown DiT first predicts what it did for the old channels and 0 for the new ones (the
    widened autoencoder's new channels start near 0 too; `widen_latents`). Weights of any other
    key pass through unchanged."""
    out = dict(weights)
    for key in DIT_IO_KEYS:
        if key not in weights or key not in own or weights[key].shape == own[key].shape:
            continue
        old, new = weights[key], torch.zeros_like(own[key])
        # Only the channel axes may differ (grown); any other difference is another architecture,
        # which the caller's fit check names.
        axes = {"conv.weight": (0, 1), "project_in.weight": (1,), "project_out.weight": (0,)}
        grown = next(a for suffix, a in axes.items() if key.endswith(suffix))
        if any((n != o) if i not in grown else (n < o) for i, (n, o) in enumerate(zip(new.shape, old.shape))):
            continue
        new[tuple(slice(0, o) for o in old.shape)] = old
        out[key] = new
    return out
