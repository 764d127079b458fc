"""What a user waits for before anything happens: import times and the first progress line.

    .venv/bin/python benchmarks/bench_startup.py [--runs 3]

Each row is a fresh interpreter (`python -X importtime` would measure one import at a time; a
subprocess measures what a user's command pays), median of --runs:
- `import engine`: the runtime's front door (its names load on first use: PEP 562);
- `from engine import LIMITS`: what the CLI checks its arguments against;
- `from engine import Generator`: torch and the render pipeline;
- `import lab`: the lab (corpus, training, evaluation), the reference the runtime no longer carries;
- `longplay generate` until its first progress line on stderr, and until it exits, rendering 2 s
  with longplay-mini in 2 steps (the first-line time is what `make demo` shows before its bar).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LONGPLAY = ROOT / ".venv" / "bin" / "longplay"

IMPORTS = [
    ("import engine", "import engine"),
    ("from engine import LIMITS", "from engine import LIMITS"),
    ("from engine import Generator", "from engine import Generator"),
    ("import lab (reference)", "import lab"),
]


def time_import(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return time.perf_counter() - t0


def time_generate(out: Path) -> tuple[float, float]:
    """(seconds to the first progress line, seconds to exit) of a 2 s, 2-step render."""
    cmd = [str(LONGPLAY), "generate", "pads, 120 BPM", "--seconds", "2", "--steps", "2", "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    first = None
    for _ in proc.stderr:
        if first is None:
            first = time.perf_counter() - t0
    code = proc.wait()
    if code != 0:
        raise SystemExit(f"longplay generate failed with exit code {code}")
    return first if first is not None else float("nan"), time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    python = time_import("pass")
    rows = [("python itself", python)]
    for label, code in IMPORTS:
        rows.append((label, statistics.median(time_import(code) for _ in range(args.runs))))
    with tempfile.TemporaryDirectory() as tmp:
        gens = [time_generate(Path(tmp) / f"run{i}") for i in range(args.runs)]
    print(f"| what | seconds (median of {args.runs}) | vs `import lab` |")
    print("|---|---|---|")
    lab = rows[-1][1]
    for label, seconds in rows:
        print(f"| {label} | {seconds:.2f} | {seconds / lab:.2f}x |")
    print(
        f"| `longplay generate` (2 s, 2 steps): first progress line | {statistics.median(g[0] for g in gens):.2f} | |"
    )
    print(f"| `longplay generate` (2 s, 2 steps): done | {statistics.median(g[1] for g in gens):.2f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
