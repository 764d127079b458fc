"""Pictures of pitch through the autoencoders (issue 19's "look and listen"): a sine sweep
(55 -> 1,760 Hz) and a General MIDI piano phrase, each as the input and as it comes back from the
shipped longplay-mini autoencoder and from STFT-codec checkpoints, as mel spectrograms (to
2 kHz, where the latent rate's 21.5 Hz comb shows as horizontal stripes and a held pitch as a line).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/pitch_pictures.py CKPT [CKPT ...] --out docs/eval/pitch_roundtrip.png
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SR, HOP = 44100, 2048
PHRASE = (60, 64, 67, 72, 71, 67, 64, 62, 60, 55, 57, 59, 60)  # C major, one beat each at 120 BPM


def sweep(seconds: float = 8.0, lo: float = 55.0, hi: float = 1760.0) -> np.ndarray:
    """A logarithmic sine sweep at -12 dBFS, `[2, N]` (N a multiple of the hop), float64 phase."""
    n = int(seconds * SR) // HOP * HOP
    t = np.arange(n) / SR
    rate = np.log(hi / lo) / seconds
    phase = 2 * np.pi * lo * (np.exp(rate * t) - 1) / rate
    x = (0.25 * np.sin(phase)).astype(np.float32)
    return np.stack([x, x])


def piano_phrase() -> np.ndarray:
    """`PHRASE` on GM program 0 through FluidSynth, `[2, N]`."""
    import soundfile as sf

    from lab.data.midi import Track, midi_file
    from lab.data.parts import Note
    from lab.data.render import find_synth, synthesize

    track = Track("melody", 0, "acoustic grand", tuple(Note(float(i), 1.0, p, 96) for i, p in enumerate(PHRASE)))
    end = float(len(PHRASE) + 1)
    with tempfile.TemporaryDirectory() as tmp:
        mid = Path(tmp) / "phrase.mid"
        midi_file([track], tempo=500_000, end_beat=end, title="phrase").save(str(mid))
        synthesize(mid, Path(tmp) / "phrase.wav", find_synth(), SR, gain=0.5, timeout=60.0)
        audio, _ = sf.read(str(Path(tmp) / "phrase.wav"), dtype="float32", always_2d=True)
    n = audio.shape[0] // HOP * HOP
    return np.ascontiguousarray(audio[:n].T)


def mel_db(audio: np.ndarray) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(
        y=audio.mean(0), sr=SR, n_fft=4096, hop_length=512, n_mels=160, fmin=30.0, fmax=2000.0
    )
    return librosa.power_to_db(mel, ref=1.0, top_db=None)


def judge_phrase(outputs: list[tuple[str, np.ndarray]]) -> None:
    """basic-pitch's notes on the piano phrase as each model returns it: note count, key, and the
    correlation of its duration-weighted pitch-class profile with the input's (1.0: same notes)."""
    import soundfile as sf

    from lab.evaluation.judges import run_judges

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, (_, audio) in enumerate(outputs):
            paths.append(Path(tmp) / f"{i}.wav")
            sf.write(str(paths[-1]), audio.T, SR)
        answer = run_judges(paths, ["notes"])
    found = [answer["results"][str(p)]["notes"] for p in paths]
    ref = np.asarray(found[0]["pitch_class_seconds"])
    print("| piano phrase through | basic-pitch notes | key | pitch-class profile vs input |")
    print("|---|---|---|---|")
    for (name, _), notes in zip(outputs, found):
        prof = np.asarray(notes["pitch_class_seconds"])
        r = float(np.corrcoef(prof, ref)[0, 1]) if prof.std() > 0 else float("nan")
        print(f"| {name} | {notes['count']} | {notes['key']} | {r:.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("checkpoints", nargs="*")
    p.add_argument("--out", default="docs/eval/pitch_roundtrip.png")
    p.add_argument("--judges", action="store_true", help="also score the piano phrase with basic-pitch")
    p.add_argument("--phase-lock", action="store_true", help="decode the codecs phase-locked")
    args = p.parse_args()
    torch.set_num_threads(1)
    from lab.training.autoencoder import load_autoencoder
    from lab.training.stft_codec_train import load_codec

    ae, _ = load_autoencoder(Path("resources/models/longplay-mini"))
    rows: list[tuple[str, Callable[[torch.Tensor], torch.Tensor] | None]] = [
        ("input", None),
        ("longplay-mini autoencoder (shipped)", lambda x: ae.decode(ae.encode(x, sample=False)[0])),
    ]
    for ck in args.checkpoints:
        codec = load_codec(Path(ck))
        if args.phase_lock:
            codec.config = dataclasses.replace(codec.config, phase_lock=True)
        step = torch.load(ck, map_location="cpu", weights_only=False)["step"]
        rows.append((f"STFT codec {Path(ck).parent.name} step {step}", lambda x, c=codec: c.decode(c.encode(x))))
    inputs = [("sine sweep 55-1,760 Hz", sweep()), ("GM piano phrase (C major)", piano_phrase())]

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 2.6 * len(rows)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), len(inputs), squeeze=False)
    phrase_outputs = []
    for col, (title, audio) in enumerate(inputs):
        for row, (name, roundtrip) in enumerate(rows):
            if roundtrip is None:
                out = audio
            else:
                with torch.no_grad():
                    out = roundtrip(torch.from_numpy(audio)[None])[0].numpy()
            if col == 1:
                phrase_outputs.append((name, out))
            ax = axes[row][col]
            ax.imshow(mel_db(out), origin="lower", aspect="auto", vmin=-80, vmax=20, cmap="magma")
            ax.set_title(f"{title}: {name}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")
    if args.judges:
        judge_phrase(phrase_outputs)


if __name__ == "__main__":
    main()
