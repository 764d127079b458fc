#!/usr/bin/env bash
# Rebuilds docs/screenshot.png: the embedded model (longplay-mini; a tiny random one if it is
# missing), a few renders requested over OSC the way a DAW would, then the app under Xvfb with --smoke.
#   bash docs/screenshot.sh            (needs xvfb-run: `make apt`)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=.venv/bin/python
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
export XDG_CONFIG_HOME="$WORK/config"   # leave the user's own settings alone

MODEL=resources/models/longplay-mini
STEPS=
if [ ! -f "$MODEL/model_config.json" ]; then
  MODEL="$WORK/models/longplay-demo"
  STEPS="--steps 4"
  $PY - "$MODEL" <<'PY'
import sys, torch
from engine import build_model, save_model, tiny_config
torch.manual_seed(0)
save_model(build_model(tiny_config(window_seconds=12.0)), sys.argv[1], {"description": "tiny random model"})
PY
fi

PORT=$($PY -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/longplay serve --model "$MODEL" --out "$WORK/out" --osc-port "$PORT" &
SERVER=$!
sleep 1
client() { $PY resources/daw/longplay_client.py --port "$PORT" --quiet $STEPS "$@" >/dev/null; }
until client "warmup" --seconds 0.5 --name warmup 2>/dev/null; do sleep 1; done
rm -f "$WORK"/out/warmup_*
client "dusty boom bap drums, vinyl crackle" --bpm 92 --bars 4 --seed 1234
client "warm analog house, rolling bassline" --bpm 124 --bars 4 --seed 77 --variations 2
client "ambient pad, slow evolving strings" --seconds 11 --seed 2024
client "lo-fi piano loop, tape wobble" --bpm 80 --bars 2 --seed 9
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true

# A prompt in the form and a drum loop to restyle in the drop zone, as a producer would have left
# them (the app keeps the form between runs).
$PY - "$WORK/beatbox-loop.wav" <<'PY'
import sys
import numpy as np, soundfile as sf
from PySide6.QtCore import QSettings
from desktop.settings import Settings
sr, beat = 44100, 60 / 92
t = np.arange(int(sr * beat * 8)) / sr
out = np.zeros_like(t)
rng = np.random.default_rng(0)
for i in range(8):  # kick on 1 and 3, snare on 2 and 4, hats in between
    start = int(i * beat * sr)
    n = np.arange(len(t) - start) / sr
    if i % 2 == 0:
        out[start:] += 0.9 * np.sin(2 * np.pi * (50 + 90 * np.exp(-n * 30)) * n) * np.exp(-n * 9)
    else:
        out[start:] += 0.5 * rng.standard_normal(len(n)) * np.exp(-n * 18)
    hat = start + int(beat * sr / 2)
    out[hat:] += 0.15 * rng.standard_normal(len(t) - hat) * np.exp(-np.arange(len(t) - hat) / sr * 60)
sf.write(sys.argv[1], np.stack([out, out * 0.9], axis=1).astype(np.float32) * 0.8, sr)
s = Settings(QSettings("Longplay", "Longplay"))
s["form/values"] = {"prompt": "dusty boom bap drums, vinyl crackle, warm Rhodes chords", "length_mode": "bars",
                    "bars": 4, "bpm": 92.0, "seed": 1234, "seed_locked": True,
                    "init_audio": sys.argv[1], "init_strength": 0.6}
s.sync()
PY

xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/longplay app --model "$MODEL" \
    --out "$WORK/out" --smoke docs/screenshot.png
