# openbidder. `make run` starts a working bidder; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
ORT_DIR := $(CURDIR)/lib/onnxruntime
ORT_LIB := $(ORT_DIR)/libonnxruntime.so.1
export ORT_LIB
CONFIG ?= configs/bidder.yaml
BENCHTIME ?= 1s
FUZZTIME ?= 30s
STATICCHECK_VERSION ?= v0.8.2
# Stamped into the binaries (bidder -version, openbidder_build_info).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/openbidder/openbidder/bidder.version=$(VERSION) -X github.com/openbidder/openbidder/bidder.commit=$(COMMIT)

.PHONY: run build test test-race bench bench-e2e fuzz docs lint check models retrain loopdemo distill demo shading-ab onnxruntime clean

## run: build and start the bidder with configs/bidder.yaml (embedded NATS, example campaigns, bundled models)
run: build
	@$(MAKE) --no-print-directory onnxruntime || echo "ONNX Runtime could not be installed (needs npm): the bidder will score with GBDT only"
	@if [ "$(CONFIG)" = configs/bidder.yaml ]; then \
		echo "bidder on http://127.0.0.1:8080 (admin http://127.0.0.1:8081/metrics). Send it a request:"; \
		echo "  curl -s -H 'Content-Type: application/json' -H 'x-openrtb-version: 2.6' --data @configs/examples/bid-request.json http://127.0.0.1:8080/openrtb2/bid"; \
	else echo "bidder with $(CONFIG): its listen and admin_listen addresses are in its \"bidder listening\" log line"; fi
	./bin/bidder -config $(CONFIG)

## build: every binary under bin/
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./bidder/cmd/... ./simulator/cmd/... ./campaigns/cmd/... ./features/cmd/...

## onnxruntime: install libonnxruntime 1.24.3 (checksum verified) under lib/onnxruntime
onnxruntime: $(ORT_LIB)
$(ORT_LIB):
	bash ctr/install-onnxruntime.sh $(ORT_DIR)

## test: every test (ONNX tests use lib/onnxruntime, installed first)
test: onnxruntime
	$(GO) test -count=1 ./...

## test-race: every test under the race detector
test-race: onnxruntime
	$(GO) test -race -count=1 ./...

## bench: benchmarks with their baselines, measured in the same run
bench: onnxruntime
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./ortb/ ./features/ ./campaigns/ ./ctr/ ./budget/ ./bench/

## bench-e2e: the whole server over loopback in one run (trivial 204 server, bidder at 1k and 10k campaigns,
## baseline; wrk saturation, open-loop ladder, idle CPU/RSS): out/bench-e2e/ and docs/benchmarks.md (~7 min;
## DURATION=3s IDLE=10s SETTLE=5s for a shorter run, E2E_FLAGS for more, see bin/e2e -h)
DURATION ?= 10s
WARMUP ?= 3s
IDLE ?= 30s
SETTLE ?= 60s
E2E_FLAGS ?=
bench-e2e: onnxruntime
	@command -v wrk >/dev/null || { echo "bench-e2e needs wrk on PATH (Debian: apt-get install wrk)" >&2; exit 1; }
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./bidder/cmd/bidder ./campaigns/cmd/gencampaigns ./bench/cmd/e2e
	./bin/e2e -command "make bench-e2e" -duration $(DURATION) -warmup $(WARMUP) -idle $(IDLE) -settle $(SETTLE) $(E2E_FLAGS)

## fuzz: every fuzz target in the repository (each `func Fuzz...` in a _test.go file), one after the other,
## FUZZTIME each (default 30s; CI runs FUZZTIME=5s). A target that fails with only Go's "context deadline
## exceeded" at the -fuzztime boundary and wrote no failing input is Go's coordinator race (golang/go#75804,
## fixed in Go 1.27; this module is on 1.26): it is run once more, and fails the target if it happens again.
fuzz:
	@targets=$$(grep -rE --include='*_test.go' --exclude-dir=lib --exclude-dir=.git -o '^func Fuzz[A-Za-z0-9_]*' . | \
	  sed -E 's|^\./(.*)/[^/]*:func (Fuzz[A-Za-z0-9_]*)$$|\1 \2|' | sort); \
	[ -n "$$targets" ] || { echo "fuzz: no fuzz targets found" >&2; exit 1; }; \
	out=$$(mktemp); trap 'rm -f "$$out"' EXIT; \
	echo "$$targets" | while read -r dir name; do \
	  for try in 1 2 3; do \
	    echo "fuzz: $$name ./$$dir ($(FUZZTIME))"; \
	    if $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$dir >"$$out" 2>&1; then cat "$$out"; break; fi; \
	    cat "$$out"; \
	    if [ $$try != 3 ] && grep -q 'context deadline exceeded' "$$out" && ! grep -qE 'Failing input written|panic:' "$$out"; then \
	      echo "fuzz: $$name: Go's -fuzztime deadline race (golang/go#75804), no failing input: again"; continue; \
	    fi; \
	    exit 1; \
	  done || exit 1; \
	done

## docs: regenerate docs/config.md from the config structs' doc comments (a test fails when it is stale)
docs:
	$(GO) run ./bidder/cmd/configdoc -out docs/config.md

## lint: gofmt, go vet, staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

## check: lint and the race-detector tests (CI, .ci/run, runs lint, fuzz and test; the race run does not fit
## its 10 minutes: README "Development")
check: lint test-race

## models: retrain the bundled models on simulator logs and evaluate them (apt: python3-xgboost python3-torch python3-onnx; ~2 h, 24 GB; REQUESTS=4000000 SIM_SPAN=24h for a tenth)
models:
	sh ctr/train/make_models.sh

## retrain: refit the served model on the bidder's row log + event log, promote only a better, calibrated candidate (docs/models.md, "Closed loop"; apt: python3-onnx python3-numpy python3-scipy)
ROW_LOG ?= data/rows.bin
EVENTS ?= data/events.jsonl
MODEL ?= configs/models/mlp.manifest.json
SINCE ?= 0
HOLDOUT ?= 0.2
retrain:
	@mkdir -p out
	$(GO) build -o bin/ ./features/cmd/featurestats
	/usr/bin/python3 ctr/train/retrain.py --rows $(ROW_LOG) --events $(EVENTS) --served $(MODEL) --since $(SINCE) \
		--holdout $(HOLDOUT) --featurestats bin/featurestats --report out/retrain.json

## loopdemo: the closed loop end to end: bidder + simulator whose ground truth drifts at 60 s, one retrain at 480 s,
## hot reload, served AUC by phase (out/loopdemo/summary.json; ~13 min; ctr/train/loopdemo.sh names its knobs)
loopdemo: build onnxruntime
	sh ctr/train/loopdemo.sh out/loopdemo

## distill: remake configs/models/gbdt_distilled.* (the fallback: the ONNX model's wide table + trees trained on its predictions) and measure the bid change on falling back; DATA=featurize rows dir (make_models.sh WORK/rows), TEACHER=onnx.pred.f32 over those rows if already scored (apt: python3-xgboost; ~2 min on 2 cores with TEACHER, plus ~1 min to score it without)
distill:
	sh ctr/train/make_distill.sh

## demo: start the bidder and drive it with the simulator for 30 seconds (report and plots in out/demo); the
## simulator posts as example-adx, the exchange the example PMP campaign's deals belong to
DEMO_RATE ?= 500
DEMO_DURATION ?= 30s
DEMO_LISTEN ?= 127.0.0.1:8080
DEMO_ADMIN ?= 127.0.0.1:8081
demo: build onnxruntime
	@mkdir -p out/demo
	@./bin/bidder -config $(CONFIG) -listen $(DEMO_LISTEN) -admin-listen $(DEMO_ADMIN) > out/demo/bidder.log 2>&1 & pid=$$!; \
	trap 'kill -TERM '$$pid' 2>/dev/null; wait '$$pid'' EXIT; \
	ready=; for i in $$(seq 200); do kill -0 $$pid 2>/dev/null || break; curl -sf http://$(DEMO_LISTEN)/readyz >/dev/null && { ready=1; break; }; sleep 0.1; done; \
	[ -n "$$ready" ] || { echo "the bidder did not get ready on $(DEMO_LISTEN): out/demo/bidder.log" >&2; tail -5 out/demo/bidder.log >&2; exit 1; }; \
	./bin/simulator run -target 'http://$(DEMO_LISTEN)/openrtb2/bid?exchange=example-adx' -admin http://$(DEMO_ADMIN) \
	  -rate $(DEMO_RATE) -duration $(DEMO_DURATION) -seed 1 -out out/demo

## shading-ab: bid shading A/B in the simulator's first-price market: the bidder started per run, shading off and
## on over the same traffic and seed, binding and loose budgets (out/shading-ab/ab.md, docs/shading.md; ~4 min)
AB_FLAGS ?= -rate 500 -duration 20s -warmup 20s
shading-ab: build onnxruntime
	./bin/simulator ab -bidder bin/bidder -config $(CONFIG) -campaigns configs/experiments/shading -out out/shading-ab $(AB_FLAGS)

clean:
	rm -rf bin data out
