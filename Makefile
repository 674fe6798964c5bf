# edgelite — what a user types. `make demo` and `make test` do all set-up themselves.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.edgelite-installed
export TF_CPP_MIN_LOG_LEVEL ?= 2
export TF_USE_LEGACY_KERAS := 1

# demo sizes: small enough for a 2-core CPU, big enough to show fine-tuning works
DEMO_DATA   ?= data/fashion-mnist
DEMO_RUN    ?= runs/demo
DEMO_BUNDLE ?= bundles/demo
DEMO_PER_CLASS ?= 300
# held-out images per class, from Fashion-MNIST's own test split (10 x 100 = 1,000; they only cost inference)
DEMO_TEST_PER_CLASS ?= 100
DEMO_SIZE   ?= 96

.PHONY: help setup system-deps test demo lint bench deploy pi-emulator clean imx500-venv demo-imx500

help:
	@echo "make demo   - set up, then train EfficientNet-Lite0 on Fashion-MNIST, convert, bench and run it"
	@echo "make test   - set up (incl. the emulated Pi's Trixie image), then run the whole test suite"
	@echo "make lint | bench | deploy DEVICE=user@host | pi-emulator | clean"
	@echo "make imx500-venv | demo-imx500 - Sony's IMX500 toolchain (own venv, ~2.3 GB) and the AI Camera path"

setup: $(STAMP) system-deps

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[all,dev]'
	touch $@

system-deps:
	@sh scripts/system-deps.sh

# The emulated Pi is part of the suite: the image of PI_OS (default trixie) is built when it is not cached (root; ~7 min once), and
# the quick VM tests boot it. PI_VM=0 skips the build (the VM tests then skip, saying why). The VM's minute-long
# resilience tests (watchdog, camera gone, rollback, reboot) and the Bookworm image run in `make test-device`.
PI_VM ?= 1
# pytest-xdist workers: much of the suite waits (sshd round trips, real-time clips, the emulated Pi), so 3 on
# 2 cores; a folder with heavy session fixtures runs whole in one worker (tests/conftest.py). 0: one process
TEST_WORKERS ?= 3
# imx500-venv: Sony's toolchain (1-1.5 min here from the pinned wheels on a quiet machine) so the real `--formats imx500` tests run
test: setup imx500-venv
	@if [ "$(PI_VM)" != 0 ]; then sh scripts/pi-vm.sh build; fi
	$(BIN)/python -m pytest -q -m "not vm_long" --durations=30 -n $(TEST_WORKERS) --dist loadscope

demo: setup
	$(BIN)/edgelite data fashion-mnist $(DEMO_DATA) --per-class $(DEMO_PER_CLASS) --test-per-class $(DEMO_TEST_PER_CLASS)
	$(BIN)/edgelite train $(DEMO_DATA) --out $(DEMO_RUN) --backbone efficientnet_lite0 --image-size $(DEMO_SIZE) \
		--epochs 3 --fine-tune-epochs 2 --seed 0 --overwrite
	@if $(BIN)/python -c "import edgelite.convert.cli" 2>/dev/null; then \
		$(BIN)/edgelite convert $(DEMO_RUN) --out $(DEMO_BUNDLE) --formats fp32,fp16,int8,onnx --overwrite; \
	fi
	@if [ -f $(DEMO_BUNDLE)/edgelite.json ]; then \
		$(BIN)/edgelite bench $(DEMO_BUNDLE) --threads 1,2 --runs 100 --out $(DEMO_BUNDLE)/bench --overwrite && \
		$(BIN)/edgelite run $(DEMO_BUNDLE) --source heldout --max-frames 1000 --print-every 200; \
	fi

# The Raspberry Pi AI Camera (Sony IMX500): Sony's toolchain pins Python < 3.12, TF < 2.16 and numpy < 2, so it
# gets its own venv, driven by `edgelite convert --formats imx500` as a subprocess (~1 min, 2.3 GB; Java 17).
IMX500_VENV ?= $(HOME)/.cache/edgelite/imx500-venv
export EDGELITE_IMX500_VENV := $(IMX500_VENV)
imx500-venv:
	@sh scripts/system-deps.sh imx500
	sh scripts/imx500-venv.sh $(IMX500_VENV)

# the demo's run (made by `make demo` when missing) -> an int8 + imx500 bundle (README "Raspberry Pi AI Camera")
demo-imx500: setup imx500-venv
	test -f $(DEMO_RUN)/model.keras || $(MAKE) demo
	$(BIN)/edgelite convert $(DEMO_RUN) --out $(DEMO_BUNDLE)-imx500 --formats int8,imx500

bench: setup
	$(BIN)/python benchmarks/bench_demo.py --bundle $(DEMO_BUNDLE) --runs 1000 --warmup 50 $(if $(DEVICE),--host $(DEVICE))
	$(if $(DEVICE),,$(BIN)/python benchmarks/run_loop.py)
	$(if $(DEVICE),,$(BIN)/python benchmarks/run_loop.py --small)
	$(if $(DEVICE),,$(BIN)/python benchmarks/run_loop.py --small --size 224)
	$(if $(DEVICE),,$(BIN)/python benchmarks/bench_224.py)

# ansible-lint lives in its own venv: it wants its own ansible-core and must not move the project's pin
LINT_VENV ?= .venv-lint
lint: setup
	$(BIN)/ruff check edgelite tests benchmarks conftest.py
	$(BIN)/python -m pytest -q tests/test_shell.py
	test -x $(LINT_VENV)/bin/ansible-lint || { $(PYTHON) -m venv $(LINT_VENV) && \
		$(LINT_VENV)/bin/pip install -q 'ansible-lint==26.10.1' 'ansible-core==2.19.14'; }
	cd edgelite/fleet/ansible && $(CURDIR)/$(LINT_VENV)/bin/ansible-lint --profile production --offline

clean:
	rm -rf runs bundles data .pytest_cache test-artifacts

# deploy / pi-emulator targets live in their own file (owned with edgelite/deploy)
-include scripts/deploy.mk
-include scripts/pi-vm.mk
