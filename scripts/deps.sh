#!/usr/bin/env bash
# Installs what a fresh Debian machine with a Rust toolchain lacks for building and testing
# FlexiProxy: cmake (Pingora builds zlib-ng with it), a C compiler, Python's venv module
# (the SDK end-to-end tests), Node.js/npm (Claude Code end-to-end test), and Chromium with
# its WebDriver and a CJK font (the panel's browser test, tests/e2e/panel_browser.py, and its
# screenshots of the Chinese pages), Firefox ESR with geckodriver (built with cargo into
# target/tools: Debian does not package it), and Redis and PostgreSQL server binaries (the testkit starts
# its own throwaway servers on loopback ports; the system services are not used).
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v flock >/dev/null 2>&1 || need+=(util-linux)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if command -v python3 >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  python3 -m venv "$tmp/v" >/dev/null 2>&1 || need+=(python3-venv)
  rm -rf "$tmp"
fi
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
dpkg -s ca-certificates >/dev/null 2>&1 || need+=(ca-certificates)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
[ -x /usr/bin/firefox-esr ] || need+=(firefox-esr)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# initdb/pg_ctl live in /usr/lib/postgresql/<version>/bin, not on PATH.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
{ command -v fc-list >/dev/null 2>&1 && fc-list :lang=zh | grep -q .; } || need+=(fonts-wqy-zenhei)

if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

# geckodriver, pinned, from crates.io (Mozilla publishes it there); built once per checkout.
GECKODRIVER_VERSION=0.37.1
root="$(cd "$(dirname "$0")/.." && pwd)"
gecko="$root/target/tools/bin/geckodriver"
if ! { [ -x "$gecko" ] && "$gecko" --version 2>/dev/null | grep -q "geckodriver $GECKODRIVER_VERSION"; }; then
  echo "building geckodriver $GECKODRIVER_VERSION" >&2
  cargo install --quiet --locked geckodriver --version "$GECKODRIVER_VERSION" --root "$root/target/tools"
fi
