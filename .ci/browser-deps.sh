#!/usr/bin/env bash
# Install Debian's Chromium for the real-browser test (tests/test_browser_e2e.py) when it is missing.
# Playwright drives it through executable_path=/usr/bin/chromium; no Playwright browser download is needed.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "browser-deps: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
echo "browser-deps: installed $(/usr/bin/chromium --version 2>/dev/null | head -1)"
