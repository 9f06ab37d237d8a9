#!/usr/bin/env bash
# Install Node 22 (as the npm package node@22) and the MCP npm packages the tests use
# into tests/node/node_modules. Idempotent; fails loudly.
#
#   tests/node/install.sh            # npm ci (or npm install when there is no lock)
#
# Needs only npm (any Node version runs it); the Node >= 22 the packages need comes
# from the registry as the `node` package (node_modules/.bin/node).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if ! command -v npm >/dev/null 2>&1; then
    echo "tests/node/install.sh: npm not found on PATH; install Node.js (any version) with npm" >&2
    exit 1
fi

# node@22's preinstall script fetches the platform binary; package.json approves it
# (allowScripts) for npm versions that block dependency install scripts by default.
# A stamp of the lock file's hash skips the reinstall when nothing changed (CI re-runs).
stamp="node_modules/.lockgate-lock-sha256"
want="$(sha256sum package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x node_modules/.bin/node ]]; then
    echo "tests/node: node_modules matches package-lock.json, not reinstalling"
elif [[ -f package-lock.json ]]; then
    npm ci --no-audit --no-fund
else
    npm install --no-audit --no-fund
fi

node_bin="$here/node_modules/.bin/node"
if [[ ! -x "$node_bin" ]]; then
    echo "tests/node/install.sh: $node_bin missing after install (was node@22's install script skipped?)" >&2
    exit 1
fi
version="$("$node_bin" --version)"
major="${version#v}"
major="${major%%.*}"
if (( major < 22 )); then
    echo "tests/node/install.sh: $node_bin is $version, need >= 22" >&2
    exit 1
fi
for pkg in @modelcontextprotocol/conformance @modelcontextprotocol/server-everything \
    oidc-provider mcp-remote @anthropic-ai/claude-code; do
    if [[ ! -f "node_modules/$pkg/package.json" ]]; then
        echo "tests/node/install.sh: $pkg missing from $here/node_modules" >&2
        exit 1
    fi
done
echo "tests/node: node $version, $(cd node_modules/@modelcontextprotocol && for p in conformance server-everything; do printf '%s@%s ' "$p" "$(sed -n 's/^  "version": "\(.*\)",/\1/p' "$p/package.json")"; done)"
echo "$want" >"$stamp"
