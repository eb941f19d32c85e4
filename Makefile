# The two commands of the README: `make demo` and `make test`. Each sets up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test studio screenshots bench bundle clean

$(STAMP): pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned by the constraints file: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install -q -c constraints/cpu.txt torch
	$(BIN)/pip install -q -c constraints/cpu.txt -e ".[engine,test]"
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/studio-engine demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

studio: $(STAMP)
	$(BIN)/studio

screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m tools.screenshots docs/screenshots

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/pretrain_overhead.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/monitor_load.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/studio_startup.py

# The standalone studio (GUI only, no engine) with PyInstaller: build/bundle/atelier/atelier.
bundle:
	PYTHON=$(PYTHON) packaging/build.sh

clean:
	rm -rf $(VENV) .pytest_cache
