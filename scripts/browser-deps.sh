#!/usr/bin/env bash
# What tests/demo/test_browser.py needs: Debian's headless Chromium and its driver, and
# Selenium (PyPI) in the venv. Idempotent: apt runs (with its update) only when missing.
#   bash scripts/browser-deps.sh [VENV]     (VENV defaults to .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing ${need[*]}: apt-get install --no-install-recommends ${need[*]} (as root)" >&2
    exit 0  # the browser test skips, saying why
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ -x "$venv/bin/python" ] && ! "$venv/bin/python" -c "import selenium" 2>/dev/null; then
  "$venv/bin/python" -m pip install --quiet "selenium>=4.20"
fi
