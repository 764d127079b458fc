"""The ``longplay`` command line: a thin door over the engine's public API.

Arguments are validated here, before the engine (and torch) is imported, so a typo costs
milliseconds and ends with exit code 2 and one line on stderr naming the argument.

Exit codes: 0 done, 1 the engine failed (message on stderr), 2 bad input, 130 interrupted.

``longplay app`` checks its arguments here and then runs ``python -m desktop`` with them, in
place of this process (exec): the arrows point desktop → bridge, so the bridge starts the desktop
app as a program and never imports it. ``longplay-app`` (``desktop.app:main``) is the same app
as its own console script.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from engine import DEFAULT_STRENGTH  # the one table of limits; loads no torch

from .corpus_cli import add_corpus_parser, check_range as _range, run_corpus, validate_corpus
from .edit_cli import add_parsers as add_edit_parsers, edit_values
from .errors import BridgeError, EngineUnavailable, UsageError
from .eval_cli import add_eval_parser, run_eval_command
from .folders import check_writable_folder
from .loudness import DEFAULT_LOUDNESS, parse_loudness
from .naming import AUDIO_SUFFIXES, sidecar_path
from .train_cli import add_train_parser, run_train

PROG = "longplay"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

_DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage, so every bad input is one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number (got {text!r})") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number (got {text!r})")
    return value


def _loudness(text: str) -> float | None:
    """--loudness: LUFS, or off/none for the model's own level (None)."""
    try:
        return parse_loudness(text, "--loudness")
    except UsageError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--loudness ")) from None


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer (got {text!r})") from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Long-form music generation with latent diffusion.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    g = sub.add_parser("generate", help="render audio from a text prompt")
    g.add_argument("prompt", metavar="PROMPT")
    g.add_argument("--seconds", type=_finite, help="length in seconds (default: the model's)")
    g.add_argument("--seed", type=_integer, help="random seed; -1 or omitted picks one")
    g.add_argument("--steps", type=_integer, help="sampler steps, 1-500")
    g.add_argument("--cfg", type=_finite, help="classifier-free guidance scale, 0-25")
    g.add_argument("--negative", metavar="TEXT", help="negative prompt")
    g.add_argument("--init-audio", metavar="FILE", help="audio-to-audio: start from this file")
    g.add_argument("--init-strength", type=_finite, help="0 keeps the init audio, 1 ignores it")
    g.add_argument(
        "--bpm",
        type=_finite,
        help="tempo, 20-300: the beat grid of models that have one (default: a BPM the prompt names); with --bars: bar-exact length",
    )
    g.add_argument("--bars", type=_integer, help="length in bars, 1-512; needs --bpm")
    g.add_argument(
        "--loop",
        action="store_true",
        help="a seamless loop of --bars bars at --bpm (plays end-to-start; WAV loop points)",
    )
    g.add_argument("--variations", type=_integer, default=1, help="how many renders, 1-16, each with its own seed")
    g.add_argument("--model", metavar="DIR|NAME", help="model folder or name (see `longplay models`)")
    g.add_argument("--out", metavar="PATH", help="output .wav/.flac file or folder (default: outputs/)")
    g.add_argument("--sampler", help="sampler name (default: the engine's)")
    g.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    g.add_argument(
        "--loudness",
        type=_loudness,
        default=DEFAULT_LOUDNESS,
        metavar="LUFS|off",
        help=f"integrated loudness of each file, -60 to 0 LUFS, peaks kept under -1 dBFS "
        f"(default {DEFAULT_LOUDNESS:g}); off keeps the model's level",
    )
    g.add_argument("--waveform", action="store_true", help="also write a waveform PNG next to each file")
    g.add_argument(
        "--snap",
        action="store_true",
        help="time-stretch a render heard 0.2-8 %% off its tempo onto the exact grid (needs --bpm or a BPM in the prompt)",
    )
    g.add_argument(
        "--lora",
        action="append",
        metavar="FILE[:SCALE]",
        help="a Stable Audio 3 LoRA (.safetensors, as the release saves them) at SCALE 0-10 (default 1); "
        "repeat for up to 4, applied in order",
    )

    add_edit_parsers(sub, _integer, _finite)
    sub.add_parser("models", help="list the models Longplay can find")

    add_corpus_parser(sub, _integer, _finite)

    s = sub.add_parser("serve", help="run the headless job queue, OSC server and watched folder")
    s.add_argument("--osc-port", type=_integer, default=9030, help="UDP port (default 9030; 0 picks a free one)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument(
        "--allow",
        metavar="HOST",
        nargs="+",
        action="extend",
        default=[],
        help="client hosts (IP, network or name) allowed to send requests; required off loopback",
    )
    s.add_argument("--drop", metavar="DIR", help="watched folder (DIR/inbox in, DIR/outbox out)")
    s.add_argument("--model", metavar="DIR|NAME", help="model folder or name (see `longplay models`)")
    s.add_argument("--out", metavar="DIR", default="outputs", help="folder for OSC renders (default: outputs/)")
    s.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    s.add_argument("--journal", metavar="FILE", help="job journal (default: OUT/.longplay/jobs.sqlite3)")
    s.add_argument("--queue-limit", type=_integer, default=32, help="jobs waiting before requests are refused")
    s.add_argument(
        "--source-root",
        metavar="DIR",
        nargs="+",
        action="extend",
        default=[],
        help="transform sources must lie under these folders",
    )
    s.add_argument("--prompt", default="", help="the drop folder's prompt for dropped audio files")
    s.add_argument(
        "--strength", type=_finite, default=DEFAULT_STRENGTH, help="the drop folder's transform strength, 0-1"
    )
    s.add_argument("--verbose", "-v", action="store_true", help="log every request")
    a = sub.add_parser("app", help="open the desktop app (the queue, OSC server and drop folder run inside it)")
    a.add_argument("--model", metavar="DIR|NAME", help="model folder or name (default: the one used last)")
    a.add_argument("--out", metavar="DIR", help="output folder and its history (default: ~/Music/Longplay)")
    a.add_argument("--osc-port", type=_integer, help="UDP port for DAW requests (default: the saved one, 9030)")
    a.add_argument("--no-osc", action="store_true", help="do not listen for OSC in this run")
    a.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    a.add_argument("--smoke", metavar="PNG", help="wait until the window is idle, save a screenshot, exit")
    add_train_parser(sub)
    add_eval_parser(sub)
    return p


def _limit(flag: str, value: float | None, key: str) -> None:
    """A request option against the one table of limits (`engine.LIMITS`, which loads no torch)."""
    from engine import LIMITS

    if value is not None and not LIMITS[key].contains(value):
        raise UsageError(f"{flag} must be {LIMITS[key].describe()} (got {value:g})")


def validate_generate(args: argparse.Namespace) -> None:
    """Check ``generate`` arguments at the door; raise ``UsageError`` naming the first bad one."""
    if not args.prompt.strip():
        raise UsageError("PROMPT must not be empty")
    if args.seconds is not None and not args.seconds > 0:
        raise UsageError(f"--seconds must be greater than 0 (got {args.seconds:g})")
    if args.seed is not None and args.seed < -1:
        raise UsageError(f"--seed must be >= 0, or -1 for a random seed (got {args.seed})")
    _limit("--steps", args.steps, "steps")
    _limit("--cfg", args.cfg, "cfg")
    _limit("--init-strength", args.init_strength, "strength")
    _limit("--bpm", args.bpm, "bpm")
    _limit("--bars", args.bars, "bars")
    _limit("--variations", args.variations, "variations")
    if args.seed is not None and args.seed != -1:
        _limit("--seed", args.seed, "seed")
    if args.init_strength is not None and args.init_audio is None:
        raise UsageError("--init-strength requires --init-audio")
    if args.init_audio is not None and not Path(args.init_audio).is_file():
        raise UsageError(f"--init-audio: no such file: {args.init_audio}")
    _validate_lora(getattr(args, "lora", None))
    if args.bars is not None and args.bpm is None:
        raise UsageError("--bars requires --bpm")
    if args.bars is not None and args.seconds is not None:
        raise UsageError("--seconds and --bars are mutually exclusive")
    if args.device is not None and not _DEVICE_RE.fullmatch(args.device):
        raise UsageError(f"--device must be auto, cpu, cuda, cuda:N or mps (got {args.device!r})")
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() in AUDIO_SUFFIXES and out.exists():
        raise UsageError(f"--out: {out} already exists (Longplay never overwrites)")


def _validate_lora(entries: list[str] | None) -> None:
    from engine import LIMITS

    from .lora_arg import split_lora

    most = int(LIMITS["loras"].hi)
    if entries and len(entries) > most:
        raise UsageError(f"--lora: at most {most} files (got {len(entries)})")
    for entry in entries or []:
        path, scale = split_lora(entry)
        if scale is None or not LIMITS["lora_scale"].contains(scale):
            raise UsageError(f"--lora scale must be {LIMITS['lora_scale'].describe()} (got {entry!r})")
        if not Path(path).is_file():
            raise UsageError(f"--lora: no such file: {path}")


def validate_serve(args: argparse.Namespace) -> None:
    """Check ``serve`` arguments at the door; raise ``UsageError`` naming the first bad one."""
    _range("--osc-port", args.osc_port, 0, 65535)
    _range("--queue-limit", args.queue_limit, 1, 100000)
    _limit("--strength", args.strength, "strength")
    if args.device is not None and not _DEVICE_RE.fullmatch(args.device):
        raise UsageError(f"--device must be auto, cpu, cuda, cuda:N or mps (got {args.device!r})")
    if not _loopback(args.host) and not args.allow:
        raise UsageError(
            f"--host {args.host} is not loopback: name the clients allowed to send requests "
            "with --allow HOST [HOST ...]"
        )
    for root in args.source_root:
        if not Path(root).is_dir():
            raise UsageError(f"--source-root: no such folder: {root}")
    # Last: the checks above refuse without creating anything.
    for flag, folder in (
        ("--out", args.out),
        ("--drop", args.drop),
        ("--journal", args.journal and Path(args.journal).parent),
    ):
        if folder:
            check_writable_folder(flag, folder)


def validate_app(args: argparse.Namespace) -> None:
    """Check ``app`` arguments at the door; raise ``UsageError`` naming the first bad one."""
    _range("--osc-port", args.osc_port, 0, 65535)
    if args.device is not None and not _DEVICE_RE.fullmatch(args.device):
        raise UsageError(f"--device must be auto, cpu, cuda, cuda:N or mps (got {args.device!r})")
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out: {args.out} exists and is not a folder")
    if args.smoke is not None and Path(args.smoke).suffix.lower() != ".png":
        raise UsageError(f"--smoke must name a .png file (got {args.smoke!r})")


def app_argv(args: argparse.Namespace) -> list[str]:
    """The checked ``app`` arguments, spelled out again for the desktop process."""
    argv: list[str] = []
    for flag, value in (
        ("--model", args.model),
        ("--out", args.out),
        ("--osc-port", args.osc_port),
        ("--device", args.device),
        ("--smoke", args.smoke),
    ):
        if value is not None:
            argv += [flag, str(value)]
    return argv + (["--no-osc"] if args.no_osc else [])


def _run_app(args: argparse.Namespace) -> int:
    import os
    import subprocess

    command = [sys.executable, "-m", "desktop", *app_argv(args)]
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execv(sys.executable, command)  # the app takes over this process: signals, exit code, pid
    return subprocess.call(command)


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _run_generate(args: argparse.Namespace) -> int:
    """The CLI door onto the one request path (`bridge/generate.py`)."""
    try:
        from engine import EngineError, load_audio, waveform_png

        from .generate import run_generate
    except ImportError as err:
        raise EngineUnavailable(err) from err

    paths = run_generate(args)
    for path in paths:
        print(path)
        _print_tempo(path)
        if args.waveform:
            try:
                audio, rate = load_audio(path)
                seed = json.loads(sidecar_path(path).read_text(encoding="utf-8")).get("seed", "?")
                title = f"{args.prompt[:80]}  (seed {seed}, {audio.shape[-1] / rate:.1f} s)"
                png = waveform_png(audio, path.with_suffix(".png"), title=title)
            except (EngineError, OSError, ValueError) as err:
                raise BridgeError(f"could not draw the waveform of {path}: {err}") from err
            print(png)
    return EXIT_OK


def _print_tempo(path: Path) -> None:
    """The render's tempo check (its sidecar's), one line on stderr: stdout stays the paths."""
    from .jobs import tempo_text

    try:
        recipe = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    text = tempo_text(recipe.get("tempo_check")) if isinstance(recipe, dict) else ""
    if text:
        print(f"{path.name}: {text}", file=sys.stderr)


def _run_serve(args: argparse.Namespace) -> int:
    try:
        from .serve import ServeOptions, run
    except ImportError as err:
        raise EngineUnavailable(err) from err

    return run(
        ServeOptions(
            host=args.host,
            port=args.osc_port,
            allow=tuple(args.allow),
            drop=args.drop,
            model=args.model,
            out=args.out,
            device=args.device,
            journal=args.journal,
            queue_limit=args.queue_limit,
            source_roots=tuple(args.source_root),
            prompt=args.prompt,
            strength=args.strength,
            verbose=args.verbose,
        )
    )


def _run_models(args: argparse.Namespace) -> int:
    try:
        from engine import find_models
    except ImportError as err:
        raise EngineUnavailable(err) from err

    models = find_models()
    if not models:
        print("no models found (looked in resources/models/, the user data dir and $LONGPLAY_MODELS)")
        return EXIT_OK
    width = max(len(m.name) for m in models)
    kind_width = max(len(m.kind) for m in models)
    for m in models:  # kind: longplay | stable-audio-open | stable-audio-3
        print(f"{m.name:<{width}}  {m.kind:<{kind_width}}  {m.path}  {m.description or ''}".rstrip())
    return EXIT_OK


def _run_edit(args: argparse.Namespace) -> int:
    """`longplay extend` / `longplay replace` through the one request path."""
    try:
        from .generate import run_generate
    except ImportError as err:
        raise EngineUnavailable(err) from err
    for path in run_generate(args, edit_values(args)):
        print(path)
        _print_tempo(path)
    return EXIT_OK


def _fail(message: str) -> None:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``longplay`` console script; returns the process exit code."""
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra:
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
        if args.command == "generate":
            validate_generate(args)
            return _run_generate(args)
        if args.command in ("extend", "replace"):
            return _run_edit(args)
        if args.command == "corpus":
            validate_corpus(args)
            return run_corpus(args)
        if args.command == "serve":
            validate_serve(args)
            return _run_serve(args)
        if args.command == "app":
            validate_app(args)
            return _run_app(args)
        if args.command == "train":
            return run_train(args)
        if args.command == "eval":
            return run_eval_command(args)
        return _run_models(args)
    except UsageError as err:
        _fail(str(err))
        return EXIT_USAGE
    except BridgeError as err:
        _fail(str(err))
        return EXIT_FAILED
    except KeyboardInterrupt:
        _fail("interrupted")
        return EXIT_INTERRUPTED
    except SystemExit as exit_:  # --help / --version from argparse
        return exit_.code if isinstance(exit_.code, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
