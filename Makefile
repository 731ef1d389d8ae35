# heapguard: `make help` lists the targets.
# Every target builds and tests with GOVERSION, copied once into build/
# (scripts/go-toolchain.sh says why it is not the machine's Go 1.26.8).
GOVERSION ?= go1.27.3
GOROOT_HG := build/$(GOVERSION)
GOCMD     := $(GOROOT_HG)/bin/go
export GOTOOLCHAIN := local
export PATH := $(CURDIR)/$(GOROOT_HG)/bin:$(PATH)
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# serve speaks HTTP/1.1 only: net/http's HTTP/2 code is left out (370 KB).
TAGS     := nethttpomithttp2
OVERLAY  := build/_overlay/overlay.json
FUZZTIME ?= 10s
FUZZSHORT ?= 500x

.PHONY: help build build-stock vib test esxi-test vulncheck bench fuzz fuzz-short fuzz-long mutate soak demo clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: $(GOCMD) ## static, stripped bin/heapguard with the ESXi-safe runtime, and bin/esxsim
	$(GO) run ./tools/rtpatch -out build/_overlay
	CGO_ENABLED=0 $(GO) build -overlay $(OVERLAY) -trimpath -tags $(TAGS) -ldflags '$(LDFLAGS)' -o bin/heapguard ./cmd/heapguard
	CGO_ENABLED=0 $(GO) build -overlay $(OVERLAY) -trimpath -tags $(TAGS) -ldflags '$(LDFLAGS)' -o bin/esxsim ./cmd/esxsim

# The VIB's version comes from git describe (v1.2.3-5-gabc is 1.2.3-5, no tag 0.0.0-<commit time>), its
# dates from the commit, so the same commit gives the same bytes.
DATE     ?= $(shell git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)

vib: build ## bin/heapguard-VERSION.vib (CommunitySupported) and its 7.x+ offline bundle (docs/vib.md)
	$(GO) run ./tools/mkvib -bin bin/heapguard -describe '$(VERSION)' -date '$(DATE)' -out bin

build-stock: $(GOCMD) ## the same source with the stock runtime (it dies on ESXi; for esxi-test)
	CGO_ENABLED=0 $(GO) build -trimpath -tags $(TAGS) -ldflags '$(LDFLAGS)' -o bin/heapguard-stock ./cmd/heapguard

test: $(GOCMD) ## go vet, the race-enabled test suite, esxi-test when strace is present, and vulncheck
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
	@$(MAKE) --no-print-directory fuzz-short
	@if command -v strace >/dev/null 2>&1 || [ "$$CI" = true ]; then $(MAKE) --no-print-directory esxi-test; \
	else echo "esxi-test: SKIP (strace not installed)"; fi
	$(MAKE) --no-print-directory vulncheck

esxi-test: build build-stock ## run the binaries under an emulated ESXi syscall profile (strace)
	HEAPGUARD=bin/heapguard HEAPGUARD_STOCK=bin/heapguard-stock ESXSIM=bin/esxsim ESXI_STOCK_STRICT=1 scripts/esxi-test.sh

vulncheck: $(GOCMD) ## govulncheck, its database taken as a Go module; fails on vulnerable code heapguard calls
	GO=$(GO) scripts/vulncheck.sh

bench: build ## benchmarks that print figures (report speed, agent RSS/CPU and its floor, serve latency, deploy to 20 hosts, binary size)
	$(GO) test -run '^$$' -bench . -benchmem ./collector/ ./collector/follow/ ./heap/
	scripts/bench-profile.sh
	HEAPGUARD=bin/heapguard scripts/bench-report.sh
	HEAPGUARD=bin/heapguard ESXSIM=bin/esxsim scripts/bench-agent.sh
	AGENT_SPEED=1 AGENT_REACT=0 HEAPGUARD=bin/heapguard ESXSIM=bin/esxsim scripts/bench-agent.sh
	GO=$(GO) HEAPGUARD=bin/heapguard ESXSIM=bin/esxsim scripts/bench-rss-floor.sh
	HEAPGUARD=bin/heapguard ESXSIM=bin/esxsim scripts/bench-serve.sh
	HEAPGUARD=bin/heapguard scripts/bench-deploy.sh
	@printf 'binary size: bin/heapguard %s bytes (target <= 8 MB = 8388608)\n' $$(stat -c %s bin/heapguard)

fuzz: $(GOCMD) ## every fuzz target for $(FUZZTIME), one after the other, with the executions of each
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

fuzz-short: $(GOCMD) ## every fuzz target briefly ($(FUZZSHORT) each; part of make test)
	GO=$(GO) FUZZTIME=$(FUZZSHORT) scripts/fuzz.sh

fuzz-long: $(GOCMD) ## every fuzz target for at least 1,000,000 executions, with the counts (hours)
	GO=$(GO) FUZZTIME=1000000x scripts/fuzz.sh

mutate: $(GOCMD) ## plant each bug of tools/mutate/mutations.txt (go test -overlay) and check a test catches it
	$(GO) run ./tools/mutate

demo: build ## heapguard against the simulated seed incident (KEEP=1 keeps its folders)
	KEEP=$(KEEP) scripts/demo.sh

# make soak: 24 h of host time of the daemon on esxsim with random faults
# (goroutines, open files, RSS, CPU printed per host hour; goroutines and
# open files must stay flat), then 10,000 randomized incidents. SOAK and
# PROP_N change the figures; a failure prints the seed that replays it.
SOAK   ?= 24h
PROP_N ?= 10000

soak: $(GOCMD) ## 24 simulated hours of the daemon with random faults, then 10,000 randomized incidents; figures printed
	HEAPGUARD_SOAK=$(SOAK) $(GO) test -count=1 -timeout 4h -v -run '^TestSoak$$' ./internal/proptest/
	HEAPGUARD_PROP_N=$(PROP_N) $(GO) test -count=1 -timeout 8h -v -run '^TestProps$$' ./internal/proptest/

$(GOCMD):
	scripts/go-toolchain.sh $(GOVERSION) $(GOROOT_HG)

clean: ## remove build output
	rm -rf bin build
