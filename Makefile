# Hayate: `make run` starts a node with built-in defaults, `make test` runs
# the whole suite (installing what it needs).
GO       ?= go
ARGS     ?=
FUZZTIME ?= 60s

SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run build test test-go test-e2e test-deps prom-deps e2e-deps deps lint bench fuzz soak stress cluster-example clean

run:
	$(GO) run ./cmd/hayate $(ARGS)

# -buildvcs=true: --version names the revision even where GOFLAGS turns
# VCS stamping off.
build:
	$(GO) build -buildvcs=true -o bin/hayate ./cmd/hayate

deps:
	$(GO) mod download

# staticcheck's default checks (bugs, dead code, deprecated calls), pinned.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# gofmt, vet and staticcheck; and the module builds and vets for macOS and
# Windows too (the media path answers ErrUnsupportedOS there), so the
# control plane can be worked on from any machine.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	 if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	for os in darwin windows; do GOOS=$$os $(GO) build ./... && GOOS=$$os $(GO) vet ./... || exit 1; done
	$(GO) run $(STATICCHECK) ./...

# Debian's prometheus package: promtool checks /metrics and a real server
# scrapes a node in the tests (the package's own service is not wanted).
prom-deps:
	@command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus && \
	  { $(SUDO) systemctl disable --now prometheus >/dev/null 2>&1 || true; }; }

test-go: deps test-deps prom-deps
	$(GO) test -race -count=1 -timeout 15m ./...

# Debian packages the tests run, as command:package: Chromium for e2e (never
# a downloaded browser), iptables to cut a cluster node off (node/fencing_test.go)
# and to drop UDP (e2e/udp-blocked.test.mjs), coturn as an operator's own TURN server
# (node/turn_test.go), openssl for the e2e TURN-TLS test certificate.
TEST_TOOLS := chromium:chromium iptables:iptables turnserver:coturn openssl:openssl

test-deps:
	@missing=""; for tp in $(TEST_TOOLS); do \
	  command -v $${tp%%:*} >/dev/null 2>&1 || PATH="$$PATH:/usr/sbin:/sbin" command -v $${tp%%:*} >/dev/null 2>&1 || missing="$$missing $${tp#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# The e2e npm packages.
e2e-deps: test-deps
	cd e2e && npm ci --no-audit --no-fund

test-e2e: build e2e-deps
	$(GO) build -o bin/relayd ./internal/impair/relayd
	cd e2e && HAYATE_BIN=$(CURDIR)/bin/hayate RELAYD_BIN=$(CURDIR)/bin/relayd node --test --test-concurrency=1

test: lint test-go test-e2e

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The churn soak against the real binary (soak/), SOAK_DURATION long
# (at most 5m); `make test` runs a 20 s version.
SOAK_DURATION ?= 4m30s
soak: deps
	HAYATE_SOAK_DURATION=$(SOAK_DURATION) $(GO) test -count=1 -run '^TestSoak$$' -v -timeout 10m ./soak/

# STRESS_RUNS x make test on a fresh clone with go test -race ./... beside it
# (scripts/stress-suite.sh): the suite must pass on a loaded machine.
STRESS_RUNS ?= 20
stress:
	scripts/stress-suite.sh $(STRESS_RUNS)

# The three-node example cluster of examples/cluster on loopback (Ctrl-C stops it).
cluster-example: build
	examples/cluster/run.sh bin/hayate

# Every fuzz target for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

clean:
	rm -rf bin
