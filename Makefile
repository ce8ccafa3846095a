# One task runner: `make demo` (main job), `make test` (install everything + all checks + tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install sysdeps services services-stop lint types unit native native-asan docs bench wheel clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@echo 'installing hepbundle with every extra (TensorFlow, hls4ml, mlflow…): ~5 minutes the first time'
	$(BIN)/pip install --progress-bar on -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## the main job, end to end, on the embedded default (a local repository laid out like CVMFS)
demo: $(STAMP)
	$(BIN)/python docs/examples/pipeline.py --workdir demo-run

lint: $(STAMP)
	$(BIN)/ruff format --check src tests tools docs/examples
	$(BIN)/ruff check src tests tools docs/examples
	$(BIN)/lint-imports  # the layer contract of docs/design.md (pyproject.toml [tool.importlinter])

types: $(STAMP)
	$(BIN)/mypy

## Debian packages the tests drive for real (headless Chromium for the catalogue site test)
sysdeps:
	bash tools/ci/install-system-deps.sh

## real XRootD and Rucio servers on 127.0.0.1 for the tests marked `services` (tools/services/):
## the first run installs the Rucio server venv under ~/.cache/hepbundle-ci (~3 min), later ~25 s
services:
	bash tools/services/up.sh start >/dev/null

services-stop:
	bash tools/services/up.sh stop

## the servers run for the whole suite and are stopped after it, pass or fail; where they cannot
## start, the `services` tests skip (and fail in CI, HEPBUNDLE_REQUIRE_SERVICES=1)
unit: $(STAMP) sysdeps
	@bash tools/services/up.sh start >/dev/null || echo "make: data services did not start (see above)"
	$(BIN)/pytest; rc=$$?; bash tools/services/up.sh stop; exit $$rc

## the native C++ library (src/libhepbundle): Release build + GoogleTest via ctest
## (tests/test_native_conformance.py drives build/native/hepbundle-native against the Python
## implementation); native-asan runs the same tests under AddressSanitizer + UBSan
NATIVE_BUILD ?= build/native
NATIVE_JOBS  ?= 2
native: sysdeps
	cmake -S src/libhepbundle -B $(NATIVE_BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$(abspath $(NATIVE_BUILD))/install
	cmake --build $(NATIVE_BUILD) -j $(NATIVE_JOBS)
	cmake --install $(NATIVE_BUILD) > /dev/null
	ctest --test-dir $(NATIVE_BUILD) --output-on-failure --timeout 300

## clang (Debian's clang + libclang-rt-14-dev, tools/ci/install-system-deps.sh): every C++ test
## under ASan + UBSan, the libFuzzer target over the readers for 30 s, then the conformance cases
## driving the instrumented command (a sanitizer report fails them); 4-8 min wall on the shared
## 2-core machine (under 3 min of CPU)
SANITIZER_ENV := ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
native-asan: $(STAMP) sysdeps
	CC=clang CXX=clang++ cmake -S src/libhepbundle -B $(NATIVE_BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DHEPBUNDLE_SANITIZE=ON -DHEPBUNDLE_FUZZ=ON
	cmake --build $(NATIVE_BUILD)-asan -j $(NATIVE_JOBS)
	$(SANITIZER_ENV) ctest --test-dir $(NATIVE_BUILD)-asan --output-on-failure --timeout 600
	$(SANITIZER_ENV) HEPBUNDLE_NATIVE=$(abspath $(NATIVE_BUILD))-asan/hepbundle-native $(BIN)/pytest -q tests/test_native_conformance.py

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

## the release artefact: dist/hepbundle-<version>-py3-none-any.whl (a few seconds, no network)
wheel: $(STAMP)
	$(BIN)/pip wheel -q --no-deps --no-build-isolation -w dist .

## install everything and run the whole suite (slow tests included): what .ci/run calls
test: lint types wheel native native-asan unit

bench: $(STAMP) native
	cd tools/bench && for b in verify load signing catalog root2npz import native; do ../../$(BIN)/python $$b.py || exit 1; done

clean:
	rm -rf $(VENV) demo-run dist site build .pytest_cache .mypy_cache .ruff_cache
