# mailgate: each target delegates to a script under scripts/.
# Start with `make run` (a working gateway) and `make test` (every test).

.DEFAULT_GOAL := help
.PHONY: help run test bench build lint clean

help: ## list the targets
	@awk 'BEGIN { FS = ":.*## " } /^[a-z]+:.*## / { printf "  make %-6s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

run: ## start a private Redis and `mailgate serve` on SQLite at 127.0.0.1:8080
	@bash scripts/run.sh

test: ## install and start what the tests need, lint, run every test
	@bash scripts/test.sh

bench: ## accept rate of POST /v1/messages (PostgreSQL, SQLite) and Go benchmarks
	@bash scripts/bench.sh

build: ## build ./bin/mailgate
	go build -o bin/mailgate ./cmd/mailgate

lint: ## gofmt, go vet, staticcheck, OpenAPI lint, Prometheus rule checks
	@bash scripts/lint.sh

clean: ## remove bin/ (data/ is kept)
	rm -rf bin/
