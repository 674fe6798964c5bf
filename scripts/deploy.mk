# Deploy targets (included by the Makefile). What a user types:
#
#   make deploy DEVICE=pi@raspberrypi.local [BUNDLE=bundles/demo] [SOURCE=0|clip.mp4] [OFFLINE=1]
#               [HTTP=127.0.0.1:8080] [IDENTITY=~/.ssh/id_ed25519] [DEPLOY_ARGS='--format int8 ...']
#   make deploy INVENTORY=hosts.ini [BUNDLE=...] [OFFLINE=1] [FLEET_ARGS='--canary 1 --serial 25%']
#               (many devices: `edgelite fleet deploy` with Ansible; per-host settings in the inventory)
#   make deploy-status | deploy-logs | deploy-rollback | deploy-uninstall   DEVICE=...
#   make pi-emulator        # build (once, ~7 min) and start the emulated arm64 Pi on 127.0.0.1:$(PI_PORT)
#   make pi-emulator-stop
#
# DEVICE=pi@127.0.0.1:$(PI_PORT) is the emulator: its key and known_hosts are used without asking.

DEVICE      ?=
BUNDLE      ?= $(DEMO_BUNDLE)
SOURCE      ?= 0
HTTP        ?= 127.0.0.1:8080
IDENTITY    ?=
KNOWN_HOSTS ?=
OFFLINE     ?=
DEPLOY_ARGS ?=
INVENTORY   ?=
FLEET_ARGS  ?=
PI_PORT     ?= 2222
PI_HOME     ?= $(HOME)/.cache/edgelite/pi-emulator
export PI_PORT PI_HOME

_EMULATOR     := $(filter pi@127.0.0.1:$(PI_PORT),$(DEVICE))
_IDENTITY     := $(or $(IDENTITY),$(if $(_EMULATOR),$(PI_HOME)/id_ed25519))
_KNOWN_HOSTS  := $(or $(KNOWN_HOSTS),$(if $(_EMULATOR),$(PI_HOME)/known_hosts))
_CONNECT       = --host $(DEVICE) $(if $(_IDENTITY),--identity $(_IDENTITY)) $(if $(_KNOWN_HOSTS),--known-hosts $(_KNOWN_HOSTS))

.PHONY: deploy-status deploy-logs deploy-rollback deploy-uninstall pi-emulator-stop _need-device

_need-device:
	@test -n "$(DEVICE)" || { echo "make deploy: set DEVICE=user@host[:port] (e.g. DEVICE=pi@raspberrypi.local) or INVENTORY=hosts.ini" >&2; exit 2; }

ifneq ($(INVENTORY),)
deploy: setup
	$(BIN)/edgelite fleet deploy $(BUNDLE) -i $(INVENTORY) $(if $(OFFLINE),--offline) $(FLEET_ARGS)
else
deploy: setup _need-device
	$(BIN)/edgelite deploy $(BUNDLE) $(_CONNECT) --source $(SOURCE) --http $(HTTP) $(if $(OFFLINE),--offline) $(DEPLOY_ARGS)
endif

deploy-status: setup _need-device
	$(BIN)/edgelite deploy $(_CONNECT) --status

deploy-logs: setup _need-device
	$(BIN)/edgelite deploy $(_CONNECT) --logs -n 100

deploy-rollback: setup _need-device
	$(BIN)/edgelite deploy $(_CONNECT) --rollback

deploy-uninstall: setup _need-device
	$(BIN)/edgelite deploy $(_CONNECT) --uninstall

pi-emulator:
	sh scripts/pi-emulator.sh up
	@echo "pi-emulator: deploy to it with"
	@echo "  make deploy DEVICE=pi@127.0.0.1:$(PI_PORT) BUNDLE=$(BUNDLE) SOURCE=clip.avi OFFLINE=1"
	@echo "  (the tests: .venv/bin/python -m pytest -m emulator tests/deploy)"

pi-emulator-stop:
	sh scripts/pi-emulator.sh stop
