# Lightbox: `make run` and `make test` do all the set-up on a fresh Debian machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test bench lint fuzz sysdeps venv clean bundle smoke

run: sysdeps $(STAMP)
	$(VENV)/bin/lightbox

test: sysdeps $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest $(PYTEST_ARGS)

bench: sysdeps $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) benchmarks/run.py $(BENCH_ARGS)
	$(if $(BENCH_ARGS),,$(PY) benchmarks/run.py stow_300)

# Coverage-guided fuzzing of the readers (tests/fuzz/fuzz.py): crashes go to tests/fuzz/.crashes/,
# exit 1 if any. `make fuzz FUZZ_SECONDS=600 FUZZ_JOBS=1 FUZZ_ARGS="--targets decode,cli"`.
FUZZ_SECONDS ?= 3600
FUZZ_JOBS    ?= 2
fuzz: sysdeps $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) tests/fuzz/fuzz.py run --seconds $(FUZZ_SECONDS) --jobs $(FUZZ_JOBS) $(FUZZ_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The one-folder application, dist/lightbox/lightbox (PyInstaller; packaging/README.md, Bundle).
bundle: $(STAMP)
	$(PY) -c 'import PyInstaller' 2>/dev/null || $(PY) -m pip install --quiet -e '.[bundle]'
	$(PY) -m PyInstaller --noconfirm --distpath dist --workpath build packaging/lightbox.spec

# Builds the bundle in a fresh clone of HEAD and runs it without the venv (packaging/smoke.sh).
smoke:
	bash packaging/smoke.sh

sysdeps:
	@bash packaging/system-deps.sh

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache benchmarks/.cache \
		tests/fuzz/.work
