"""The bridge's costs: requests journaled per second, and what the queue adds to a render.

    .venv/bin/python benchmarks/bench_bridge.py

Rows:
- journal inserts (SQLite WAL, synchronous=FULL: what `serve` uses) vs the simplest durable log
  (append a JSON line + fsync) as the reference;
- the same with synchronous=NORMAL (durable against a killed process, not a power cut);
- the whole door: `JobQueue.submit` (validation + journal) per second;
- one render through the queue (submit -> worker -> atomic files -> done event) vs the same
  request rendered directly with `Generator.render` and written with the same writer; the two
  files must be identical (same seed, same audio), else the script exits 1.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from bridge.journal import Journal  # noqa: E402
from bridge.queue import JobQueue  # noqa: E402
from bridge.requests import Limits, parse_request  # noqa: E402
from bridge.writer import plan_paths, write_render  # noqa: E402
from engine import Generator, build_model, load_model, save_model, tiny_config  # noqa: E402

N_INSERTS = 400
N_SUBMITS = 300
RENDERS = 5
REQUEST = {"prompt": "benchmark pads", "seconds": 1.0, "steps": 8, "seed": 7}


def per_second(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def bench_journal(folder: Path, synchronous: str) -> float:
    journal = Journal(folder / f"journal-{synchronous}.sqlite3", synchronous=synchronous)
    spec = parse_request(REQUEST, limits=Limits(), out_dir=folder).to_json()
    t0 = time.perf_counter()
    for i in range(N_INSERTS):
        journal.insert(f"job-{i}", source="bench", fingerprint="f", spec=spec)
    elapsed = time.perf_counter() - t0
    journal.close()
    return per_second(N_INSERTS, elapsed)


def bench_append_fsync(folder: Path) -> float:
    spec = parse_request(REQUEST, limits=Limits(), out_dir=folder).to_json()
    t0 = time.perf_counter()
    with open(folder / "journal.jsonl", "a", encoding="utf-8") as fh:
        for i in range(N_INSERTS):
            fh.write(json.dumps({"id": f"job-{i}", "spec": spec}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    return per_second(N_INSERTS, time.perf_counter() - t0)


def bench_submit(folder: Path, model_dir: Path) -> float:
    queue = JobQueue(folder / "submit.sqlite3", model=model_dir, device="cpu", out_dir=folder / "out",
                     limit=N_SUBMITS + 1)
    # Not started: nothing renders, so this measures the door (validation + journal) alone.
    t0 = time.perf_counter()
    for i in range(N_SUBMITS):
        queue.submit(REQUEST, f"s{i}", source="bench")
    return per_second(N_SUBMITS, time.perf_counter() - t0)


def bench_render(folder: Path, model_dir: Path) -> tuple[float, float, float]:
    """-> (best seconds through the queue, best seconds direct, max abs difference). The two are
    interleaved and the minimum of each is kept: on a shared machine the minimum is the cost,
    anything above it is other people's load."""
    gen = Generator(load_model(model_dir), device="cpu")
    direct_times, queue_times = [], []
    direct_files, queue_files = [], []
    spec = parse_request(REQUEST, limits=Limits(max_seconds=3.0), out_dir=folder / "direct")
    queue = JobQueue(folder / "render.sqlite3", model=model_dir, device="cpu", out_dir=folder / "queued")
    queue.start()
    done = threading.Event()
    queue.subscribe(lambda e: done.set() if e.kind in ("done", "failed") else None)
    gen.render(spec.request)  # warm-up, both sides
    queue.submit(REQUEST, "warm")
    done.wait(300)
    for i in range(RENDERS):
        t0 = time.perf_counter()
        results = gen.render(spec.request)
        paths = plan_paths(spec, [r.seed for r in results])
        for r, p in zip(results, paths):
            write_render(p, r, spec, {"model": "bench"})
        direct_times.append(time.perf_counter() - t0)
        direct_files.append(paths[0])

        done.clear()
        t0 = time.perf_counter()
        queue.submit(REQUEST, f"r{i}")
        done.wait(300)
        queue_times.append(time.perf_counter() - t0)
        info = queue.get(f"r{i}")
        assert info is not None and info.state == "done", info
        queue_files.append(Path(info.files[0].path))
    queue.stop()
    diff = max(float(np.abs(sf.read(str(a))[0] - sf.read(str(b))[0]).max()) for a, b in zip(direct_files, queue_files))
    return min(queue_times), min(direct_times), diff


def main() -> int:
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory(prefix="longplay-bench-") as tmp:
        folder = Path(tmp)
        torch.manual_seed(0)
        model_dir = save_model(build_model(tiny_config(window_seconds=3.0)), folder / "tiny")
        full = bench_journal(folder, "FULL")
        normal = bench_journal(folder, "NORMAL")
        plain = bench_append_fsync(folder)
        submits = bench_submit(folder, model_dir)
        via_queue, direct, diff = bench_render(folder, model_dir)

    rows = [
        ("journal insert, WAL synchronous=FULL (/s)", f"{full:,.0f}", f"{plain:,.0f}", f"{full / plain:.2f}", "-"),
        ("journal insert, WAL synchronous=NORMAL (/s)", f"{normal:,.0f}", f"{plain:,.0f}", f"{normal / plain:.2f}", "-"),
        ("JobQueue.submit: validate + journal (/s)", f"{submits:,.0f}", f"{plain:,.0f}", f"{submits / plain:.2f}", "-"),
        (f"render 1 s, 8 steps: queue vs direct (s, best of {RENDERS})", f"{via_queue:.3f}", f"{direct:.3f}",
         f"{via_queue / direct:.3f}", f"+{(via_queue - direct) * 1000:.0f} ms, max|diff| {diff:g}"),
    ]
    head = ("case", "ours", "reference", "ratio", "check")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    print("reference for journal rows: append one JSON line + fsync per request (same disk);"
          " for the render row: Generator.render + the same writer, no queue.")
    return 0 if diff == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
