"""`longplay serve` folders it cannot write (issue 17, finding 15): one line and exit 2, as every
other bad argument, instead of a raw traceback.

As root, permissions do not stop a write, so the read-only folder is a read-only tmpfs in a
private mount namespace (unshare); as another user, a folder without write permission."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import WAIT

ROOT = Path(__file__).resolve().parents[2]


def _serve_in_read_only(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``longplay serve ARGS`` with ``folder`` read-only."""
    folder.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    serve = [sys.executable, "-m", "bridge.cli", "serve", "--osc-port", "0", *args]
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return subprocess.run(serve, capture_output=True, text=True, timeout=WAIT, env=env, cwd=ROOT, check=False)
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare(1): no way to make a read-only folder")
    script = f'mount -t tmpfs -o ro,size=64k tmpfs "{folder}" && exec "$@"'
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", *serve],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=env,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0 and "mount" in proc.stderr and "longplay" not in proc.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    return proc


@pytest.mark.parametrize(
    ("flag", "sub"), [("--out", ""), ("--out", "new/out"), ("--drop", "drop"), ("--journal", "j/jobs.sqlite3")]
)
def test_serve_with_a_folder_it_cannot_write_is_one_line_and_exit_2(tmp_path: Path, flag: str, sub: str) -> None:
    ro = tmp_path / "ro"
    target = ro / sub if sub else ro
    args = [flag, str(target)]
    if flag != "--out":
        args += ["--out", str(tmp_path / "out")]
    proc = _serve_in_read_only(ro, *args)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"longplay: error: {flag}: ") and str(ro) in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
