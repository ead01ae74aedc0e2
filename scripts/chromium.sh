#!/usr/bin/env bash
# Makes sure a Chromium for the console's browser tests is installed (Debian's `chromium` package).
# Prints its path. Without root and without Chromium it says so and exits 0: the browser tests then
# skip with that reason (CHROMIUM_PATH overrides the path).
set -euo pipefail
path=${CHROMIUM_PATH:-/usr/bin/chromium}
if [ -x "$path" ]; then
  echo "chromium.sh: $path ($("$path" --version 2>/dev/null | head -1))"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
  echo "chromium.sh: installing Debian's chromium (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium > /tmp/chromium-install.log 2>&1 || {
    DEBIAN_FRONTEND=noninteractive apt-get update > /dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium > /tmp/chromium-install.log 2>&1
  }
  echo "chromium.sh: $path ($("$path" --version 2>/dev/null | head -1))"
  exit 0
fi
echo "chromium.sh: no Chromium at $path and no root to install it: the console's browser tests will skip (install Debian's chromium, or set CHROMIUM_PATH)"
