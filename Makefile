# topos_rs — build, test and run the Kamailio module.
#   make run    build, then start Kamailio with cfg-examples/kamailio.cfg on 127.0.0.1:5060
#   make test   install what is missing, build, run every test
SHELL := /bin/bash
CARGO ?= cargo
MODULE := target/release/topos_rs.so
# Debian packages the build and the tests need.
APT_PACKAGES := kamailio clang libclang-dev sip-tester redis-server dpkg-dev make gcc
# Kamailio's module directory (where tm.so is), e.g. /usr/lib/x86_64-linux-gnu/kamailio/modules
KAMAILIO_MODULES = $(shell dirname "$$(dpkg -L kamailio 2>/dev/null | grep '/modules/tm\.so$$' | head -n1)")
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps headers build test run install lint clean bench-store

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
	cp target/release/libtopos_rs.so $(MODULE)

## test: unit tests, then end-to-end tests against the real kamailio
test: build
	$(CARGO) test --release

## run: Kamailio in the foreground with the example config on 127.0.0.1:5060
run: build
	mkdir -p target/run
	kamailio -DD -E -f cfg-examples/kamailio.cfg -Y $(CURDIR)/target/run \
		-L $(CURDIR)/target/release:$(KAMAILIO_MODULES)

## install: the module into Kamailio's module directory (honours DESTDIR)
install: build
	install -D -m 0644 $(MODULE) $(DESTDIR)$(KAMAILIO_MODULES)/topos_rs.so

## lint: formatting and clippy
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings

clean:
	$(CARGO) clean

## bench-store: per-operation latency of the LMDB and Redis stores (starts its own redis-server)
bench-store: headers
	$(CARGO) run --release --example store_bench
