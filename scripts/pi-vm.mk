# The whole emulated Pi (included by the Makefile). What a user types:
#
#   make pi-vm          # build the arm64 Bookworm VM image once (cached in $(PI_VM_HOME)), boot it, print DEVICE=
#   make pi-vm-stop     # power it off (its copy-on-write overlay is thrown away: the next boot is clean)
#   make test-device    # build the image if needed, then run only the VM tests (tests/vm, marker `vm`)
#
# Deploy to it: make deploy DEVICE=pi@127.0.0.1:$(PI_VM_PORT) OFFLINE=1 IDENTITY=$(PI_VM_HOME)/id_ed25519 \
#                 KNOWN_HOSTS=$(PI_VM_HOME)/known_hosts-$(PI_VM_PORT) HTTP=0.0.0.0:8080
# (the preview is then on this machine's 127.0.0.1:$(PI_VM_HTTP)).

PI_VM_HOME ?= $(HOME)/.cache/edgelite/pi-vm
PI_VM_PORT ?= 2230
PI_VM_HTTP ?= 8088
export PI_VM_HOME PI_VM_PORT PI_VM_HTTP

.PHONY: pi-vm pi-vm-build pi-vm-stop test-device

pi-vm-build:
	sh scripts/pi-vm.sh build

pi-vm: pi-vm-build
	sh scripts/pi-vm.sh start
	@echo "pi-vm: deploy to it with"
	@echo "  make deploy DEVICE=pi@127.0.0.1:$(PI_VM_PORT) OFFLINE=1 IDENTITY=$(PI_VM_HOME)/id_ed25519 \\"
	@echo "       KNOWN_HOSTS=$(PI_VM_HOME)/known_hosts-$(PI_VM_PORT) HTTP=0.0.0.0:8080 SOURCE=/dev/video0"
	@echo "  (preview: http://127.0.0.1:$(PI_VM_HTTP)/ ; a shell: sh scripts/pi-vm.sh ssh)"

pi-vm-stop:
	sh scripts/pi-vm.sh stop

test-device: setup pi-vm-build
	$(BIN)/python -m pytest -q -m vm tests/vm
