#!/usr/bin/env bash
# Fetch the browser libraries pinned in package-lock.json (npm ci) and copy the files
# the UI serves into core/static/vendor/ (gitignored; shipped in the wheel as package
# data). Idempotent: npm ci is skipped when node_modules already matches the lockfile.
#
#   scripts/build-static.sh            # from anywhere
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENDOR="$ROOT/core/static/vendor"
cd "$ROOT"

if ! command -v npm >/dev/null 2>&1; then
    echo "build-static.sh: npm is required (apt-get install -y npm)" >&2
    exit 1
fi

# npm writes node_modules/.package-lock.json on install; when it equals the lockfile's
# package set there is nothing to do.
stamp="node_modules/.archnest-lock.sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" >"$stamp"
fi

copy() {
    # copy SRC DEST-NAME: only when the content changed, so mtimes stay stable.
    local src="node_modules/$1" dest="$VENDOR/$2"
    if [[ ! -f "$src" ]]; then
        echo "build-static.sh: missing $src (package layout changed?)" >&2
        exit 1
    fi
    if ! cmp -s "$src" "$dest" 2>/dev/null; then
        install -m 0644 "$src" "$dest"
    fi
}

mkdir -p "$VENDOR"
copy htmx.org/dist/htmx.min.js htmx.min.js
copy @xterm/xterm/lib/xterm.js xterm.js
copy @xterm/xterm/css/xterm.css xterm.css
copy @xterm/addon-fit/lib/addon-fit.js addon-fit.js
for pkg in htmx.org @xterm/xterm @xterm/addon-fit; do
    copy "$pkg/LICENSE" "LICENSE.$(basename "$pkg")"
done
echo "build-static.sh: vendor assets ready in core/static/vendor"
