# Warren's entry points. `make test` is what CI runs (.ci/run).

GO ?= go

# System packages the tests need, installed by `make deps` when one of
# TOOLS is missing and we are root (Debian/Ubuntu). gcc and libc6-dev:
# -race needs cgo. The rest: the end-to-end tests in test/e2e, which build
# network namespaces (ip, nft) and drive real programs in them (the list
# of tools in test/e2e/harness_test.go), haproxy among them as the
# TLS-terminating proxy in front of an --insecure-http coordinator.
# systemd: systemd-analyze, which verifies the units in dist/ (service's
# tests; it checks unit files and needs no running systemd).
PACKAGES ?= gcc libc6-dev iproute2 nftables openssh-client openssh-server \
	curl bind9-dnsutils iputils-ping dnsmasq-base python3 util-linux haproxy systemd
TOOLS ?= gcc ip nft ssh ssh-keygen ssh-keyscan /usr/sbin/sshd curl dig ping dnsmasq python3 setpriv haproxy systemd-analyze
# What `make bench` needs on top: iperf3, and wg to configure the stock
# wireguard-go it measures against.
BENCH_PACKAGES ?= iperf3 wireguard-tools
BENCH_TOOLS ?= iperf3 wg

# Fuzz targets as package:FuzzName: every `func Fuzz…` in a _test.go file,
# found afresh each run so that a new target cannot be left out.
FUZZ_TARGETS ?= $(shell grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sed -E 's|/[^/]*:func |:|' | LC_ALL=C sort)
FUZZTIME ?= 20s
# What `make test` gives each target after the unit tests: a count of
# inputs, not a duration. A timed -fuzztime can fail at its deadline
# with "context deadline exceeded" on go1.26 (golang/go#75804) when a
# loaded machine starves the workers; a count has no deadline to race.
FUZZSMOKE ?= 2000x

# The systems the laptop client is built for besides Linux (GOOS/GOARCH).
# `make cross` builds cmd/warren for each and runs go vet over every
# package for it, except CROSS_LINUX_ONLY: the harnesses that drive Linux
# network namespaces (ip netns, process groups), meaningless elsewhere.
CROSS_TARGETS ?= darwin/arm64 darwin/amd64 windows/amd64
CROSS_LINUX_ONLY ?= test/netlab test/e2e test/demo bench/dataplane

.PHONY: all build test cross deps lint fuzz fuzz-smoke bench demo clean

all: build

build:
	$(GO) build -o bin/warren ./cmd/warren

deps:
	@missing=""; \
	for t in $(TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
		echo "make deps: missing:$$missing; install the packages $(PACKAGES) (as root, with apt-get); tests that need them will fail or skip" >&2; \
		exit 0; \
	fi; \
	echo "make deps: missing:$$missing; installing $(PACKAGES)"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -q && apt-get install -y -q --no-install-recommends $(PACKAGES)

# -count=1: test/e2e and bench build cmd/warren in a subprocess, which
# go test's cache cannot see, so a cached pass could hide a broken binary.
test: deps
	@$(MAKE) --no-print-directory cross
	$(GO) test -race -count=1 -timeout 15m ./...
	@$(MAKE) --no-print-directory fuzz-smoke

cross:
	@set -e; mod="$$($(GO) list -m)"; \
	pkgs="$$($(GO) list ./... | grep -v -x -F -e '' $(foreach p,$(CROSS_LINUX_ONLY),-e "$$mod/$(p)"))"; \
	for t in $(CROSS_TARGETS); do \
		os=$${t%/*}; arch=$${t#*/}; \
		echo "GOOS=$$os GOARCH=$$arch: $(GO) build ./cmd/warren; $(GO) vet (all but $(CROSS_LINUX_ONLY))"; \
		GOOS=$$os GOARCH=$$arch $(GO) build -o /dev/null ./cmd/warren; \
		GOOS=$$os GOARCH=$$arch $(GO) vet $$pkgs; \
	done

lint:
	@out="$$(find . -type d \( -name testdata -o -name '.?*' -o -name '_*' \) -prune -o -type f -name '*.go' -print | xargs -r gofmt -l)"; \
	if [ -n "$$out" ]; then echo "gofmt -l: not formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "$(GO) test -run '^$$' -fuzz '^$$name\$$' -fuzztime $(FUZZTIME) $$pkg"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# Every fuzz target for FUZZSMOKE inputs: new inputs past the seed corpus
# (which go test ./... already replays), in a few minutes for all of them.
fuzz-smoke:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "$(GO) test -run '^$$' -fuzz '^$$name\$$' -fuzztime $(FUZZSMOKE) $$pkg"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZSMOKE) $$pkg; \
	done

# Each benchmark in bench/ does a fixed amount of work per run and reports
# its own metrics, so one iteration is enough.
bench:
	@$(MAKE) --no-print-directory deps PACKAGES="$(PACKAGES) $(BENCH_PACKAGES)" TOOLS="$(TOOLS) $(BENCH_TOOLS)"
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 45m ./bench/...

# The whole job in network namespaces: coordinator, connector behind a
# NAT, laptop daemon; prints what to type; Ctrl-C cleans up. Needs root.
demo: build deps
	$(GO) run ./test/demo --warren bin/warren $(DEMO_FLAGS)

clean:
	rm -rf bin
