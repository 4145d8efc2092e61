#!/usr/bin/env bash
# Re-vendor the web UI's JavaScript from the npm registry, at the pinned versions below, into
# server/src/plait_server/ui/static/vendor/ (with each package's licence). `make vendor-ui` runs
# it. Nothing runs node: `npm pack` only downloads the published tarballs, and we copy the
# ready-built files out of them, so the UI has no build step and installs need no node.
#
# To upgrade: change a version here, run `make vendor-ui`, read the diff of VERSIONS.txt and
# the files, run the UI's browser tests (server/tests/test_ui_browser.py), commit.
set -euo pipefail

HTMX=2.0.11          # htmx.org: partial page updates (hx-get, hx-post, hx-swap...)
HTMX_SSE=2.2.4       # htmx-ext-sse: Server-Sent Events for htmx 2 (live states and logs)
DAGRE=3.1.3          # @dagrejs/dagre: layered graph layout for the flow schematic (graphlib bundled)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="$here/../src/plait_server/ui/static/vendor"
command -v npm >/dev/null || { echo "vendor-ui needs npm (apt-get install npm)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

# name@version  file-in-the-package  copied-as
packages=(
  "htmx.org@$HTMX dist/htmx.min.js htmx.min.js"
  "htmx-ext-sse@$HTMX_SSE dist/sse.min.js htmx-ext-sse.min.js"
  "@dagrejs/dagre@$DAGRE dist/dagre.min.js dagre.min.js"
)

mkdir -p "$dest"
rm -f "$dest"/*.js "$dest"/*.txt "$dest"/LICENSE.* "$dest"/VERSIONS.txt
{
  echo "# Vendored by server/scripts/vendor-ui.sh (make vendor-ui) from the npm registry; do not edit."
  echo "# package@version  file  sha512 integrity of the package tarball (npm's)"
} >"$dest/VERSIONS.txt"
for entry in "${packages[@]}"; do
  read -r spec file target <<<"$entry"
  json="$(npm pack --json --silent "$spec")"
  tarball="$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["filename"])')"
  integrity="$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["integrity"])')"
  dir="unpacked-${target%.js}"
  mkdir -p "$dir"
  tar xzf "$tarball" -C "$dir"
  cp "$dir/package/$file" "$dest/$target"
  cp "$dir/package/LICENSE" "$dest/LICENSE.${target%.min.js}"
  # Licences of code bundled into the file (dagre bundles graphlib), where the package lists them.
  if [ -f "$dir/package/$file.LEGAL.txt" ]; then
    cp "$dir/package/$file.LEGAL.txt" "$dest/$target.LEGAL.txt"
  fi
  echo "$spec  $target  $integrity" >>"$dest/VERSIONS.txt"
  echo "vendored $spec -> $target"
done
