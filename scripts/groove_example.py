"""The README's worked beatbox example (issue 20): one held-out take, restyled three ways.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/groove_example.py --out docs/eval

Writes the restylings' WAVs to `--wavs` and `beatbox_example.png` (the take and each output's waveform, the take's onsets as lines and
each output's detected onsets as ticks) and `beatbox_example.json` (F1, tempo, what was heard).
The take is `beatbox_set.make_set()[TAKE]`, never trained on; the prompts name no BPM.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import engine  # noqa: E402
from lab.evaluation import beatbox_set, music  # noqa: E402
from lab.evaluation.groove_eval import score_take  # noqa: E402

TAKE = 13  # 120.3 BPM, swung, en-gb-scotland
PROMPTS = ("808 drums", "acoustic jazz kit", "techno drums")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/eval")
    ap.add_argument("--take", type=int, default=TAKE)
    ap.add_argument("--wavs", default="outputs/groove_example", help="where the take's restylings are written")
    args = ap.parse_args()
    out = Path(args.out)
    model = engine.load_model("longplay-mini")
    gen = engine.Generator(model)
    sr = model.config.sample_rate
    take = beatbox_set.make_set(sample_rate=sr)[args.take]
    src = engine.write_audio_atomic(Path(tempfile.mkdtemp()) / f"{take.name}.wav", take.clip.audio, sr, "pcm16")
    panels = [(f"the take: {take.name} ({take.voice}, pitch {take.pitch})", take.clip.audio, None)]
    report: dict[str, object] = {"take": take.name, "bpm": take.clip.bpm, "swing": take.swing, "outputs": []}
    for prompt in PROMPTS:
        [res] = gen.render(engine.RenderRequest(prompt, seconds=take.clip.seconds, seed=1, init_audio=str(src)))
        scores = score_take(take.clip, res.audio, sr)
        wav = Path(args.wavs) / f"beatbox_example_{prompt.replace(' ', '_')}.wav"
        engine.write_audio_atomic(wav, res.audio, sr, "pcm16")  # to listen to; kept out of docs/ (1.7 MB each)
        label = f"{prompt!r}: onset F1 {scores['f1']:.2f}, {scores['bpm_out']:.1f} BPM"
        panels.append((label, res.audio, music.detect_onsets(res.audio, sr)))
        report["outputs"].append({"prompt": prompt, **scores, "source_tempo": res.recipe.get("source_tempo")})  # type: ignore[union-attr]
    draw(panels, take.clip.onsets, sr, out / "beatbox_example.png")
    (out / "beatbox_example.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


def draw(panels: list[tuple[str, np.ndarray, np.ndarray | None]], onsets: np.ndarray, sr: int, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 1.6 * len(panels)), dpi=100)
    FigureCanvasAgg(fig)
    show = 4.0  # seconds drawn: enough to see the hits
    for i, (label, audio, detected) in enumerate(panels):
        ax = fig.add_subplot(len(panels), 1, i + 1)
        y = audio.mean(axis=0)[: int(show * sr)]
        t = np.arange(len(y)) / sr
        ax.plot(t, y / max(float(np.abs(y).max()), 1e-9), lw=0.4, color="#333")
        for o in onsets[onsets < show]:
            ax.axvline(o, color="#d62728", lw=0.8, alpha=0.6)
        if detected is not None:
            d = detected[detected < show]
            ax.plot(d, np.full(len(d), 1.05), "v", color="#1f77b4", ms=4)
        ax.set_xlim(0, show)
        ax.set_ylim(-1.1, 1.2)
        ax.set_yticks([])
        ax.set_title(label, fontsize=9, loc="left")
        if i < len(panels) - 1:
            ax.set_xticklabels([])
    ax.set_xlabel("time (s); red lines: the take's onsets; blue ticks: onsets detected in the output (librosa)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), format="png")


if __name__ == "__main__":
    main()
