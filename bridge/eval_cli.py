"""`longplay eval MODEL --corpus DIR --out DIR [--quick]`: thin CLI over `lab.run_eval`.

Writes eval.json, eval.md, the SSM PNGs and the renders it listened to into --out, prints
progress to stderr and the path of eval.md to stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .errors import BridgeError, EngineUnavailable


def add_eval_parser(sub: Any) -> None:
    e = sub.add_parser("eval", help="evaluate a model: reconstruction, prompt adherence, structure, speed")
    e.add_argument("model", help="model folder or name (an autoencoder folder gets the reconstruction metrics only)")
    e.add_argument("--corpus", required=True, help="corpus folder (metadata.jsonl) with a held-out 'test' split")
    e.add_argument("--out", required=True, help="folder for eval.json, eval.md, SSM PNGs and renders")
    e.add_argument("--quick", action="store_true", help="few items, 2 sampler steps, short renders (CI smoke run)")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_eval_command(args: argparse.Namespace) -> int:
    try:
        from engine import EngineError
        from lab import run_eval
    except ImportError as err:
        raise EngineUnavailable(err) from err
    try:
        run_eval(args.model, args.corpus, args.out, quick=args.quick, log=_log)
    except EngineError as err:
        raise BridgeError(str(err)) from err
    except OSError as err:
        raise BridgeError(f"could not evaluate into {args.out}: {err}") from err
    print(Path(args.out) / "eval.md")
    return 0
