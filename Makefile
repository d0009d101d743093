# electra-tf: `make test` and `make demo` set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TEST_STAMP := $(VENV)/.installed-test-stamp

.PHONY: install install-test test test-profile lint flops docs faults demo study study-quick bench bench-gpu clean

# What the package needs to run (and `make demo`); `make test` adds the test extras.
install: $(STAMP)

# Re-installs when setup.py changes; pins live in setup.py only.
$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

install-test: $(TEST_STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,test]"
	touch $(TEST_STAMP)

lint: install-test
	$(BIN)/ruff check .

# Two test workers: the suite is mostly tracing and start-up, which one process cannot
# spread over two cores; each test module stays in one worker (its fixtures are shared).
TEST_WORKERS ?= 2

test: lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist=loadfile

# The same run, each worker sampled: where the suite's time goes (tests/time_profile.py).
test-profile: install-test
	rm -rf data/time_profile
	PYTHONPATH=tests $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist=loadfile -p time_profile
	$(BIN)/python tests/time_profile.py

flops: install
	$(BIN)/electra-flops

# The flag tables in docs/*.md, rewritten from the commands' flag definitions (the run
# configs' fields and help); tests/test_flag_docs.py fails when one is stale.
docs: install
	$(BIN)/python -m electra_tf.flag_docs docs

# docs/faults.md's measured fault table, from the tests that inject the faults.
faults: install-test
	$(BIN)/python tests/fault_table.py

# The main job end to end on real sample data, in minutes: fetch, build, pretrain a tiny
# ELECTRA, finetune it and a from-scratch control, print the table. Re-running resumes.
demo: install
	$(BIN)/electra-study --flagfile=flags/study/demo.flags

# The equal-FLOP BERT / ELECTRA / ALE study (hours here); `make study-quick`: the same, smaller.
study: install
	$(BIN)/electra-study --flagfile=flags/study/samples.flags

study-quick: install
	$(BIN)/electra-study --flagfile=flags/study/samples.flags --quick

# Each benchmark prints its ratio against a peer measured in the same run. gpu.py measures
# on a GPU when there is one; without, it says so in one line and passes.
bench: install-test
	$(BIN)/python -m data_prep.samples --only=vocab,wiki_leads,shakespeare
	$(BIN)/python benchmarks/data_prep.py
	$(BIN)/python benchmarks/pretrain_throughput.py
	$(BIN)/python -m data_prep.samples --only=movie_reviews
	$(BIN)/python benchmarks/retrieval.py
	$(BIN)/python benchmarks/inference_latency.py
	$(BIN)/python benchmarks/steps_per_execution.py
	$(BIN)/python benchmarks/gpu.py --output_json=data/gpu_bench.json

# On a lent GPU, the one command: pretraining and inference against transformers on the
# GPU, a few minutes, every number in gpu_bench.json.
bench-gpu: install-test
	$(BIN)/python benchmarks/gpu.py --require_gpu --output_json=gpu_bench.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
