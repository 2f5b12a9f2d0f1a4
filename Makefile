# The commands a user needs. Each creates .venv on first use and installs the
# package (with dev extras) into it; nothing else has to be set up by hand.
#   make train   the default main job (attention seq2seq on date normalisation, CPU, minutes)
#   make test    ruff + the test suite but for the tests marked slow (the 8-minute loop)
#   make test-all  ruff + every test, the slow ones too (what CI runs)
#   make data    installs the Debian packages holding the real corpora (needs root or sudo)
#   make bench   the full benchmark sweeps: attention kernels, training steps, decoding,
#                translation, each beside its torch peer (results under benchmarks/results/)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
WORKDIR ?= runs/date_seq2seq
DEBIAN_DATA := trans-de-en sword-text-kjv sword-text-sparv wordnet-base dataset-fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# One pytest worker more than cores: the subprocess and multi-process tests leave a core idle
# while they wait (9.4 against 10.0 min on 2 cores, 2026-12-03).
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))

.PHONY: train test test-all lint data bench clean

# --no-compile, then tools/byte_compile.py: bytecode for the modules the commands import
# only, instead of pip compiling every file of every package (half the install's time).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -e '.[dev]'
	$(PY) tools/byte_compile.py
	touch $(STAMP)

train: $(STAMP)
	$(PY) train.py --config configs/date_seq2seq.py --workdir $(WORKDIR)

test: $(STAMP)
	$(PY) -m ruff check zoo tests benchmarks configs tools train.py
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow" tests

test-all: $(STAMP)
	$(PY) -m ruff check zoo tests benchmarks configs tools train.py
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile tests

lint: $(STAMP)
	$(PY) -m ruff check zoo tests benchmarks configs tools train.py

data:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(DEBIAN_DATA)

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --no-compile -e '.[dev,bench]'
	$(PY) tools/byte_compile.py
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) benchmarks/attention.py
	$(PY) benchmarks/train_step.py
	$(PY) benchmarks/decode.py
	$(PY) benchmarks/translate.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .cache
