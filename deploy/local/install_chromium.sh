#!/usr/bin/env bash
# Install Debian's chromium for notify's headless browser test (ARCHITECTURE.md "Real parts": browser).
# Idempotent: does nothing when /usr/bin/chromium already exists. Needs root (or sudo) and apt.
# Never downloads a browser through Playwright; tests launch /usr/bin/chromium directly.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install_chromium.sh: need root or sudo to apt-get install chromium" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium
/usr/bin/chromium --version
