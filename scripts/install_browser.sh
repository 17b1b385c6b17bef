#!/usr/bin/env bash
# What the browser tests need (tests/test_page_engine.py, tests/test_serve_browser.py,
# tests/test_page_a11y.py): Debian's chromium, which Playwright drives (no browser download:
# the machines reach package registries only), and axe-core (npm, pinned) for the page's
# accessibility scan, in ~/.cache/sampler/npm (or $SAMPLER_NPM_PREFIX). Part of README's test
# command; does nothing for what is already there.
set -euo pipefail
AXE_VERSION="4.14.1"  # tests/axe.py reads the same pin
if [ -z "${SAMPLER_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser.sh: no apt-get here; install chromium and/or set SAMPLER_CHROMIUM" >&2
    exit 1
  fi
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  chromium --version
fi
PREFIX="${SAMPLER_NPM_PREFIX:-$HOME/.cache/sampler/npm}"
AXE="$PREFIX/node_modules/axe-core"
if [ -f "$AXE/axe.min.js" ] && grep -q "\"version\": \"$AXE_VERSION\"" "$AXE/package.json"; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "install_browser.sh: npm is missing: install Node.js with npm (e.g. apt-get install npm)," \
    "then run this again; the accessibility test needs axe-core@$AXE_VERSION from npm" >&2
  exit 1
fi
mkdir -p "$PREFIX"
npm install --prefix "$PREFIX" --no-save --no-audit --no-fund "axe-core@$AXE_VERSION" >/dev/null
echo "axe-core $AXE_VERSION in $AXE"
