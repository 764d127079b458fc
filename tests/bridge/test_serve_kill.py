"""`longplay serve` in a subprocess, SIGKILLed mid-render: on restart the job completes, the client
hears about it without re-sending, and no partial file ever sits under an output name. (A kill
between two variations' writes is covered in-process by test_queue's restart test.)"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import soundfile as sf

from .conftest import WAIT, Client

ROOT = Path(__file__).resolve().parents[2]


class Serve:
    def __init__(self, model: Path, out: Path, log: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
        self.log = log.open("a")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bridge.cli",
                "serve",
                "--osc-port",
                "0",
                "--model",
                str(model),
                "--out",
                str(out),
                "--device",
                "cpu",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], WAIT)
        line = self.proc.stdout.readline() if ready else ""
        match = re.search(r"OSC on udp://127\.0\.0\.1:(\d+)", line)
        assert match, f"serve did not start: {line!r}; log: {log.read_text()}"
        self.port = int(match.group(1))

    def kill(self, sig: int = signal.SIGKILL) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(WAIT)
        self.log.close()
        return code


def _assert_no_partial_outputs(out: Path) -> None:
    """Everything under an output name is a complete file; only hidden `.part` temps may remain."""
    for path in out.iterdir():
        if path.name.startswith(".") and path.suffix == ".part" or path.name == ".longplay":
            continue
        assert path.suffix in (".wav", ".json"), path
        if path.suffix == ".wav":
            audio, _ = sf.read(str(path))  # raises on a truncated file
            assert len(audio) == 44100, path  # 1 bar at 240 bpm


def test_sigkill_mid_render_then_restart_completes(tiny_model_dir: Path, tmp_path: Path) -> None:
    out, log = tmp_path / "out", tmp_path / "serve.log"
    server = Serve(tiny_model_dir, out, log)
    client = Client(("127.0.0.1", server.port))
    try:
        # Enough steps that sampling outlasts the 0.1 s progress throttle on a fast CPU (with 8, a
        # bf16-capable machine finished sampling between two progress replies and the test hung).
        client.send("/longplay/render", "k1", "prompt", "kill me", "bpm", 240, "bars", 1, "steps", 400, "seed", 21)
        client.recv_until("k1", final=("/longplay/accepted",))
        # 1. SIGKILL while sampling.
        while True:
            address, args = client.recv_until("k1", final=("/longplay/progress", "/longplay/done"))[-1]
            assert address == "/longplay/progress", f"the render ended before it could be killed: {args}"
            if args[2] == "sampling" and args[3] >= 2:
                break
        assert server.kill() == -signal.SIGKILL
        out.mkdir(exist_ok=True)
        _assert_no_partial_outputs(out)

        # 2. Restart: the job runs again, and the client hears it at the address it first used
        #    without sending anything (the reply address is journaled with the job).
        server = Serve(tiny_model_dir, out, log)
        got = client.recv_until("k1")
        assert got[-1][0] == "/longplay/done", got
        [file_msg] = [args for address, args in got if address == "/longplay/file"]
        assert Path(file_msg[2]).name == "kill-me_240bpm_1bar_s21_v1.wav"
        assert [p.name for p in out.glob("*.wav")] == ["kill-me_240bpm_1bar_s21_v1.wav"]
        assert not list(out.glob(".*.part"))
        _assert_no_partial_outputs(out)
        # A client that lost track asks, and gets the file and done again.
        client.server = ("127.0.0.1", server.port)
        client.send("/longplay/status", "k1")
        assert [a for a, _ in client.recv_until("k1")] == ["/longplay/file", "/longplay/done"]
        # 3. SIGTERM is a clean stop.
        assert server.kill(signal.SIGTERM) == 0
    finally:
        client.close()
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
