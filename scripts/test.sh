#!/usr/bin/env bash
# Runs every test: unit, property, integration (real Pingora listener, fake provider over
# HTTP) and end-to-end (official Python SDKs, Claude Code), installing what they need first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
tests/e2e/setup.sh all
cargo test --workspace --locked "$@"
