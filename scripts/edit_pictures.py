"""The README's loop / extend / replace picture (issue 22): `python scripts/edit_pictures.py [OUT_PNG]`.

Renders with longplay-mini (house, 124 BPM, seeds fixed): a 4-bar loop played twice with its seam
marked; an 8-bar take, the same take extended by 4 bars, and with bars 3-5 replaced, the new span
shaded. Mel spectrograms, so the seam and the junctions can be seen as well as their level."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import soundfile as sf

from engine import Generator, RenderRequest, load_model

RATE, BPM = 44100, 124.0
BAR = 4 * 60 / BPM


def mel(audio: np.ndarray) -> np.ndarray:
    import librosa

    m = librosa.feature.melspectrogram(y=audio.mean(axis=0), sr=RATE, n_fft=2048, hop_length=512, n_mels=96)
    return librosa.power_to_db(m, ref=np.max)


def panel(ax: plt.Axes, audio: np.ndarray, title: str, marks: list[float], shade: tuple[float, float] | None) -> None:
    seconds = audio.shape[1] / RATE
    ax.imshow(mel(audio), origin="lower", aspect="auto", extent=(0, seconds, 0, 96), cmap="magma", vmin=-70)
    for x in marks:
        ax.axvline(x, color="cyan", lw=1.2, ls="--")
    if shade:
        ax.axvspan(*shade, color="white", alpha=0.18)
    ax.set_title(title, fontsize=9, loc="left")
    ax.set_yticks([])
    ax.set_xlim(0, seconds)


def main(out: Path) -> None:
    gen = Generator(load_model("longplay-mini"))
    prompt = "house, 124 BPM, drums, bass, rhodes"
    loop = gen.render(RenderRequest(prompt, bpm=BPM, bars=4, seed=3, steps=20, loop=True))[0].audio
    take = gen.render(RenderRequest(prompt, bpm=BPM, bars=8, seed=3, steps=20))[0].audio
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "take.wav"
        sf.write(str(path), take.T, RATE, subtype="FLOAT")
        ext = gen.render(RenderRequest(prompt, bpm=BPM, bars=4, seed=1, steps=20, edit="extend", edit_source=str(path)))
        rep = gen.render(
            RenderRequest(
                prompt, bpm=BPM, seed=2, steps=20, edit="replace", edit_source=str(path), from_bar=3, to_bar=5
            )
        )
    fig, axes = plt.subplots(4, 1, figsize=(10, 8), constrained_layout=True)
    n = loop.shape[1] / RATE
    panel(axes[0], np.concatenate([loop, loop], axis=1), "--loop: 4 bars played twice (dashed: the seam)", [n], None)
    panel(axes[1], take, "an 8-bar take", [], None)
    panel(
        axes[2],
        ext[0].audio,
        "longplay extend take.wav --bars 4 (shaded: the new bars)",
        [8 * BAR],
        (8 * BAR, 12 * BAR),
    )
    panel(
        axes[3],
        rep[0].audio,
        "longplay replace take.wav --from-bar 3 --to-bar 5",
        [2 * BAR, 5 * BAR],
        (2 * BAR, 5 * BAR),
    )
    axes[3].set_xlabel("seconds")
    fig.savefig(out, dpi=90)
    print(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/eval/loop_extend_replace.png"))
