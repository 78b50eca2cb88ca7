# Hayate: `make run` starts a node with built-in defaults, `make test` runs
# the whole suite (installing what it needs).
GO       ?= go
ARGS     ?=
FUZZTIME ?= 60s

.PHONY: run build test test-go deps lint bench fuzz clean

run:
	$(GO) run ./cmd/hayate $(ARGS)

build:
	$(GO) build -o bin/hayate ./cmd/hayate

deps:
	$(GO) mod download

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	 if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test-go: deps
	$(GO) test -race -count=1 -timeout 15m ./...

test: lint test-go

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Every fuzz target for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

clean:
	rm -rf bin
