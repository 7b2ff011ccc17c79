#!/usr/bin/env bash
# deploy/dev/browser.sh - installs the browser the browser tests drive:
# Debian's `chromium` and `chromium-driver` (/usr/bin/chromium,
# /usr/bin/chromedriver), from the machine's own package sources. Never a
# downloaded browser build.
#
# Usage: deploy/dev/browser.sh          # install if missing (idempotent)
#        deploy/dev/browser.sh check    # exit 1 if either is missing
#
# Needs root (or sudo) to install. `deploy/dev/services.sh up` (and so the
# README's test command and .ci/run) calls it, so a clean machine of this
# kind gets the browser before the tests run.
set -euo pipefail

log() { printf '[browser] %s\n' "$*" >&2; }

present() { [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; }

if [[ ${1:-install} == check ]]; then
    present
    exit
fi

if present; then
    log "chromium and chromedriver are installed ($(/usr/bin/chromedriver --version 2>/dev/null | head -n 1))"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    log "no apt-get here: install Debian's chromium and chromium-driver (or your system's) by hand"
    exit 1
fi

as_root=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { log "installing needs root; run as root or install sudo"; exit 1; }
    as_root=(sudo)
fi

log "installing Debian's chromium and chromium-driver (a few minutes on a clean machine)"
export DEBIAN_FRONTEND=noninteractive
# A stale package list is the usual reason an install cannot find them.
"${as_root[@]}" apt-get update -qq >&2
"${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2
present || { log "the install finished but /usr/bin/chromium or /usr/bin/chromedriver is missing"; exit 1; }
log "installed $(/usr/bin/chromedriver --version 2>/dev/null | head -n 1)"
