# One command sets everything up and runs the main job (`make run`); one runs the tests (`make test`).
# Both create .venv/ at the repository root, install Debian's ffmpeg if it is missing, and
# install the package with its test extras. Nothing is downloaded at run time (HF_HUB_OFFLINE=1).
VENV   := .venv
PYTHON := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export HF_HUB_OFFLINE := 1

.PHONY: setup test run clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	command -v ffmpeg >/dev/null || ($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends ffmpeg)
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e ".[test]"
	touch $@

test: setup
	$(PYTHON) -m pytest -q

run: setup
	$(PYTHON) -m ofa_plus.demo

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
