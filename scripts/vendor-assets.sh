#!/usr/bin/env bash
# vendor-assets.sh: copy the console's third-party browser assets, pinned
# in package.json / package-lock.json, from node_modules into
# console/assets/vendor (embedded in the binary; committed, so that `go
# build` works on a fresh clone without npm), each package with its
# licence, and write console/assets/vendor/MANIFEST (package, version,
# SHA-256 of each copied file). console's TestVendoredAssets checks the
# MANIFEST against package-lock.json and the files.
#   scripts/vendor-assets.sh          copy (runs `npm ci` when node_modules is stale)
#   scripts/vendor-assets.sh --check  exit non-zero when the copies differ from node_modules
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dest=console/assets/vendor
# package, then the files it ships that the console serves.
assets=(
	"htmx.org dist/htmx.min.js LICENSE"
	"uplot dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE"
)

if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
	printf '==> npm ci\n' >&2
	npm ci --no-audit --no-fund >&2
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
manifest="$out/MANIFEST"
printf '# package version file sha256 (written by scripts/vendor-assets.sh)\n' >"$manifest"
for entry in "${assets[@]}"; do
	read -r pkg files <<<"$entry"
	version=$(node -p "require('./node_modules/$pkg/package.json').version")
	mkdir -p "$out/$pkg"
	for f in $files; do
		cp "node_modules/$pkg/$f" "$out/$pkg/$(basename "$f")"
		sum=$(sha256sum "$out/$pkg/$(basename "$f")" | cut -d' ' -f1)
		printf '%s %s %s %s\n' "$pkg" "$version" "$(basename "$f")" "$sum" >>"$manifest"
	done
done

if [[ ${1:-} == --check ]]; then
	if ! diff -r "$out" "$dest" >/dev/null; then
		printf 'error: %s differs from node_modules: run scripts/vendor-assets.sh\n' "$dest" >&2
		exit 1
	fi
	exit 0
fi
rm -rf "$dest"
cp -r "$out" "$dest"
printf 'wrote %s\n' "$dest" >&2
