#!/usr/bin/env bash
# tools.sh [NAME...]: builds the pinned development tools (those named, or
# every one) into ./.tools/bin when they are missing or built from another
# version. Safe to run again: a tool already at its pinned version is left
# alone (a second run builds nothing).
#
# Tools (name, Go package, pinned version):
#   mailpit      github.com/axllent/mailpit  v1.33.1  SMTP sink with an HTTP
#                API, used by `make run` (the local relay) and mta's Mailpit
#                test.
#   staticcheck  honnef.co/go/tools/cmd/staticcheck  v0.8.2
#                the linter `make lint` runs after go vet (staticcheck.conf).
#
# The tools come from the Go module proxy with `go install PKG@VERSION`, so
# they need no go.mod entry of ours. ./.tools/ is git-ignored: never commit
# the binaries. Prints nothing but progress on stderr (go install's own
# output goes to MG_LOG_FILE when the caller set it: see lib.sh's quietly);
# exits non-zero when a build fails.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MG_ROOT"
require_go

# MG_TOOLS_BIN is where the tools go.
MG_TOOLS_BIN=$MG_ROOT/.tools/bin

# tools lists "NAME PACKAGE VERSION", one a line.
tools=(
	"mailpit github.com/axllent/mailpit v1.33.1"
	"staticcheck honnef.co/go/tools/cmd/staticcheck v0.8.2"
)

# built_version NAME prints the module version the binary NAME was built
# from (empty when it is absent or not a Go binary of that module).
built_version() {
	local bin=$MG_TOOLS_BIN/$1
	[[ -x $bin ]] || return 0
	go version -m "$bin" 2>/dev/null | awk '$1 == "mod" { print $3; exit }'
}

# ensure_tool NAME PACKAGE VERSION builds PACKAGE@VERSION into
# ./.tools/bin/NAME unless it is there at that version.
ensure_tool() {
	local name=$1 pkg=$2 version=$3
	if [[ $(built_version "$name") == "$version" ]]; then
		return 0
	fi
	log "building $name $version into ./.tools/bin (first run only, about a minute: go install $pkg@$version)…"
	mkdir -p "$MG_TOOLS_BIN"
	# go install ignores our go.mod for PKG@VERSION; GOFLAGS from the
	# caller (say -mod=vendor) would not apply to it.
	quietly env GOBIN="$MG_TOOLS_BIN" GOFLAGS= go install "$pkg@$version" ||
		die "could not build $name $version (go install $pkg@$version)"
	[[ $(built_version "$name") == "$version" ]] ||
		die "./.tools/bin/$name is not $version after go install"
}

# main [NAME...] builds the named tools, every tool when none is named.
main() {
	local line built=0
	for line in "${tools[@]}"; do
		if (($# == 0)) || [[ " $* " == *" ${line%% *} "* ]]; then
			# shellcheck disable=SC2086 # split "NAME PACKAGE VERSION"
			ensure_tool $line
			built=$((built + 1))
		fi
	done
	(($# == 0 || built == $#)) || die "unknown tool in: $* (see the list at the top of scripts/tools.sh)"
}

main "$@"
