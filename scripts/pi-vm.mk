# The whole emulated Pi (included by the Makefile). What a user types:
#
#   make pi-vm                        # build the Trixie image once (cached in $(PI_VM_HOME)/trixie), boot it as a Pi 5
#   make pi-vm PI_OS=bookworm         # the same for Bookworm, booted as a Pi 4 (PI_CPU=cortex-a76|cortex-a72 overrides)
#   make pi-vm-stop [PI_OS=...]       # power it off (its copy-on-write overlay is thrown away: the next boot is clean)
#   make test-device                  # build both images if needed, then run every VM test on each (OS x CPU matrix)
#
# Deploy to it: make deploy DEVICE=pi@127.0.0.1:$(PI_VM_PORT) OFFLINE=1 IDENTITY=$(PI_VM_HOME)/id_ed25519 \
#                 KNOWN_HOSTS=$(PI_VM_HOME)/$(PI_OS)/known_hosts-$(PI_VM_PORT) SOURCE=/dev/video0
# (HTTP=0.0.0.0:8080 DEPLOY_ARGS="--run-args '--token SECRET'" puts the preview on this machine's 127.0.0.1:$(PI_VM_HTTP)).

PI_VM_HOME ?= $(HOME)/.cache/edgelite/pi-vm
PI_VM_PORT ?= 2230
PI_VM_HTTP ?= 8088
PI_OS      ?= trixie
PI_CPU     ?=
# the OS x CPU pairs `make test-device` runs: each OS on the CPU of the Pi it ships for
PI_MATRIX  ?= trixie:cortex-a76 bookworm:cortex-a72
export PI_VM_HOME PI_VM_PORT PI_VM_HTTP PI_OS PI_CPU

.PHONY: pi-vm pi-vm-build pi-vm-stop test-device

pi-vm-build:
	sh scripts/pi-vm.sh build

pi-vm: pi-vm-build
	sh scripts/pi-vm.sh start
	@echo "pi-vm: deploy to it with"
	@echo "  make deploy DEVICE=pi@127.0.0.1:$(PI_VM_PORT) OFFLINE=1 IDENTITY=$(PI_VM_HOME)/id_ed25519 \\"
	@echo "       KNOWN_HOSTS=$(PI_VM_HOME)/$(PI_OS)/known_hosts-$(PI_VM_PORT) SOURCE=/dev/video0"
	@echo "  (a shell: sh scripts/pi-vm.sh ssh; PI_OS=$(PI_OS))"

pi-vm-stop:
	sh scripts/pi-vm.sh stop

test-device: setup
	@set -e; for pair in $(PI_MATRIX); do \
		os=$${pair%%:*}; cpu=$${pair#*:}; \
		echo "== test-device: $$os on $$cpu"; \
		PI_OS=$$os PI_CPU=$$cpu sh scripts/pi-vm.sh build; \
		PI_OS=$$os PI_CPU=$$cpu $(BIN)/python -m pytest -q -m vm tests/vm; \
	done
