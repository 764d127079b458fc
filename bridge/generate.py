"""`longplay generate`: one more door onto the request path every other door takes.

The arguments become the same key/value request an OSC client or a drop-folder file sends
(`request_values`), `parse_request` checks it into a `JobSpec`, and a `JobQueue` in this process
journals, renders and writes it (`write_render`: RIFF INFO recipe, ACID tempo chunk, sidecar). So
the same request and seed give the same samples, chunks and sidecar through the CLI, OSC, the drop
folder and the app, and a CLI render is in its output folder's history
(`<folder>/.longplay/jobs.sqlite3`), which the app shows when that is its output folder.

The queue runs only this request (`recover=False`): an app or server sharing the folder keeps
its own unfinished jobs. No server is started.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BridgeError, UsageError
from .naming import AUDIO_SUFFIXES

DEFAULT_OUT = "outputs"
# Request keys whose CLI flag is named otherwise (the rest are `--key`).
FLAGS = {
    "source_path": "--init-audio",
    "strength": "--init-strength",
    "format": "--out",
    "name": "--out",
    "prompt": "PROMPT",
}


def as_flags(message: str) -> str:
    """A door-neutral error ("source_path ... is not readable audio") in the CLI's words
    ("--init-audio ..."): the message names the key it is about first."""
    key, sep, rest = message.partition(" ")
    if not sep or not key.replace("_", "").isalpha() or key != key.lower():
        return message
    return f"{FLAGS.get(key, '--' + key.replace('_', '-'))} {rest}"


def request_values(args: argparse.Namespace) -> dict[str, Any]:
    """`generate`'s arguments as the door-neutral request (`docs/osc.md`'s keys); unset ones are
    left out, so each door fills the same defaults."""
    values: dict[str, Any] = {"prompt": args.prompt}
    for key in ("negative", "seconds", "bpm", "bars", "seed", "steps", "cfg", "variations", "sampler"):
        if getattr(args, key, None) is not None:
            values[key] = getattr(args, key)
    values["loudness"] = "off" if args.loudness is None else args.loudness
    if getattr(args, "loop", False):
        values["loop"] = True
    if getattr(args, "snap", False):
        values["snap"] = True
    if getattr(args, "lora", None):
        values["lora"] = [lora_value(entry) for entry in args.lora]
    if args.init_audio:
        values["source_path"] = str(Path(args.init_audio).resolve())
        if args.init_strength is not None:
            values["strength"] = args.init_strength
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() in AUDIO_SUFFIXES:
        values["format"] = out.suffix.lower().lstrip(".")
        values["name"] = out.stem
    return values


def lora_value(entry: str) -> str:
    """A `--lora FILE[:SCALE]` with FILE made absolute, as the door-neutral `lora` value."""
    from .lora_arg import split_lora

    path, scale = split_lora(entry)
    return f"{Path(path).resolve()}:{scale if scale is not None else ''}"


def out_target(out: str | None) -> tuple[Path, Path | None]:
    """`--out` -> (the folder renders and their history go to, the exact file asked for or None)."""
    path = Path(out or DEFAULT_OUT)
    if path.suffix.lower() in AUDIO_SUFFIXES:
        return path.resolve().parent, path.resolve()
    return path.resolve(), None


@dataclass
class Progress:
    """Render progress on stderr: an updating bar on a terminal, stage changes otherwise."""

    tty: bool
    stage: str = ""

    def __call__(self, fraction: float, stage: str, step: int, steps: int) -> None:
        if self.tty:
            filled = int(fraction * 30)
            bar = "#" * filled + "-" * (30 - filled)
            label = f"{stage} {step}/{steps}" if stage == "sampling" else stage
            end = "\n" if stage == "done" else ""
            print(f"\r[{bar}] {fraction:4.0%} {label}\033[K", end=end, file=sys.stderr, flush=True)
        elif stage != self.stage:
            print(f"{stage}…", file=sys.stderr, flush=True)
        self.stage = stage


def run_generate(args: argparse.Namespace, values: dict[str, Any] | None = None) -> list[Path]:
    """Render `args` (or the door-neutral `values` built from them: `longplay extend`/`replace`)
    through an in-process queue; -> the files written. A bad request raises
    `UsageError` (exit 2), an engine failure `BridgeError` (exit 1); Ctrl-C cancels the render
    (nothing half-written is left) and is re-raised."""
    from .jobs import JobEvent
    from .queue import JobQueue
    from .requests import parse_request

    folder, exact = out_target(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    queue = JobQueue(
        folder / ".longplay" / "jobs.sqlite3", model=args.model, device=args.device, out_dir=folder, recover=False
    )
    queue.start()  # loads the model: the limits (its window) are known from here on
    try:
        try:
            spec = parse_request(values or request_values(args), limits=queue.limits, out_dir=folder)
        except UsageError as err:
            raise type(err)(as_flags(err.message)) from err
        if exact is not None:
            spec = dataclasses.replace(spec, file=str(exact))
        finished = threading.Event()
        show = Progress(tty=sys.stderr.isatty())
        job: list[str] = []

        def on_event(event: JobEvent) -> None:
            if not job or event.job.id != job[0]:
                return
            if event.kind == "progress":
                show(event.job.fraction, event.job.stage, event.job.step, event.job.steps)
            elif event.job.is_final:
                show(1.0, "done", 0, 0)
                finished.set()

        unsubscribe = queue.subscribe(on_event)
        try:
            info = queue.submit(spec, source="cli")
            job.append(info.id)
            try:
                while not finished.wait(0.2):
                    pass
            except KeyboardInterrupt:
                queue.cancel(info.id)
                finished.wait(30.0)
                raise
        finally:
            unsubscribe()
        final = queue.get(info.id)
    finally:
        queue.stop()
    if final is None or final.state != "done":
        code, message = (final.error_code, final.error) if final is not None else (500, "the job vanished")
        error = UsageError if code in (400, 404, 413) else BridgeError
        raise error(message or "the render failed")
    return [Path(f.path) for f in final.files]
