# topos_rs — build, test and run the Kamailio module.
#   make run             build, then start Kamailio with cfg-examples/kamailio.cfg on 127.0.0.1:5060
#   make test            install what is missing, build, run every test (the installed Kamailio)
#   make test-kamailio6  the same suite against Kamailio 6.0 built from Debian 13's source
#   make deb-trixie      the Debian 13 package, install-tested in a Debian 13 root
SHELL := /bin/bash
CARGO ?= cargo
# Where cargo builds (CARGO_TARGET_DIR is honoured): the Kamailio 6.0 and
# Debian 13 builds have a target directory of their own, so switching
# between versions rebuilds nothing.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
RELEASE_DIR := $(TARGET_DIR)/release
MODULE := $(RELEASE_DIR)/topos_rs.so
# Debian packages the build and the tests need (tests/real_ua.rs: baresip-core,
# linphone-cli, tcpdump, openssl and kamailio-tls-modules; tests/edge_config.rs
# also kamailio-websocket-modules, rtpengine-daemon and python3-websockets;
# tests/redis_ha*.rs: redis-server run as sentinels too, redis-cli of
# redis-tools for `--cluster create`, openssl for Redis's TLS certificates).
APT_PACKAGES := kamailio kamailio-lua-modules kamailio-tls-modules clang libclang-dev sip-tester redis-server redis-tools dpkg-dev make gcc bison flex \
	baresip-core linphone-cli tcpdump openssl \
	kamailio-websocket-modules rtpengine-daemon python3-websockets
# Kamailio's module directory (where tm.so is), e.g. /usr/lib/x86_64-linux-gnu/kamailio/modules:
# $KAMAILIO_MODULES if set, else where the installed kamailio package put tm.so.
KAMAILIO_MODULES ?= $(shell dirname "$$(dpkg -L kamailio 2>/dev/null | grep '/modules/tm\.so$$' | head -n1)")
# The kamailio binary the module is built for and run with (build.rs and
# the tests honour KAMAILIO_BIN too).
KAMAILIO_BIN ?= kamailio
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps headers build test run install deb lint clean bench bench-store fuzz soak attack \
	kamailio-trixie test-kamailio6 trixie-root deb-trixie

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

## build: target/release/topos_rs.so ($(CARGO_TARGET_DIR)/release if set)
build: headers
	$(CARGO) build --release
	@# Replace the module file, never rewrite it in place: a running
	@# Kamailio has it mapped.
	@cmp -s $(RELEASE_DIR)/libtopos_rs.so $(MODULE) || \
	  { cp $(RELEASE_DIR)/libtopos_rs.so $(MODULE).tmp && mv -f $(MODULE).tmp $(MODULE); }

## test: unit tests, then end-to-end tests against the real kamailio
## (every test binary runs even when an earlier one fails, so one run
## reports every failure)
test: build
	TOPOS_RS_MODULE_DIR=$(abspath $(RELEASE_DIR)) $(CARGO) test --release --no-fail-fast

## run: Kamailio in the foreground with the example config on 127.0.0.1:5060
run: build
	mkdir -p $(TARGET_DIR)/run
	$(KAMAILIO_BIN) -DD -E -f cfg-examples/kamailio.cfg -Y $(abspath $(TARGET_DIR))/run \
		-L $(abspath $(RELEASE_DIR)):$(KAMAILIO_MODULES)

# Kamailio 6.0 from Debian 13 (trixie): its source package, fetched with apt
# lists of its own (/etc/apt is not touched), built under KAMAILIO6_CACHE
# (server, kamcmd and the modules the tests load; ~3 min on 2 cores, once).
TRIXIE_MIRROR ?= http://deb.debian.org/debian
KAMAILIO6_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/topos_rs/kamailio-trixie
KAMAILIO6_TARGET := $(CURDIR)/target/kamailio-trixie

## kamailio-trixie: fetch and build Kamailio 6.0 (Debian 13's source) into KAMAILIO6_CACHE
kamailio-trixie:
	@# Kamailio's build needs gcc, make, bison, flex (in APT_PACKAGES); app_lua needs Lua 5.1,
	@# tls (tests/real_ua.rs) and websocket (tests/edge_config.rs) OpenSSL, websocket
	@# libunistring too.
	$(MAKE) deps APT_PACKAGES="$(APT_PACKAGES) liblua5.1-0-dev libssl-dev libunistring-dev"
	MIRROR=$(TRIXIE_MIRROR) sh kamailio-headers/fetch-debian.sh trixie $(KAMAILIO6_CACHE)/src
	sh kamailio-headers/build-kamailio.sh $(KAMAILIO6_CACHE)/src $(KAMAILIO6_CACHE)

## test-kamailio6: the whole suite (unit and end-to-end) against that Kamailio 6.0
## (KAMAILIO_BIN/KAMCMD_BIN for the tests, and first in PATH for any that run
## kamailio or kamcmd by name)
test-kamailio6: kamailio-trixie
	PATH="$(KAMAILIO6_CACHE)/sbin:$$PATH" $(MAKE) test \
	  KAMAILIO_SRC=$(KAMAILIO6_CACHE)/src \
	  KAMAILIO_BIN=$(KAMAILIO6_CACHE)/sbin/kamailio \
	  KAMCMD_BIN=$(KAMAILIO6_CACHE)/sbin/kamcmd \
	  KAMAILIO_MODULES=$(KAMAILIO6_CACHE)/modules \
	  CARGO_TARGET_DIR=$(KAMAILIO6_TARGET)

DEB_NAME := kamailio-topos-rs-modules
DOC_DIR = /usr/share/doc/$(DEB_NAME)
# The kamailio package version the module is built for (Depends: kamailio (= ...)).
KAMAILIO_DEB_VERSION ?= $(shell dpkg-query -W -f='$${Version}' kamailio)
# Debian revision of our package: 0.2.0-1 (Debian 12), 0.2.0-1+deb13 (deb-trixie).
DEB_REVISION ?= 1
CRATE_VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)

## install: the module into Kamailio's module directory, docs and examples (honours DESTDIR)
install: build
	install -D -m 0644 $(MODULE) $(DESTDIR)$(KAMAILIO_MODULES)/topos_rs.so
	install -D -m 0644 README.md $(DESTDIR)$(DOC_DIR)/README.md
	install -d $(DESTDIR)$(DOC_DIR)/docs
	install -m 0644 docs/*.md $(DESTDIR)$(DOC_DIR)/docs/
	install -d $(DESTDIR)$(DOC_DIR)/cfg-examples
	install -m 0644 cfg-examples/* $(DESTDIR)$(DOC_DIR)/cfg-examples/

## deb: target/debian/kamailio-topos-rs-modules_<version>_<arch>.deb, built by cargo-deb
## ($(CARGO_TARGET_DIR)/debian if set).
## Its Depends names the exact kamailio version the module was built against,
## which cargo-deb cannot take from the environment: a packaging manifest with
## that version filled in is generated under target/deb-manifest.
deb: build
	@command -v cargo-deb >/dev/null || $(CARGO) install cargo-deb --locked
	@test -n "$(KAMAILIO_DEB_VERSION)" || { echo "make deb: no kamailio package version (KAMAILIO_DEB_VERSION)"; exit 1; }
	mkdir -p $(TARGET_DIR)/deb-manifest
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
	  'revision = "$(DEB_REVISION)"' \
	  'depends = "kamailio (= $(KAMAILIO_DEB_VERSION))"' \
	  'extended-description = "Native Kamailio module written in Rust: topos_request()/topos_reply() hide Via, Record-Route, Contact (and optionally Call-ID); billing_start()/billing_stop() bill calls in exact decimal money. Built for kamailio $(KAMAILIO_DEB_VERSION) only."' \
	  'assets = [' \
	  '  ["$(abspath $(MODULE))", "$(KAMAILIO_MODULES)/topos_rs.so", "644"],' \
	  '  ["$(CURDIR)/README.md", "$(DOC_DIR)/README.md", "644"],' \
	  '  ["$(CURDIR)/docs/*.md", "$(DOC_DIR)/docs/", "644"],' \
	  '  ["$(CURDIR)/cfg-examples/*", "$(DOC_DIR)/cfg-examples/", "644"],' \
	  ']' > $(TARGET_DIR)/deb-manifest/Cargo.toml
	cd $(TARGET_DIR)/deb-manifest && $(CARGO) deb --no-build -o $(abspath $(TARGET_DIR))/debian
	@ls $(TARGET_DIR)/debian/$(DEB_NAME)_$(CRATE_VERSION)-$(DEB_REVISION)_*.deb

# Debian 13: a trixie root made with debootstrap (cached next to
# KAMAILIO6_CACHE), with the distro's kamailio package in it.
TRIXIE_ROOT ?= $(dir $(KAMAILIO6_CACHE))trixie-root

## trixie-root: the Debian 13 root (debootstrap, ~1 min once), kamailio installed in it
trixie-root:
	$(MAKE) deps APT_PACKAGES="$(APT_PACKAGES) debootstrap"
	sh tests/debian13/root.sh $(TRIXIE_ROOT) $(TRIXIE_MIRROR)

## deb-trixie: the package for Debian 13's kamailio (headers: its source; version and
## flags checked against the root's /usr/sbin/kamailio), then install-tested in the root
deb-trixie: kamailio-trixie trixie-root
	$(MAKE) deb \
	  KAMAILIO_SRC=$(KAMAILIO6_CACHE)/src \
	  KAMAILIO_BIN=$(TRIXIE_ROOT)-kamailio \
	  KAMAILIO_MODULES="$$(dirname "$$(chroot $(TRIXIE_ROOT) dpkg -L kamailio | grep '/modules/tm\.so$$')")" \
	  KAMAILIO_DEB_VERSION="$$(chroot $(TRIXIE_ROOT) dpkg-query -W -f='$${Version}' kamailio)" \
	  DEB_REVISION=1+deb13 \
	  CARGO_TARGET_DIR=$(KAMAILIO6_TARGET)
	bash tests/debian13/install-test.sh $(TRIXIE_ROOT) \
	  $(KAMAILIO6_TARGET)/debian/$(DEB_NAME)_$(CRATE_VERSION)-1+deb13_$$(dpkg --print-architecture).deb

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
## namespace (issues 13, 24): real calls plus ATTACK_MESSAGES (100000) seeded mutated
## messages; fails on a crash, panic, leak, relay (to a third-address trap, or of an
## ACK/CANCEL that must be absorbed), lost e2e ACK, memory growth or junk in the store
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
