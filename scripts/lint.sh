#!/usr/bin/env bash
# lint.sh: `make lint`, also the first half of `make test`. Fails on the first
# problem: gofmt (must list nothing), go vet, staticcheck (the version pinned
# in scripts/tools.sh, built into ./.tools/bin when missing; checks chosen in
# staticcheck.conf), the same two over the deploy/ module (the tests of the
# image, compose file and Kubernetes manifests), the OpenAPI lint
# (scripts/lint-openapi.sh, when present) and the Prometheus rule checks
# (deploy/prometheus/alerts.yml and alerts_test.yml, when present).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MG_ROOT"
require_go

# go_files lists our Go files: not under hidden dirs, testdata, node_modules,
# bin or data (the go tool skips the same).
go_files() {
	find . \( -name node_modules -o -name testdata -o -path ./data -o -path ./bin \
		-o \( -name '.?*' -type d \) \) -prune -o -name '*.go' -type f -print
}

log "gofmt -l"
mapfile -t files < <(go_files)
if ((${#files[@]})); then
	unformatted=$(gofmt -l "${files[@]}")
	if [[ -n $unformatted ]]; then
		printf '%s\n' "$unformatted" >&2
		die "these files need gofmt -w"
	fi
fi

log "go vet ./..."
go vet ./...

bash scripts/tools.sh staticcheck
log "staticcheck ./..."
"$MG_ROOT/.tools/bin/staticcheck" ./...

# deploy/ is a module of its own (its Kubernetes and BuildKit dependencies
# stay out of mailgate's go.mod), so ./... above does not reach it.
log "go vet and staticcheck in deploy/"
(cd deploy && go vet ./... && "$MG_ROOT/.tools/bin/staticcheck" ./...)

if [[ -f scripts/lint-openapi.sh ]]; then
	log "scripts/lint-openapi.sh"
	bash scripts/lint-openapi.sh
fi

# The console's vendored browser assets match what package-lock.json pins
# (npm ci ran above); console's TestVendoredAssets checks the same from
# the lockfile alone.
log "scripts/vendor-assets.sh --check"
bash scripts/vendor-assets.sh --check

rules=deploy/prometheus/alerts.yml
rule_tests=deploy/prometheus/alerts_test.yml
if [[ -f $rules || -f $rule_tests ]]; then
	command -v promtool >/dev/null 2>&1 || install_missing prometheus
fi
if [[ -f $rules ]]; then
	log "promtool check rules $rules"
	promtool check rules "$rules"
fi
if [[ -f $rule_tests ]]; then
	log "promtool test rules $rule_tests"
	promtool test rules "$rule_tests"
fi
