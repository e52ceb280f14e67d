#!/usr/bin/env bash
# install.sh <scratch_dir>: installs the pinned LangGraph.js packages (package.json + lock) and bench.mjs into <scratch_dir>.
#
# better-sqlite3 (needed by @langchain/langgraph-checkpoint-sqlite) is a native module. Its install
# script first tries a prebuilt binary from GitHub, then falls back to node-gyp, which downloads
# node headers from nodejs.org. Neither host is reachable here, so we skip the download attempt
# (npm_config_build_from_source) and point node-gyp at the headers installed with node itself
# (npm_config_nodedir). Idempotent: skips npm when the same lock is already installed for this node.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 <scratch_dir>" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
scratch="$1"
mkdir -p "$scratch"
scratch="$(cd "$scratch" && pwd)"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "install.sh: missing $*, and no apt-get to install it" >&2
    return 1
  fi
  if [ "$apt_updated" -eq 0 ]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  # --no-remove: never trade an installed package (e.g. a NodeSource nodejs) for these.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-remove "$@" >/dev/null
}

# Node 20+ (better-sqlite3 12 supports 20.x and later).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "install.sh: node and npm (Node 20+) are required" >&2
  exit 1
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "install.sh: Node $(node -v) is too old; Node 20+ is required" >&2
  exit 1
fi

# Compiler toolchain and python3 for node-gyp.
missing=()
command -v make >/dev/null || missing+=(make)
command -v g++ >/dev/null || missing+=(g++)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}" || exit 1; fi

# Node headers next to the node binary: the NodeSource nodejs package ships them in
# <prefix>/include/node; Debian's own nodejs package (20.x from Debian 13 on) puts them in
# libnode-dev, installed only when apt offers it for the same major version as node.
node_prefix="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
headers_major() {
  sed -n 's/^#define NODE_MAJOR_VERSION \([0-9]*\)$/\1/p' "$node_prefix/include/node/node_version.h" 2>/dev/null || true
}
if [ "$(headers_major)" != "$node_major" ] && [ "$node_prefix" = /usr ] && command -v apt-cache >/dev/null; then
  candidate="$(apt-cache policy libnode-dev 2>/dev/null | sed -n 's/^ *Candidate: *\([0-9]*\).*/\1/p')"
  if [ "$candidate" = "$node_major" ]; then apt_install libnode-dev || true; fi
fi
if [ "$(headers_major)" != "$node_major" ]; then
  echo "install.sh: no headers for Node $node_major in $node_prefix/include/node (node-gyp would" \
    "download them from nodejs.org); install the dev headers matching $(node -v)" >&2
  exit 1
fi

cp "$here/bench.mjs" "$scratch/bench.mjs"

# The stamp: the lock, package.json and the node ABI the native module was built for.
stamp="$( (cat "$here/package.json" "$here/package-lock.json"; node -p 'process.versions.modules') | sha256sum | cut -d' ' -f1)"
check_sqlite() { (cd "$scratch" && node -e 'new (require("better-sqlite3"))(":memory:").close()') 2>/dev/null; }
if [ -f "$scratch/.install-stamp" ] && [ "$(cat "$scratch/.install-stamp")" = "$stamp" ] && check_sqlite; then
  exit 0
fi

rm -f "$scratch/.install-stamp"
cp "$here/package.json" "$here/package-lock.json" "$scratch/"
export npm_config_nodedir="$node_prefix"
export npm_config_build_from_source=better-sqlite3
echo "install.sh: npm ci in $scratch (builds better-sqlite3 from source, about a minute)" >&2
(cd "$scratch" && npm ci --no-audit --no-fund --no-update-notifier --loglevel=error 1>&2)
if ! check_sqlite; then
  # Newer npm versions may hold back install scripts not listed in allowScripts: build it explicitly.
  (cd "$scratch" && npm rebuild better-sqlite3 --no-audit --no-fund --no-update-notifier --loglevel=error 1>&2)
fi
if ! check_sqlite; then
  echo "install.sh: better-sqlite3 did not build in $scratch" >&2
  exit 1
fi
echo "$stamp" >"$scratch/.install-stamp"
