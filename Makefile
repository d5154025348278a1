# Warren's entry points. `make test` is what CI runs (.ci/run).

GO ?= go

# System packages the tests need, installed by `make deps` when one of
# TOOLS is missing and we are root (Debian/Ubuntu). gcc and libc6-dev:
# -race needs cgo. The rest: the end-to-end tests in test/e2e, which build
# network namespaces (ip, nft) and drive real programs in them (the list
# of tools in test/e2e/harness_test.go).
PACKAGES ?= gcc libc6-dev iproute2 nftables openssh-client openssh-server \
	curl bind9-dnsutils iputils-ping dnsmasq-base python3 util-linux
TOOLS ?= gcc ip nft ssh ssh-keygen /usr/sbin/sshd curl dig ping dnsmasq python3 setpriv
# What `make bench` needs on top: iperf3, and wg to configure the stock
# wireguard-go it measures against.
BENCH_PACKAGES ?= iperf3 wireguard-tools
BENCH_TOOLS ?= iperf3 wg

# Fuzz targets as package:FuzzName; `grep -rn "func Fuzz" --include=*_test.go .`
# lists them all.
FUZZ_TARGETS ?= ./routes:FuzzParsePrefix ./routes:FuzzLookup ./routes:FuzzArith ./routes:FuzzGuard ./split:FuzzCompute ./split:FuzzComputeLocal ./overlay/relay:FuzzParse ./overlay/relay:FuzzParseDisco ./overlay/relay:FuzzForwardCall ./overlay/wgdev:FuzzParseStats ./overlay/wire:FuzzParseToken ./overlay/wire:FuzzValidateText ./netstack:FuzzCoalescer ./platform/tunio:FuzzSplit ./platform/tunio:FuzzWrite ./policy:FuzzDecide ./policy:FuzzParse ./overlay/flowtrack:FuzzParse ./overlay/flowtrack:FuzzFilter ./overlay/coord/api:FuzzDecodeRequest ./overlay/coord/api:FuzzDecodeFlowReport ./overlay/coord/api:FuzzNodeMessage
FUZZTIME ?= 20s

.PHONY: all build test deps lint fuzz bench demo clean

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
	$(GO) test -race -count=1 -timeout 15m ./...

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
