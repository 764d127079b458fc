"""`run_eval`: the whole evaluation of one model on one corpus -> eval.json, eval.md, SSM PNGs.

Sections (each one's numbers, or the reason it was skipped, land in eval.json):

* autoencoder: Table-5 metrics on middle crops of held-out (`test` split) mixes;
* prompt_adherence: tempo of renders asked for held-out BPMs, and the percussive ratio of
  renders asked for drums vs "ambient, no drums";
* structure: SSM + repetition score of one long render against held-out songs of that length;
* audio_to_audio: an espeak-ng beatbox clip restyled with a drum prompt at the default strength, and the
  held-out beatbox set (`beatbox_set.py`: 24 takes, 70-160 BPM, straight and swung, in a room)
  restyled with "drums" (no BPM): onset F1, tempo, distance from the input, kit distances;
* speed: wall time to render 30 s and 285 s (clamped to the model's window) on this machine;
* judges: published estimators (madmom, basic-pitch, PESTO, musicnn) on those renders (`judges_eval.py`).

A folder holding only an autoencoder (`"model_type": "autoencoder"`) gets the first section.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.audio_io import load_audio, write_audio_atomic, write_json_atomic
from engine.checkpoint import load_model, resolve_model
from engine.errors import EngineError, ModelLoadError
from engine.limits import DEFAULT_STRENGTH
from engine.model import ConditionedDiffusionModel
from engine.pipeline import Generator, RenderRequest, model_defaults
from engine.stft_codec import STFTCodec

from . import beatbox, metrics, music
from .adherence import prompt_adherence
from .held_out import held_out_mixes, mean_of, middle_crops
from .judges_eval import judges_section
from .markdown import render_markdown
from .plots import save_ssm_png

PAPER_SPEED = {"285": 13.0, "190": 8.0}  # seconds per render, Tables 2-3 (fully / pre-trained), on a GPU
Log = Callable[[str], None]


@dataclass(frozen=True)
class EvalConfig:
    """Sizes of every section; `EvalConfig.quick()` is the CI version. Seconds are clamped to the window."""

    ae_items: int = 16
    ae_crop_seconds: float = 10.0
    notes: bool = True  # GM notes through the autoencoder (`notes.note_fidelity`; needs FluidSynth)
    tempo_prompts: int = 8
    tempo_seconds: float = 20.0
    # A sweep beside the held-out BPMs (few, and clustered): genre i % 8 at BPM TEMPO_SWEEP[3i % 8].
    tempo_sweep: int = 16
    drum_prompts: int = 4  # per group (drums asked / no drums asked)
    structure_seconds: float = 180.0
    corpus_songs: int = 4
    beatbox_bpm: float = 100.0
    beatbox_seconds: float = 10.0
    init_strength: float = DEFAULT_STRENGTH  # audio-to-audio's default at every door
    beatbox_takes: int = 24  # the held-out set (`groove_eval.held_out_set`); 0 skips it
    beatbox_take_seconds: float = 10.0
    beatbox_kits: int = 3  # takes also restyled with each kit prompt
    speed_seconds: tuple[float, ...] = (30.0, 285.0)
    steps: int | None = None  # None: the model's default
    seed: int = 0

    @classmethod
    def quick(cls) -> EvalConfig:
        return cls(
            ae_items=2,
            ae_crop_seconds=1.0,
            notes=False,
            tempo_prompts=1,
            tempo_seconds=1.0,
            tempo_sweep=1,
            drum_prompts=1,
            structure_seconds=2.0,
            corpus_songs=1,
            beatbox_seconds=1.5,
            beatbox_takes=1,
            beatbox_take_seconds=2.5,
            beatbox_kits=0,
            speed_seconds=(1.0,),
            steps=2,
        )


def run_eval(
    model_dir: str | os.PathLike[str],
    corpus_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    quick: bool = False,
    *,
    config: EvalConfig | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Evaluate `model_dir` (folder or model name) on `corpus_dir`; write eval.json/eval.md to `out_dir`."""
    cfg = config or (EvalConfig.quick() if quick else EvalConfig())
    say = log or (lambda msg: None)
    folder = resolve_model(model_dir)
    kind = _model_type(folder)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        # As asked (a name like "longplay-mini" stays a name), and the folder it resolved to.
        "model": str(model_dir),
        "model_folder": str(folder),
        "corpus": str(corpus_dir),
        "quick": quick,
        "config": asdict(cfg),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "paper": {"table5": metrics.PAPER_TABLE5, "render_seconds_gpu": PAPER_SPEED},
    }
    if kind == "autoencoder":
        report["autoencoder"] = _section(say, "autoencoder", lambda: _autoencoder_only(folder, corpus_dir, cfg))
        for name in ("prompt_adherence", "structure", "audio_to_audio", "speed", "judges"):
            report[name] = {"skipped": "the folder holds an autoencoder only"}
    else:
        model = load_model(folder)
        ctx = _Context(model, Generator(model), Path(corpus_dir), out, cfg, say)
        report["machine"]["device"] = str(ctx.gen.device)
        report["model_info"] = {
            "sample_rate": model.config.sample_rate,
            "window_seconds": model.config.window_seconds,
            "latent_rate_hz": model.config.latent_rate,
            "defaults": model_defaults(model),
        }
        report["autoencoder"] = _section(say, "autoencoder", ctx.autoencoder)
        report["prompt_adherence"] = _section(say, "prompt adherence", lambda: prompt_adherence(ctx))
        report["structure"] = _section(say, "structure", ctx.structure)
        report["audio_to_audio"] = _section(say, "audio-to-audio", ctx.audio_to_audio)
        report["speed"] = _section(say, "speed", ctx.speed)
        report["judges"] = _section(say, "judges", lambda: judges_section(ctx, report))
    write_json_atomic(out / "eval.json", report)
    tmp = out / ".eval.md.part"
    tmp.write_text(render_markdown(report), encoding="utf-8")
    os.replace(tmp, out / "eval.md")  # never a half-written table
    say(f"wrote {out / 'eval.json'} and {out / 'eval.md'}")
    return report


def _model_type(folder: Path) -> str | None:
    path = folder / "model_config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{folder} is not a readable model folder ({exc})") from exc
    return raw.get("model_type") if isinstance(raw, dict) else None


def _section(say: Log, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one section; an engine error (missing corpus split, missing espeak-ng...) becomes its reason."""
    say(f"{name}...")
    t0 = time.perf_counter()
    try:
        result = fn()
    except EngineError as err:
        say(f"{name}: skipped ({err})")
        return {"skipped": str(err)}
    result["wall_seconds"] = round(time.perf_counter() - t0, 2)
    return result


def _autoencoder_section(
    roundtrip: metrics.Roundtrip, corpus: Path, cfg: EvalConfig, rate: int, hop: int, channels: int
) -> dict[str, Any]:
    """The autoencoder section, for a whole model's pretransform or an autoencoder folder alike:
    Table-5 metrics and hop periodicity on held-out crops, tone and note fidelity (the issue's
    probes and wider ones), the paper's numbers."""
    clips = middle_crops(held_out_mixes(corpus), cfg.ae_items, cfg.ae_crop_seconds, rate, channels, hop)
    result = metrics.evaluate_reconstruction(roundtrip, clips, rate, hop)
    result["tones"] = metrics.tone_fidelity(roundtrip, rate, hop, channels)
    result["tone_sweep"] = metrics.tone_sweep(roundtrip, rate, hop, channels)
    if cfg.notes:
        from .notes import WIDE_NOTE_PROBES, note_fidelity

        try:
            result["notes"] = note_fidelity(roundtrip, rate, hop)
            result["notes_wide"] = note_fidelity(roundtrip, rate, hop, probes=WIDE_NOTE_PROBES)
        except EngineError as err:  # no FluidSynth / soundfont here: said, not hidden
            result["notes"] = {"skipped": str(err)}
    return {
        **result,
        "crop_seconds": cfg.ae_crop_seconds,
        "latent_rate_hz": round(rate / hop, 3),
        "paper": metrics.PAPER_TABLE5,
    }


def _autoencoder_only(folder: Path, corpus: str | os.PathLike[str], cfg: EvalConfig) -> dict[str, Any]:
    from ..training.autoencoder import load_autoencoder

    ae, raw = load_autoencoder(folder)
    codec = isinstance(ae, STFTCodec)
    return _autoencoder_section(
        lambda x: ae.decode(ae.encode(x)) if codec else ae.decode(ae.encode(x, sample=False)[0]),
        Path(corpus),
        cfg,
        int(raw.get("sample_rate", 44100)),
        ae.cfg.downsampling_ratio,
        ae.cfg.io_channels,
    )


class _Context:
    """One model, its generator and the run's settings; each public method is one section (prompt
    adherence is `adherence.prompt_adherence(ctx)`, the judges `judges_eval.judges_section(ctx, ...)`)."""

    def __init__(
        self, model: ConditionedDiffusionModel, gen: Generator, corpus: Path, out: Path, cfg: EvalConfig, say: Log
    ):
        self.model, self.gen, self.corpus, self.out, self.cfg, self.say = model, gen, corpus, out, cfg, say
        self.rate = model.config.sample_rate
        self.window = model.config.window_seconds
        (out / "renders").mkdir(exist_ok=True)

    def seconds(self, wanted: float) -> float:
        return float(min(wanted, self.window))

    def render(self, prompt: str, seconds: float, seed: int, name: str, **extra: Any) -> tuple[np.ndarray, float]:
        """One render -> (audio `[C, N]`, wall seconds); also written to renders/`name`.wav."""
        req = RenderRequest(prompt=prompt, seconds=seconds, seed=seed, steps=self.cfg.steps, **extra)
        t0 = time.perf_counter()
        result = self.gen.render(req)[0]
        wall = time.perf_counter() - t0
        write_audio_atomic(self.out / "renders" / f"{name}.wav", result.audio, result.sample_rate, "pcm16")
        self.say(f"  rendered {name} ({seconds:.1f} s, {wall:.1f} s wall): {prompt!r}")
        return result.audio, wall

    # ------------------------------------------------------------------ sections
    def autoencoder(self) -> dict[str, Any]:
        pre, device = self.model.pretransform, self.gen.device
        return _autoencoder_section(
            lambda x: pre.decode(pre.encode(x.to(device), sample=False)),
            self.corpus,
            self.cfg,
            self.rate,
            pre.downsampling_ratio,
            pre.io_channels,
        )

    def structure(self) -> dict[str, Any]:
        songs = held_out_mixes(self.corpus)
        seconds = self.seconds(self.cfg.structure_seconds)
        meta = songs[0].metadata if songs else {}
        prompt = f"{meta.get('genre', 'pop')}, {float(meta.get('bpm', 120)):g} BPM"
        audio, _ = self.render(prompt, seconds, self.cfg.seed + 200, "structure")
        ssm = music.self_similarity(audio, self.rate)
        panels = [(f"render ({seconds:.0f} s)", ssm)]
        corpus_rows = []
        hop = self.model.pretransform.downsampling_ratio
        comb = []  # the buzz measure on the same songs, for the render's to be read against
        for it in songs[: self.cfg.corpus_songs]:
            song, sr = load_audio(it.path)
            song = song[:, : int(seconds * sr)]  # from the start: intros are part of the structure
            comb.append(metrics.comb_share(song, self.rate, hop))
            s = music.self_similarity(song, sr)
            corpus_rows.append(
                {
                    "id": it.id,
                    "genre": it.metadata.get("genre"),
                    **asdict(music.repetition_score(s)),
                    **_levels(song, sr),
                }
            )
            panels.append((f"{it.metadata.get('genre', 'corpus')}: {it.id}", s))
        binary = save_ssm_png(panels, self.out / "ssm_binary.png", binary=True, title="Self-similarity (mutual k-NN)")
        cosine = save_ssm_png(panels, self.out / "ssm_cosine.png", binary=False, title="Self-similarity (cosine)")
        rep = music.repetition_score(ssm)
        return {
            "prompt": prompt,
            "render_seconds": seconds,
            "frame_seconds": ssm.frame_seconds,
            "render": {
                **asdict(rep),
                **_levels(audio, self.rate),
                "comb_share": metrics.comb_share(audio, self.rate, hop),
            },
            "corpus_comb_share": mean_of(comb),
            "corpus": {
                "items": corpus_rows,
                "median_level_db": mean_of([r["median_level_db"] for r in corpus_rows]),
                "min_level_db": mean_of([r["min_level_db"] for r in corpus_rows]),
                "mean_fraction": mean_of([r["fraction"] for r in corpus_rows]),
                "mean_stripe": mean_of([r["stripe"] for r in corpus_rows]),
            },
            "pngs": [binary.name, cosine.name],
        }

    def audio_to_audio(self) -> dict[str, Any]:
        cfg = self.cfg
        seconds = self.seconds(cfg.beatbox_seconds)
        clip = beatbox.make_beatbox(
            cfg.beatbox_bpm, seconds, sample_rate=self.rate, channels=self.model.config.audio_channels
        )
        source = write_audio_atomic(self.out / "renders" / "beatbox.wav", clip.audio, clip.sample_rate, "pcm16")
        prompt = f"drums only, {cfg.beatbox_bpm:g} BPM"
        audio, _ = self.render(
            prompt, seconds, cfg.seed + 300, "beatbox_to_drums", init_audio=str(source), init_strength=cfg.init_strength
        )
        before = music.onset_f_measure(clip.onsets, music.detect_onsets(clip.audio, self.rate))
        after = music.onset_f_measure(clip.onsets, music.detect_onsets(audio, self.rate))
        return {
            "prompt": prompt,
            "bpm": cfg.beatbox_bpm,
            "seconds": seconds,
            "init_strength": cfg.init_strength,
            "onsets": len(clip.onsets),
            "onset_window_seconds": music.ONSET_WINDOW,
            "onset_f_render": asdict(after),
            "onset_f_clip": asdict(before),
            "percussive_before": music.percussive_ratio(clip.audio, self.rate),
            "percussive_after": music.percussive_ratio(audio, self.rate),
            "tempo_after": asdict(music.tempo_error(music.estimate_tempo(audio, self.rate), cfg.beatbox_bpm)),
            **self._held_out_beatbox(),
        }

    def _held_out_beatbox(self) -> dict[str, Any]:
        cfg = self.cfg
        if not cfg.beatbox_takes:
            return {}
        from .groove_eval import held_out_set

        seconds = self.seconds(cfg.beatbox_take_seconds)
        self.say(f"  held-out beatbox set: {cfg.beatbox_takes} takes of {seconds:.1f} s")
        found = held_out_set(
            self.gen,
            self.out / "renders" / "beatbox_set",
            cfg.beatbox_takes,
            seconds,
            cfg.init_strength,
            cfg.beatbox_kits,
            steps=cfg.steps,
        )
        return {"held_out": found}

    def speed(self) -> dict[str, Any]:
        defaults = model_defaults(self.model)
        steps = self.cfg.steps if self.cfg.steps is not None else int(defaults["steps"])
        rows = []
        clamped = {self.seconds(asked): asked for asked in sorted(self.cfg.speed_seconds, reverse=True)}
        for seconds, asked in sorted(clamped.items()):  # 30 s and 285 s on a 3 s model: one render
            _, wall = self.render("house, 124 BPM, warm", seconds, self.cfg.seed + 400, f"speed_{seconds:.0f}s")
            rows.append(
                {
                    "asked_seconds": asked,
                    "seconds": seconds,
                    "wall_seconds": round(wall, 3),
                    "realtime_factor": round(seconds / wall, 3) if wall > 0 else None,
                    "paper_gpu_seconds": PAPER_SPEED.get(str(round(seconds))),
                }
            )
        return {"items": rows, "steps": steps, "sampler": defaults["sampler"], "device": str(self.gen.device)}


def _levels(audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Median and quietest 10 s window level (dBFS), to show a render that falls silent."""
    levels = music.window_levels(audio, sample_rate)
    return {"median_level_db": float(np.median(levels)), "min_level_db": float(levels.min())}
