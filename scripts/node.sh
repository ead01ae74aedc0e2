#!/usr/bin/env bash
# Prints the path of a Node.js binary of the given major version, installing it from the npm registry
# (the `node` package) into ~/.cache/switchboard/node-<major> when it is missing. `system` prints the
# machine's own. Used by CI to run the suite on the Node lines users run (see .ci/run).
#
#   scripts/node.sh 24|26|22|system
set -euo pipefail
major=${1:?usage: scripts/node.sh <major>|system}
if [ "$major" = system ]; then command -v node; exit 0; fi
case "$major" in *[!0-9]*) echo "node.sh: a major version number or 'system' (got '$major')" >&2; exit 2 ;; esac
dir=${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}/node-$major
bin=$dir/node_modules/.bin/node
if [ ! -x "$bin" ] || ! "$bin" --version 2>/dev/null | grep -q "^v$major\."; then
  echo "node.sh: installing node@$major from the npm registry into $dir" >&2
  npm install --prefix "$dir" "node@$major" --no-audit --no-fund --loglevel=error >/dev/null
fi
"$bin" --version | grep -q "^v$major\." || { echo "node.sh: $bin is not Node $major" >&2; exit 1; }
echo "$bin"
