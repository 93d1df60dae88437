# wspush: the two commands a new machine needs are `make run` and `make test`.

GO ?= go

.PHONY: run test build vet bench fuzz

run: ## run the server on :7777 with the in-memory broker
	$(GO) run ./cmd/wspush serve

test: vet ## every test, with the race detector; the raw socket calls' 32-bit variant too
	$(GO) test -race -count=1 -timeout 15m ./...
	GOARCH=386 $(GO) test -count=1 -timeout 5m ./internal/nbio ./internal/ws

vet:
	$(GO) vet ./...
	GOARCH=386 $(GO) vet ./...

build:
	$(GO) build -o bin/wspush ./cmd/wspush

bench: ## Go benchmarks of the hot paths (figures go in BENCHMARKS.md)
	$(GO) test -run '^$$' -bench . -benchmem ./...

fuzz: ## a short run of every fuzz target
	$(GO) test -run '^$$' -fuzz FuzzParseFrame -fuzztime 30s ./internal/ws
	$(GO) test -run '^$$' -fuzz FuzzDecodeCommand -fuzztime 30s ./internal/protocol/native
	$(GO) test -run '^$$' -fuzz FuzzDecodeObject -fuzztime 30s ./internal/httpapi
	$(GO) test -run '^$$' -fuzz FuzzParseHead -fuzztime 30s ./internal/h1
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./internal/broker/envelope
	$(GO) test -run '^$$' -fuzz FuzzField -fuzztime 30s ./internal/loadtest
