#!/usr/bin/env bash
# Debian's chromium for the browser tests (tests/test_page_engine.py, tests/test_serve_browser.py).
# Part of README's test command; does nothing when a chromium is already there. Playwright
# drives this binary (no browser download: the machines reach package registries only).
set -euo pipefail
if [ -n "${SAMPLER_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser.sh: no apt-get here; install chromium and/or set SAMPLER_CHROMIUM" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
chromium --version
