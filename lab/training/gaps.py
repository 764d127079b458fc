"""Where a DiT training crop may start: not across a long silent gap inside its item.

A drum stem that enters 35 s into a cinematic song, or rests for a long break, teaches the DiT that
"drums" may be seconds of digital silence. longplay-mini v2's first candidate learned exactly that:
it rendered 4 of 10 "drums" prompts at 4 s as the encoded silence (-115 dBFS; issue 19). With a gap
limit, crops holding a silent stretch longer than the limit before their item's end are never
drawn; the silence padded after an item's end stays, because with `seconds_total` it teaches the
model where to stop.

Silent frames are found in latent space: the codec encodes digital silence to one fixed latent
(`_silence.npy` beside the latents), and measured on the corpus's drum stems the frames under
-90 dBFS sit at distance ~0 from it while quiet tails (-90 to -60 dBFS) sit 0.7-1.4 away (latent
standard deviation ~1-2). Written here because no library knows our latent banks.
"""

from __future__ import annotations

import numpy as np

# A frame is silent when its latent mean lies within this many latent standard deviations (RMS over
# channels) of the encoded silence.
SILENT_TOLERANCE = 0.1


def silent_frames(mean: np.ndarray, silence: np.ndarray, tol: float) -> np.ndarray:
    """`[L]` bool: frames of a `[D, L]` latent mean within `tol` (RMS over channels) of `silence` `[D]`."""
    diff = mean.astype(np.float32) - silence.astype(np.float32)[:, None]
    return np.sqrt((diff * diff).mean(axis=0)) < tol


def crop_starts(silent: np.ndarray, frames: int, max_gap: int) -> np.ndarray:
    """The starts a crop of `frames` may take in an item whose frames are `silent` (the bank's
    range: 0..L-frames, or 0 alone for an item shorter than a crop), leaving out those whose crop
    holds more than `max_gap` silent frames in a row before the item's end."""
    length = len(silent)
    starts = np.arange(max(length - frames + 1, 1))
    ok = np.ones(len(starts), dtype=bool)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], silent.astype(np.int8), [0]))))
    for a, b in zip(edges[::2], edges[1::2]):  # a silent run [a, b)
        if b - a > max_gap:
            overlap = np.minimum(b, starts + frames) - np.maximum(a, starts)
            ok &= overlap <= max_gap
    return starts[ok]


def lead_in(silent: np.ndarray) -> int:
    """Frames before an item's first sound: its leading silent run (all of it for an item of
    silence). The encoder's first frame sits off the encoded silence even before a silent start
    (the zero padding it sees before frame 0), so it counts as part of the run when frame 1 is
    silent."""
    skip = 1 if len(silent) > 1 and silent[1] else 0  # frame 0 joins a run from frame 1
    sound = np.flatnonzero(~silent[skip:])
    return skip + int(sound[0]) if len(sound) else len(silent)
