#!/usr/bin/env bash
# lint-openapi.sh: lint openapi.yaml with Redocly CLI (pinned in
# package.json / package-lock.json, rules in redocly.yaml). Installs the
# pinned CLI with `npm ci` when node_modules is missing or older than the
# lockfile. Exits non-zero when the contract has an error.
# Needs Node.js >= 18.17 and npm (Debian 12 ships 18.19) (Debian: nodejs npm).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

command -v npm >/dev/null 2>&1 || die "npm is missing (install nodejs and npm)"

# stale says whether node_modules lacks the locked packages: npm writes
# node_modules/.package-lock.json on every install, so it is older than
# package-lock.json exactly when the lockfile changed since.
stale() {
	[[ ! -f node_modules/.package-lock.json ]] ||
		[[ ! -x node_modules/.bin/redocly ]] ||
		[[ package-lock.json -nt node_modules/.package-lock.json ]]
}

export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
if stale; then
	printf '==> npm ci\n' >&2
	npm ci --no-audit --no-fund
fi
exec node_modules/.bin/redocly lint --config redocly.yaml openapi.yaml
