#!/usr/bin/env bash
# Builds FlexiProxy (release) and runs it on the shipped configuration, conf/.
# Extra arguments go to `flexiproxy serve`, e.g. --config other.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked
exec target/release/flexiproxy serve --config conf/flexiproxy.yaml "$@"
