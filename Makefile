# Payment terminal firmware: host-side commands. `make sim` and `make test` work on a fresh
# machine: they create the virtual environment from the pinned requirements.txt first.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The MicroPython unix port the simulated board, the portable tests and the benchmarks run on.
# A 32-bit build measures the heap as an ESP32 has it: make bench MICROPYTHON=path/to/it.
MICROPYTHON := $(VENV)/bin/micropython
# An ESP32 without PSRAM gives MicroPython about 100 KB of heap. The unix port here is 64-bit:
# its objects and GC blocks are twice the size of the ESP32's 32-bit ones (8-byte words, 32-byte
# blocks), so 200 000 bytes here hold about what 100 000 hold on the chip.
HEAP ?= 200000
# The CPython test files run this many at a time (pytest-xdist): most of them wait on a
# MicroPython process, a host or a model, so three share two cores well.
TEST_JOBS ?= 3
# The simulated board's heap; empty: tools/sim's default (the firmware, the chip models, and with
# the code in ROMFS the image's bytes, which the unix port holds in its heap).
SIM_HEAP ?=
SCENARIO ?=
OUT ?= out/sim
# FORCE=1: a scripted run replaces the record OUT holds (without it, a non-empty OUT is refused).
FORCE ?=
PORT ?= 8583
# Purchases for make bench (default 1000) and make bench-heap (default 3); CAMPAIGN=1 makes
# bench-heap run a generated campaign with faults (tools/sim/gen.py) instead; BOARD_CONFIG=1
# measures with Wi-Fi and NTP on, as a board at the counter; JOBS=4 runs bench-heap's trials
# four at a time (they mostly wait on the simulated host and printer).
PURCHASES ?=
CAMPAIGN ?=
ARCH ?=
# The board profile (boards/*.py) that build, deploy and flash are for; `sim` is the virtual board.
BOARD ?= esp32_devkitc
FIRMWARE ?=
PROVISION ?= provision.local.json
CA ?=
HOST_ADDR ?=
VBOARD_DIR ?= out/vboard
VBOARD_PORT ?= 8266
SEEDS ?= 1000
INPUTS ?= 100000

.PHONY: all venv sim test test-cpython test-micropython host bench bench-heap build lint clean dst fuzz \
	flash deploy romfs dev provision vboard check-port certs firmware hwcheck test-board

all: test

$(VENV)/.installed: requirements.txt requirements-board.txt requirements-peers.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r requirements.txt
	$(VENV)/bin/pip install --quiet --no-deps -r requirements-peers.txt
	touch $@

venv: $(VENV)/.installed

SIM_ARGS = --micropython $(MICROPYTHON) $(if $(SIM_HEAP),--heapsize $(SIM_HEAP))
sim: $(VENV)/.installed
ifeq ($(SCENARIO),)
	$(PY) -m tools.sim $(SIM_ARGS)
else
	$(PY) -m tools.sim --scenario $(SCENARIO) --out $(OUT) $(SIM_ARGS) \
		$(if $(filter-out 0,$(FORCE)),--force)
endif

test: lint test-micropython test-cpython

test-micropython: $(VENV)/.installed
	$(PY) tests_host/mpsuite.py --heapsize $(HEAP)

test-cpython: $(VENV)/.installed
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist loadfile tests_host

host: $(VENV)/.installed
	$(PY) -m tools.host --port $(PORT) --db host.db

BENCH_ARGS = --micropython $(MICROPYTHON) $(if $(PURCHASES),--purchases $(PURCHASES)) \
	$(if $(BOARD_CONFIG),--board-config)
bench: $(VENV)/.installed
	$(PY) -m tools.bench $(BENCH_ARGS)

# The code as ROMFS, or CODE=mpy for .mpy files on the filesystem.
bench-heap: $(VENV)/.installed
	$(PY) -m tools.bench --min-heap $(BENCH_ARGS) $(if $(CAMPAIGN),--campaign) \
		--code $(if $(filter mpy files,$(CODE)),mpy,romfs) $(if $(JOBS),--jobs $(JOBS))

# --- a board on USB: flash MicroPython once, then build + deploy, provision (README, "Maker's path")
check-port:
ifeq ($(PORT),8583)
	$(error give the board's port: PORT=/dev/ttyUSB0 (or socket://127.0.0.1:$(VBOARD_PORT)))
endif

# FLASH_ARGS: more options for tools/flash.py, e.g. --no-romfs to keep the image's own partition
# table (a frozen build or a micropython.org image: neither can mount a ROMFS).
FLASH_ARGS ?=
# DRY_RUN=1: print the esptool commands (and write the partition table they name), run none.
DRY_RUN ?=
flash: $(VENV)/.installed check-port
ifeq ($(FIRMWARE),)
	$(error give the MicroPython image: FIRMWARE=path/to/ESP32_GENERIC-....bin)
endif
	$(PY) -m tools.flash --port $(PORT) --firmware $(FIRMWARE) --board $(BOARD) $(FLASH_ARGS) \
		$(if $(filter-out 0,$(DRY_RUN)),--dry-run)

# MicroPython v1.28.0 with firmware/, drivers/ and BOARD's profiles frozen in
# (boards/manifests/BOARD.py; docs/firmware.md), built with the ESP-IDF of IDF_PATH (its idf.py
# on PATH: . $IDF_PATH/export.sh) or else Docker.
# MICROPYTHON_SRC: a checkout at v1.28.0, cloned there if missing. VARIANT: MicroPython's
# BOARD_VARIANT (SPIRAM_OCT for an S3 with octal PSRAM). ROMFS=1: nothing frozen, ROMFS on
# instead, for make flash's romfs partition and make deploy CODE=romfs (docs/romfs.md).
MICROPYTHON_SRC ?= out/micropython
VARIANT ?=
ROMFS ?=
firmware: $(VENV)/.installed
	$(PY) -m tools.firmware --board $(BOARD) --micropython $(MICROPYTHON_SRC) $(if $(VARIANT),--variant $(VARIANT)) $(if $(filter-out 0,$(ROMFS)),--romfs)

build: $(VENV)/.installed
	$(PY) -m tools.build --board $(BOARD) $(if $(ARCH),--arch $(ARCH))

# The packages as a ROMFS image, build/BOARD.romfs, beside boot.py and main.py in build/BOARD/
# (docs/romfs.md).
romfs: $(VENV)/.installed
	$(PY) -m tools.build --board $(BOARD) --romfs $(if $(ARCH),--arch $(ARCH))

# Where the code goes: romfs (the ROM partition), files (.mpy on the filesystem), frozen (in the
# MicroPython image: boot.py and main.py only), or auto: asks the board, then builds what it needs.
CODE ?= auto
deploy: $(VENV)/.installed check-port
	$(PY) -m tools.deploy --port $(PORT) --board $(BOARD) --code $(CODE) $(if $(ARCH),--arch $(ARCH))

dev: $(VENV)/.installed check-port
	$(PY) -m tools.deploy --port $(PORT) --dev

provision: $(VENV)/.installed check-port
	$(PY) -m tools.provision --port $(PORT) --file $(PROVISION) $(if $(CA),--ca $(CA)) --reset

# The hardware check on the board (tools/hwcheck.py), from a soft reset: WAIT seconds for keys
# and for a card; exit status 1 when a check failed.
WAIT ?= 15
hwcheck: $(VENV)/.installed check-port
	$(PY) -m tools.hwcheck_run --port $(PORT) --wait $(WAIT)

# The portable tests (those make test runs on the unix port) on the board, against its deployed
# firmware; FILES="test_cmac.py ..." for some of them. Its settings and journal are untouched.
FILES ?=
test-board: $(VENV)/.installed check-port
	$(PY) -m tools.testboard --port $(PORT) $(FILES)

# The test CA and the host simulator's certificate (localhost, 127.0.0.1); the board trusts
# out/certs/ca.der (make provision CA=out/certs/ca.der). Kept while still good.
# HOST_ADDR=192.168.1.10 adds the PC's address, which a real board reaches it by.
certs: $(VENV)/.installed
	$(PY) -m tools.host.tlsca --out out/certs $(if $(HOST_ADDR),--name $(HOST_ADDR))

# A virtual board for trying the above without one, with the simulated board's screen, keypad,
# card reader and printer (in this terminal): make vboard, then in another terminal make deploy
# BOARD=sim PORT=socket://127.0.0.1:8266, make provision ... (docs/virtual-board.md).
vboard: $(VENV)/.installed
	$(PY) -m tools.vboard --dir $(VBOARD_DIR) --port $(VBOARD_PORT) --peripherals

# Malformed-input fuzzing of the decoder, the framing and the core's response matching.
fuzz: $(VENV)/.installed
	$(PY) -m tools.fuzz --inputs $(INPUTS)

dst: $(VENV)/.installed
	$(PY) -m tools.dst --seeds $(SEEDS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) out build .pytest_cache
