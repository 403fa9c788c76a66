# Two entry points for people and CI: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# torch first, pinned: these builds install offline on our machines, and an unpinned torch pulls several GB.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test bench clean-demo

# What users install: the default embedder runs on ONNX Runtime, no PyTorch.
$(VENV)/.deps-light: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet ".[mkdocs]"
	touch $@

# What the tests need besides: PyTorch for CLIP and for checking the ONNX export against it.
$(VENV)/.deps: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet ".[test]"
	touch $@

# A real (non-editable) install, as users get it: Pelican only discovers namespace plugins installed beside it.
setup: $(VENV)/.deps
	$(PY) -m pip install --quiet --no-deps --force-reinstall .

demo: $(VENV)/.deps-light
	$(PY) -m pip install --quiet --no-deps --force-reinstall .
	$(VENV)/bin/mkdocs build -f sample_site/mkdocs/mkdocs.yml -d site
	@echo "Built sample_site/mkdocs/site; decisions recorded in sample_site/mkdocs/invertornot.yml"

test: setup
	$(VENV)/bin/pytest
