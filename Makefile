# Everything a fresh Debian machine with Python 3.11 needs, in one place.
#   make test   creates .venv, installs the project and its OS packages, runs the test suite
#   make run    runs the main job: the default DAG on the offline Fashion-MNIST data, up to
#               reports/report.html (snakemake --cores 2)
#   make bench  runs the benchmarks under benchmarks/ (CSV under reports/bench/)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP  := $(VENV)/.installed

# The verified pair (torch 2.14.1 + torchvision 0.29.1); auto-LiRPA 0.3 declares torch<1.13,
# so it goes in without its dependency metadata and bench.models.lirpa patches it at import.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# slurm-wlm and munge: the one-node cluster of tests/test_slurm.py (profiles/slurm/localhost.sh);
# chromium: the headless browser of tests/test_browser.py (the report rendered for real)
APT_PKGS   := dataset-fashion-mnist slurm-wlm munge chromium

.PHONY: all install os-packages test run bench clean
all: test

os-packages:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing OS packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml Makefile
	$(MAKE) os-packages
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e '.[test]' $(TORCH_PINS)
	$(BIN)/python -m pip install -q --no-deps auto-LiRPA==0.3
	touch $@

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

run: $(STAMP)
	$(BIN)/python -m bench run --cores 2

bench: $(STAMP)
	$(BIN)/python benchmarks/certify_speed.py --rounds 3
	$(BIN)/python benchmarks/false_certification.py
	$(BIN)/python benchmarks/train_cost.py
	$(BIN)/python benchmarks/precision.py
	$(BIN)/python benchmarks/snakemake_start.py
	$(BIN)/python benchmarks/inplace_relu.py
	$(BIN)/python benchmarks/tape_sampling.py
	$(BIN)/python benchmarks/threshold_tables.py

clean:
	rm -rf $(VENV) .pytest_cache reports/bench/*.tmp
