#!/usr/bin/env bash
# Installs the real clients the end-to-end tests drive, into target/e2e (idempotent):
#   python  - a virtualenv with the official `anthropic`, `openai` and `google-genai` SDKs,
#             and Selenium for the panel's browser test
#   claude  - Claude Code from npm
#   cline   - the Cline CLI from npm (its platform binary is an npm dependency)
#   codex   - Codex CLI from npm (its native binary is the optional dependency
#             @openai/codex-linux-x64, ~420 MB)
#   gemini  - Gemini CLI from npm
#   oidc    - the npm `oidc-provider` (a real OpenID provider) that tests/e2e/oidc_provider.mjs
#             runs for the single sign-on tests
# Usage: tests/e2e/setup.sh [python|claude|cline|codex|gemini|oidc|all]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${FLEXIPROXY_E2E_DIR:-$root/target/e2e}
what=${1:-all}
mkdir -p "$dir"
CLAUDE_CODE_VERSION=2.1.332
CLINE_VERSION=3.0.65
CODEX_VERSION=0.171.0
GEMINI_CLI_VERSION=0.61.0
OIDC_PROVIDER_VERSION=9.13.3

setup_python() {
  if "$dir/venv/bin/python" -c 'import anthropic, openai, google.genai, selenium' 2>/dev/null; then
    return
  fi
  local pip=("$dir/venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/tests/e2e/requirements.txt")
  # An existing venv only gets what requirements.txt gained; a broken one is made anew.
  if [ -x "$dir/venv/bin/pip" ] && "${pip[@]}"; then
    return
  fi
  rm -rf "$dir/venv"
  python3 -m venv "$dir/venv"
  "${pip[@]}"
}

setup_claude() {
  local bin="$dir/node/node_modules/.bin/claude"
  if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
    return
  fi
  mkdir -p "$dir/node"
  # The package links its platform binary (an npm dependency) in a postinstall script.
  npm install --silent --no-audit --no-fund --prefix "$dir/node" "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION"
  "$bin" --version >/dev/null
}

setup_cline() {
  local bin="$dir/cline/node_modules/.bin/cline"
  if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
    return
  fi
  mkdir -p "$dir/cline"
  npm install --silent --no-audit --no-fund --prefix "$dir/cline" "cline@$CLINE_VERSION"
  "$bin" --version >/dev/null
}

setup_codex() {
  local bin="$dir/codex/node_modules/.bin/codex"
  # `--version` with a throwaway HOME: Codex writes helper links under ~/.codex otherwise.
  local probe_home
  probe_home=$(mktemp -d)
  if [ -x "$bin" ] && HOME=$probe_home CODEX_HOME=$probe_home "$bin" --version >/dev/null 2>&1; then
    rm -rf "$probe_home"
    return
  fi
  mkdir -p "$dir/codex"
  npm install --silent --no-audit --no-fund --prefix "$dir/codex" "@openai/codex@$CODEX_VERSION"
  HOME=$probe_home CODEX_HOME=$probe_home "$bin" --version >/dev/null
  rm -rf "$probe_home"
}

setup_gemini() {
  local bin="$dir/gemini/node_modules/.bin/gemini"
  if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
    return
  fi
  mkdir -p "$dir/gemini"
  npm install --silent --no-audit --no-fund --prefix "$dir/gemini" "@google/gemini-cli@$GEMINI_CLI_VERSION"
  "$bin" --version >/dev/null
}

setup_oidc() {
  local pkg="$dir/oidc/node_modules/oidc-provider/package.json"
  if [ -f "$pkg" ] && grep -q "\"version\": \"$OIDC_PROVIDER_VERSION\"" "$pkg"; then
    return
  fi
  mkdir -p "$dir/oidc"
  npm install --silent --no-audit --no-fund --prefix "$dir/oidc" "oidc-provider@$OIDC_PROVIDER_VERSION"
}

case "$what" in
  python) setup_python ;;
  claude) setup_claude ;;
  cline) setup_cline ;;
  codex) setup_codex ;;
  gemini) setup_gemini ;;
  oidc) setup_oidc ;;
  all) setup_python; setup_claude; setup_cline; setup_codex; setup_gemini; setup_oidc ;;
  *) echo "usage: $0 [python|claude|cline|codex|gemini|oidc|all]" >&2; exit 2 ;;
esac
