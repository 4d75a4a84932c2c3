# topos_rs — build, test and run the Kamailio module.
#   make run    build, then start Kamailio with cfg-examples/kamailio.cfg on 127.0.0.1:5060
#   make test   install what is missing, build, run every test
SHELL := /bin/bash
CARGO ?= cargo
MODULE := target/release/topos_rs.so
# Debian packages the build and the tests need.
APT_PACKAGES := kamailio kamailio-lua-modules clang libclang-dev sip-tester redis-server dpkg-dev make gcc bison flex
# Kamailio's module directory (where tm.so is), e.g. /usr/lib/x86_64-linux-gnu/kamailio/modules
KAMAILIO_MODULES = $(shell dirname "$$(dpkg -L kamailio 2>/dev/null | grep '/modules/tm\.so$$' | head -n1)")
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps headers build test run install deb lint clean bench bench-store fuzz soak attack

all: build

## deps: install the Debian packages that are missing (as root, or with sudo)
deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "make deps: cargo (Rust) is required"; exit 1; }

## headers: fetch the source of the installed Kamailio (skipped when KAMAILIO_SRC is set)
headers: deps
	@if [ -z "$$KAMAILIO_SRC" ]; then $(SUDO) sh kamailio-headers/fetch.sh; fi

## build: target/release/topos_rs.so
build: headers
	$(CARGO) build --release
	@# Replace the module file, never rewrite it in place: a running
	@# Kamailio has it mapped.
	@cmp -s target/release/libtopos_rs.so $(MODULE) || \
	  { cp target/release/libtopos_rs.so $(MODULE).tmp && mv -f $(MODULE).tmp $(MODULE); }

## test: unit tests, then end-to-end tests against the real kamailio
test: build
	$(CARGO) test --release

## run: Kamailio in the foreground with the example config on 127.0.0.1:5060
run: build
	mkdir -p target/run
	kamailio -DD -E -f cfg-examples/kamailio.cfg -Y $(CURDIR)/target/run \
		-L $(CURDIR)/target/release:$(KAMAILIO_MODULES)

DEB_NAME := kamailio-topos-rs-modules
DOC_DIR = /usr/share/doc/$(DEB_NAME)
KAMAILIO_DEB_VERSION = $(shell dpkg-query -W -f='$${Version}' kamailio)
CRATE_VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)

## install: the module into Kamailio's module directory, docs and examples (honours DESTDIR)
install: build
	install -D -m 0644 $(MODULE) $(DESTDIR)$(KAMAILIO_MODULES)/topos_rs.so
	install -D -m 0644 README.md $(DESTDIR)$(DOC_DIR)/README.md
	install -d $(DESTDIR)$(DOC_DIR)/cfg-examples
	install -m 0644 cfg-examples/* $(DESTDIR)$(DOC_DIR)/cfg-examples/

## deb: target/debian/kamailio-topos-rs-modules_<version>_<arch>.deb, built by cargo-deb.
## Its Depends names the exact kamailio version the module was built against,
## which cargo-deb cannot take from the environment: a packaging manifest with
## that version filled in is generated under target/deb-manifest.
deb: build
	@command -v cargo-deb >/dev/null || $(CARGO) install cargo-deb --locked
	mkdir -p target/deb-manifest
	printf '%s\n' \
	  '[package]' \
	  'name = "$(DEB_NAME)"' \
	  'version = "$(CRATE_VERSION)"' \
	  'edition = "2021"' \
	  'description = "Kamailio module topos_rs: SIP topology hiding and per-second call billing"' \
	  'license = "GPL-2.0-or-later"' \
	  '[lib]' \
	  'path = "$(CURDIR)/src/lib.rs"' \
	  '[package.metadata.deb]' \
	  'maintainer = "topos_rs developers"' \
	  'section = "net"' \
	  'priority = "optional"' \
	  'depends = "kamailio (= $(KAMAILIO_DEB_VERSION))"' \
	  'extended-description = "Native Kamailio module written in Rust: topos_request()/topos_reply() hide Via, Record-Route, Contact (and optionally Call-ID); billing_start()/billing_stop() bill calls in exact decimal money. Built for kamailio $(KAMAILIO_DEB_VERSION) only."' \
	  'assets = [' \
	  '  ["$(CURDIR)/$(MODULE)", "$(KAMAILIO_MODULES)/topos_rs.so", "644"],' \
	  '  ["$(CURDIR)/README.md", "$(DOC_DIR)/README.md", "644"],' \
	  '  ["$(CURDIR)/cfg-examples/*", "$(DOC_DIR)/cfg-examples/", "644"],' \
	  ']' > target/deb-manifest/Cargo.toml
	cd target/deb-manifest && $(CARGO) deb --no-build -o $(CURDIR)/target/debian
	@ls target/debian/$(DEB_NAME)_*.deb

## bench: CPU per call of plain Kamailio, Kamailio's topos+topos_redis and topos_rs (LMDB, Redis)
bench: build
	@command -v gnuplot >/dev/null || { $(SUDO) apt-get install -y -qq gnuplot-nox >/dev/null; }
	@command -v /usr/bin/time >/dev/null || { $(SUDO) apt-get install -y -qq time >/dev/null; }
	@dpkg -s kamailio-redis-modules >/dev/null 2>&1 || { $(SUDO) apt-get install -y -qq kamailio-redis-modules >/dev/null; }
	bash tests/bench/run.sh

## soak: 100,000 calls per backend (SOAK_CALLS), memory sampled, store emptied after grace (~10 min)
soak: build
	@command -v /usr/bin/time >/dev/null || { $(SUDO) apt-get install -y -qq time >/dev/null; }
	bash tests/soak/run.sh

## attack: live attack on cfg-examples/kamailio.cfg with topos_rs in a private network
## namespace (issue 13): real calls plus ATTACK_MESSAGES (100000) seeded mutated
## messages; fails on a crash, panic, leak, memory growth or junk in the store
attack: build
	python3 tests/attack/attack.py

## fuzz: libFuzzer on every pure parser and decoder, FUZZ_SECONDS per target (default 600)
FUZZ_SECONDS ?= 600
FUZZ_TARGETS := sip_parsers records_and_config
fuzz: headers
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@# cargo-fuzz needs nightly features (sanitizers); the stable toolchain
	@# provides them with RUSTC_BOOTSTRAP.
	for t in $(FUZZ_TARGETS); do \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir tests/fuzz $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

## lint: formatting and clippy
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings

clean:
	$(CARGO) clean

## bench-store: per-operation latency of the LMDB and Redis stores (starts its own redis-server)
bench-store: headers
	$(CARGO) run --release --example store_bench
