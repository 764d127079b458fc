"""The eval's judges section: published estimators (`judges.py`) on what the eval rendered.

* tempo: madmom on every render asked for a BPM (prompt adherence's held-out BPMs and sweep, and
  this section's key prompts) against the asked BPM; the same on held-out mixes is its ceiling;
* key: this section renders prompts naming a key (genre i, BPM, KEY_SWEEP[i]); madmom's CNN and
  basic-pitch's notes (Krumhansl–Kessler on the duration-weighted pitch-class histogram) name a
  key each, counted right / relative / same scale against the asked one; held-out mixes likewise;
* notes: basic-pitch's note count per 10 s, renders vs held-out mixes;
* tones: the tone-fidelity probe's sines through the autoencoder (rewritten here: the probe
  keeps no audio): PESTO's f0 and basic-pitch's note of the input and the output;
* Fréchet distance of musicnn embeddings (MSD model, penultimate layer, one per 3 s): renders vs
  held-out mixes, beside the held-out mixes split in two halves;
* beatbox: madmom's onsets of the held-out beatbox set's outputs (when that set ran) against the
  takes' known onsets, mir_eval F1 at +-50 ms, beside the takes themselves.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio_io import conform, load_audio, write_audio_atomic
from engine.errors import EngineError

from . import judges, metrics, music
from .held_out import mean_of
from .judges import JudgesUnavailable, frechet_distance, key_agreement, run_judges, tempo_row, tempo_summary

# Keys named in the corpus's spelling (lab/data/theory.py), modes as well as major and minor.
KEY_SWEEP = ("C major", "A minor", "G dorian", "Eb major", "E minor", "F mixolydian", "D major", "F# minor")
CORPUS_SECONDS = 30.0  # middle crop of each held-out mix (6 s with --quick)


def judges_section(ctx: Any, report: dict[str, Any]) -> dict[str, Any]:
    """`ctx`: report.py's `_Context` (out, corpus, cfg, rate, model, gen, render, seconds, say)."""
    if judges.find_python() is None:
        return {"skipped": judges.missing_reason()}
    from .adherence import SWEEP_GENRES, TEMPO_SWEEP

    quick, cfg = bool(report.get("quick")), ctx.cfg
    seconds = ctx.seconds(cfg.tempo_seconds)
    renders, work = ctx.out / "renders", ctx.out / "judges"
    work.mkdir(exist_ok=True)
    keyed = []
    for i in range(cfg.tempo_prompts):
        bpm, key = TEMPO_SWEEP[(5 * i) % len(TEMPO_SWEEP)], KEY_SWEEP[i % len(KEY_SWEEP)]
        prompt = f"{SWEEP_GENRES[i % len(SWEEP_GENRES)]}, {bpm} BPM, in {key}"
        ctx.render(prompt, seconds, cfg.seed + 500 + i, f"key_{i:02d}")
        keyed.append({"file": str(renders / f"key_{i:02d}.wav"), "prompt": prompt, "key": key, "bpm": float(bpm)})
    timed = [dict(r) for r in keyed]
    adherence = report.get("prompt_adherence", {})
    for group, prefix in (("tempo", "tempo"), ("tempo_sweep", "sweep")):
        for i, row in enumerate(adherence.get(group, {}).get("items", [])):
            bpm, path = _bpm(row.get("prompt", "")), renders / f"{prefix}_{i:02d}.wav"
            if bpm and path.is_file():
                timed.append({"file": str(path), "prompt": row["prompt"], "bpm": bpm})
    corpus = _corpus_crops(ctx, work / "corpus", 2 if quick else 12, 6.0 if quick else CORPUS_SECONDS)
    tones = _tones(ctx, work / "tones")
    beatbox = _beatbox_takes(ctx, report)

    music_judges = ("tempo", "key", "notes", "embedding")
    jobs: list[tuple[str, tuple[str, ...]]] = [(r["file"], ("tempo", "notes", "embedding")) for r in timed]
    jobs += [(r["file"], ("key",)) for r in keyed] + [(r["file"], music_judges) for r in corpus]
    jobs += [(t[side], ("f0", "notes")) for t in tones for side in ("input", "output")]
    if isinstance(beatbox, dict):
        jobs += [(p, ("onsets",)) for take in beatbox["takes"] for p in (take["input"], take["output"])]
    ctx.say(f"  judges: {len(jobs)} files")
    try:
        answer = run_judges(jobs)
    except JudgesUnavailable as err:
        return {"skipped": str(err)}
    res = answer["results"]
    return {
        "versions": answer["versions"],
        "unavailable": answer["unavailable"],
        "errors": _errors(res),
        "tempo": _tempo(res, timed, corpus),
        "key": {**_keys(res, keyed, corpus), "in_scale": _in_scale(keyed, corpus)},
        "notes": _notes(res, timed, corpus),
        "tones": _tone_rows(res, tones),
        "frechet": _frechet(res, timed, corpus),
        "beatbox": _beatbox(res, beatbox) if isinstance(beatbox, dict) else {"skipped": beatbox},
    }


# ---------------------------------------------------------------------------------- inputs
def _bpm(prompt: str) -> float | None:
    m = re.search(r"(\d+(?:\.\d+)?)\s*BPM", prompt)
    return float(m.group(1)) if m else None


def _corpus_crops(ctx: Any, folder: Path, n: int, seconds: float) -> list[dict[str, Any]]:
    """Middle crops of held-out mixes as WAVs, with their BPM and key."""
    from ..training.data import read_index

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for it in [it for it in read_index(ctx.corpus, "test") if it.kind == "mix"][:n]:
        audio, sr = load_audio(it.path)
        audio = conform(audio, sr, ctx.rate, audio.shape[0])
        clip = metrics.middle_crop(audio, min(audio.shape[-1], int(seconds * ctx.rate)))
        path = write_audio_atomic(folder / f"{it.id}.wav", clip, ctx.rate, "pcm16")
        rows.append({"file": str(path), "id": it.id, "bpm": it.metadata.get("bpm"), "key": it.metadata.get("key")})
    return rows


def _tones(ctx: Any, folder: Path) -> list[dict[str, Any]]:
    """The tone-fidelity sines (`metrics.between_harmonic_tones`, 4 s, amplitude 0.25) and their
    trip through the autoencoder, as WAVs."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    pre, rate = ctx.model.pretransform, ctx.rate
    n = int(4.0 * rate) // pre.downsampling_ratio * pre.downsampling_ratio
    t = np.arange(n) / rate
    rows = []
    for f in metrics.between_harmonic_tones(rate, pre.downsampling_ratio):
        x = np.repeat((0.25 * np.sin(2 * np.pi * f * t)).astype(np.float32)[None], pre.io_channels, axis=0)
        with torch.inference_mode():
            y = pre.decode(pre.encode(torch.from_numpy(x)[None].to(ctx.gen.device), sample=False))
        y = y[0, :, :n].float().cpu().numpy()  # [C, N]
        rows.append(
            {
                "hz": round(f, 1),
                "input": str(write_audio_atomic(folder / f"tone_{f:.0f}hz.wav", x, rate, "pcm16")),
                "output": str(write_audio_atomic(folder / f"tone_{f:.0f}hz_out.wav", y, rate, "pcm16")),
            }
        )
    return rows


def _beatbox_takes(ctx: Any, report: dict[str, Any]) -> dict[str, Any] | str:
    """The held-out beatbox set's takes (rebuilt: same seed, same takes) and outputs on disk, or
    why there are none."""
    held = report.get("audio_to_audio", {}).get("held_out")
    if not held:
        return "the eval ran no held-out beatbox set"
    from . import beatbox_set

    folder = ctx.out / "renders" / "beatbox_set"
    try:
        clips = beatbox_set.make_set(
            held["takes"], seconds=held["seconds"], sample_rate=ctx.rate, channels=ctx.model.config.audio_channels
        )
    except EngineError as err:
        return f"its takes could not be rebuilt: {err}"
    takes = [
        {"input": str(folder / f"{c.name}.wav"), "output": str(folder / f"{c.name}_out.wav"), "onsets": c.clip.onsets}
        for c in clips
        if (folder / f"{c.name}_out.wav").is_file()
    ]
    return {"takes": takes} if takes else "no beatbox outputs on disk"


# ---------------------------------------------------------------------------------- scores
def _get(res: dict[str, Any], path: str, judge: str) -> dict[str, Any] | None:
    found = res.get(path, {}).get(judge)
    return found if isinstance(found, dict) and "error" not in found else None


def _errors(res: dict[str, Any]) -> list[str]:
    return [f"{Path(p).name} {j}: {r['error']}" for p, row in res.items() for j, r in row.items() if "error" in r]


def _tempo(res: dict[str, Any], timed: list[dict[str, Any]], corpus: list[dict[str, Any]]) -> dict[str, Any]:
    def rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for r in items:
            got = _get(res, r["file"], "tempo")
            if r.get("bpm") and got is not None:
                out.append({"file": Path(r["file"]).name, **tempo_row(float(r["bpm"]), got["bpm"])})
        return out

    return {"renders": tempo_summary(rows(timed)), "held_out": tempo_summary(rows(corpus))}


def _keys(res: dict[str, Any], keyed: list[dict[str, Any]], corpus: list[dict[str, Any]]) -> dict[str, Any]:
    def rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for r in items:
            row: dict[str, Any] = {"file": Path(r["file"]).name, "asked": r.get("key")}
            for name, judge in (("madmom", "key"), ("basic_pitch", "notes")):
                got = _get(res, r["file"], judge)
                if got is not None and r.get("key"):
                    row[name] = {"key": got["key"], "agreement": key_agreement(r["key"], got["key"])}
            out.append(row)
        return out

    renders, held = rows(keyed), rows(corpus)
    return {
        "renders": {"items": renders, **{j: judges.key_summary(renders, j) for j in ("madmom", "basic_pitch")}},
        "held_out": {"items": held, **{j: judges.key_summary(held, j) for j in ("madmom", "basic_pitch")}},
    }


def _in_scale(keyed: list[dict[str, Any]], corpus: list[dict[str, Any]]) -> dict[str, Any]:
    """Ours beside the judges: the share of tonal peaks' energy in the asked (or the mix's own)
    key's scale (`music.tonal_in_scale_share`; chance 0.58, issue 19's goal a median of 0.80)."""

    def shares(items: list[dict[str, Any]]) -> list[float]:
        out = []
        for r in items:
            scale = judges.scale_pitch_classes(str(r.get("key") or ""))
            if scale is None or not Path(r["file"]).is_file():
                continue
            audio, sr = load_audio(r["file"])
            share = music.tonal_in_scale_share(audio, sr, scale)
            if share is not None:
                out.append(round(share, 3))
        return out

    r, h = shares(keyed), shares(corpus)
    return {
        "renders": r,
        "held_out": h,
        "renders_median": float(np.median(r)) if r else None,
        "held_out_median": float(np.median(h)) if h else None,
    }


def _notes(res: dict[str, Any], timed: list[dict[str, Any]], corpus: list[dict[str, Any]]) -> dict[str, Any]:
    def per_10s(items: list[dict[str, Any]]) -> list[float]:
        got = [_get(res, r["file"], "notes") for r in items]
        return [10.0 * g["count"] / g["seconds"] for g in got if g is not None and g["seconds"] > 0]

    r, c = per_10s(timed), per_10s(corpus)
    return {
        "renders_per_10s": [round(v, 1) for v in r],
        "held_out_per_10s": [round(v, 1) for v in c],
        "renders_mean_per_10s": float(np.mean(r)) if r else None,
        "held_out_mean_per_10s": float(np.mean(c)) if c else None,
    }


def _tone_rows(res: dict[str, Any], tones: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for t in tones:
        row: dict[str, Any] = {"hz": t["hz"], "midi": round(69 + 12 * math.log2(t["hz"] / 440.0))}
        for side in ("input", "output"):
            f0, notes = _get(res, t[side], "f0"), _get(res, t[side], "notes")
            hz = f0["f0_hz"] if f0 else None
            row[side] = {
                "f0_hz": None if hz is None else round(hz, 2),
                "cents": None if hz is None else round(1200 * math.log2(hz / t["hz"]), 1),
                "voiced_share": f0["voiced_share"] if f0 else None,
                "note": notes["longest_pitch"] if notes else None,
                "notes": notes["count"] if notes else None,
            }
        rows.append(row)
    return rows


def _frechet(res: dict[str, Any], timed: list[dict[str, Any]], corpus: list[dict[str, Any]]) -> dict[str, Any]:
    def frames(items: list[dict[str, Any]]) -> list[np.ndarray]:
        got = [_get(res, r["file"], "embedding") for r in items]
        return [np.asarray(g["frames"], np.float64).reshape(-1, 200) for g in got if g is not None]

    renders, held = frames(timed), frames(corpus)
    r = np.concatenate(renders) if renders else np.zeros((0, 200))
    c = np.concatenate(held) if held else np.zeros((0, 200))
    # Split-half: alternate mixes, or the one mix's first and second half of patches.
    if len(held) >= 2:
        a, b = np.concatenate(held[0::2]), np.concatenate(held[1::2])
    else:
        a, b = c[: len(c) // 2], c[len(c) // 2 :]
    return {
        "renders_vs_held_out": frechet_distance(r, c),
        "held_out_split_half": frechet_distance(a, b),
        "render_frames": len(r),
        "held_out_frames": len(c),
    }


def _beatbox(res: dict[str, Any], beatbox: dict[str, Any]) -> dict[str, Any]:
    def f1(path: str, onsets: np.ndarray) -> float | None:
        got = _get(res, path, "onsets")
        return None if got is None else music.onset_f_measure(onsets, np.asarray(got["onsets"])).f_measure

    rows = [
        {
            "take": Path(t["input"]).stem,
            "f1_output": f1(t["output"], t["onsets"]),
            "f1_take": f1(t["input"], t["onsets"]),
        }
        for t in beatbox["takes"]
    ]
    return {
        "items": rows,
        "mean_f1_output": mean_of([r["f1_output"] for r in rows]),
        "mean_f1_take": mean_of([r["f1_take"] for r in rows]),
    }


# ---------------------------------------------------------------------------------- eval.md
def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def _n(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def judges_markdown(s: dict[str, Any]) -> list[str]:
    """The judges section of eval.md (a skipped section is said by markdown.py)."""
    versions = ", ".join(f"{k} {v}" for k, v in s["versions"].items())
    lines = [f"Published estimators, run in `.venv-judges` ({versions}); docs/evaluation.md says what each is.", ""]
    lines += [f"- not run: **{j}**: {reason}" for j, reason in s["unavailable"].items()]
    if s["errors"]:
        lines.append(f"- {len(s['errors'])} file(s) failed, e.g. {s['errors'][0]}")
    t, k, notes, fd = s["tempo"], s["key"], s["notes"], s["frechet"]

    def tempo(x: dict[str, Any]) -> tuple[str, str]:
        n = x["n"]
        within = "—" if not n else f"{round(x['share_within'] * n)} / {n} ({round(x['share_octave_within'] * n)})"
        return f"{_pct(x['median_relative_error'])} ({n})", within

    def keys(x: dict[str, Any]) -> str:
        return f"{x['right']} / {x['relative']} / {x['same_scale']} / {x['other']}" if x["n"] else "—"

    (rt, rw), (ht, hw) = tempo(t["renders"]), tempo(t["held_out"])
    lines += [
        "",
        "| judge: measure | renders | held-out mixes |",
        "|---|---|---|",
        f"| madmom tempo: median error vs the asked BPM (n) | {rt} | {ht} |",
        f"| madmom tempo: within 4 % of it (or of half / double it) | {rw} | {hw} |",
        f"| madmom key vs the asked key: right / relative / same scale / other | "
        f"{keys(k['renders']['madmom'])} | {keys(k['held_out']['madmom'])} |",
        f"| basic-pitch key (Krumhansl–Kessler on its notes), same counts | "
        f"{keys(k['renders']['basic_pitch'])} | {keys(k['held_out']['basic_pitch'])} |",
        f"| ours: tonal peaks' energy in the asked key's scale, median (chance 0.58) | "
        f"{_n(k.get('in_scale', {}).get('renders_median'), 3)} | {_n(k.get('in_scale', {}).get('held_out_median'), 3)} |",
        f"| basic-pitch notes per 10 s, mean | {_n(notes['renders_mean_per_10s'])} | "
        f"{_n(notes['held_out_mean_per_10s'])} |",
        f"| musicnn Fréchet distance ↓: renders vs held-out ({fd['render_frames']} / {fd['held_out_frames']} "
        f"patches of 3 s); held-out split in halves | {_n(fd['renders_vs_held_out'], 2)} | "
        f"{_n(fd['held_out_split_half'], 2)} |",
        "",
    ]
    if s["tones"]:
        lines += [
            "The tone-fidelity sines through the autoencoder: PESTO's f0 (cents from the tone; share of "
            "frames voiced) and basic-pitch's longest note (MIDI) of the input and the output.",
            "",
            "| tone (Hz) | PESTO in | PESTO out | voiced out | basic-pitch in → out (expected) |",
            "|---|---|---|---|---|",
        ]
        for r in s["tones"]:
            i, o = r["input"], r["output"]
            lines.append(
                f"| {r['hz']:g} | {_n(i['f0_hz'])} Hz ({_n(i['cents'])} ¢) | {_n(o['f0_hz'])} Hz ({_n(o['cents'])} ¢) "
                f"| {_pct(o['voiced_share'])} | {i['note'] or '—'} → {o['note'] or '—'} ({r['midi']}) |"
            )
        lines.append("")
    b = s["beatbox"]
    if "skipped" in b:
        lines += [f"Held-out beatbox set, madmom onsets: not scored ({b['skipped']}).", ""]
    else:
        lines += [
            f"Held-out beatbox set, madmom onsets (RNN, OnsetDetector's peak picking) vs the takes' known "
            f"onsets, F1 at ±50 ms over {len(b['items'])} takes: outputs {_n(b['mean_f1_output'], 3)}, "
            f"the takes themselves {_n(b['mean_f1_take'], 3)}.",
            "",
        ]
    return lines
