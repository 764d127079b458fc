"""Peak-memory helpers shared by the benchmarks (not a benchmark: `make bench` runs bench_*.py)."""

from __future__ import annotations

import resource
from pathlib import Path


def rss_mb(field: str) -> float:
    """VmRSS / VmHWM of this process in MB (Linux); else ru_maxrss, which a spawned child may
    inherit from its parent's size (it survives execve), so per-row subprocesses use /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> None:
    """Restart VmHWM from the current RSS (Linux >= 4.0), so a peak read after is the work's own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
