#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/web, web/e2e): Playwright cannot download its
# own browser here, so it drives /usr/bin/chromium (web/playwright.config.ts). Installs it only
# when missing; quiet and idempotent. Needs root (or sudo) and Debian's package lists.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "ensure_chromium: /usr/bin/chromium is missing; install it as root: apt-get install -y chromium" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "ensure_chromium: installing Debian's chromium for the browser tests" >&2
if ! "${as_root[@]}" apt-get install -y -qq chromium >/dev/null; then
  # A fresh machine may not have the package lists yet.
  "${as_root[@]}" apt-get update -qq >/dev/null
  "${as_root[@]}" apt-get install -y -qq chromium >/dev/null
fi
test -x /usr/bin/chromium
