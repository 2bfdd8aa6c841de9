#!/usr/bin/env bash
# Installs what the end-to-end tests need (see ../shared/docs/E2E.md §1), OUTSIDE the clone, so repeated
# runs on one machine reuse it (like @vscode/test-electron's .vscode-test/, but in the user cache):
#
#   apt (root only):  libkrb5-dev (code-server's native kerberos module builds against it), chromium
#   $CACHE/node24       npm package node@24        -> node24/node_modules/node/bin/node
#   $CACHE/code-server  code-server@4.139.1        (installed with Node 24 first on PATH; it refuses older Node)
#   $CACHE/tools        playwright-core            (drives the system Chromium over CDP; downloads no browser)
#
# CACHE = $CAM_LENS_E2E_CACHE, default ${XDG_CACHE_HOME:-$HOME/.cache}/cam-lens-e2e.
#
# Usage: scripts/e2e/setup.sh            install what is missing (fast when everything is there)
#        scripts/e2e/setup.sh --check    only report; exit 0 when everything is present, 1 when not
# Exit codes: 0 ready; 1 an install failed (or --check found something missing);
#             3 prerequisites cannot be installed here (apt packages missing and no root/apt).
# The runner (scripts/e2e/run.js) treats 3 as "skip" when CAM_LENS_E2E_OPTIONAL=1.
set -uo pipefail

CACHE="${CAM_LENS_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cam-lens-e2e}"
CODE_SERVER_VERSION="${CAM_LENS_CODE_SERVER_VERSION:-4.139.1}"
PLAYWRIGHT_VERSION="${CAM_LENS_PLAYWRIGHT_VERSION:-1.65.1}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
# shellcheck disable=SC2206
APT_PACKAGES=(${CAM_LENS_E2E_APT_PACKAGES:-libkrb5-dev chromium})

NODE24_BIN="$CACHE/node24/node_modules/node/bin"
CS_PKG="$CACHE/code-server/node_modules/code-server/package.json"
PW_PKG="$CACHE/tools/node_modules/playwright-core/package.json"

CHECK=0
case "${1:-}" in
  --check) CHECK=1 ;;
  "") ;;
  -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
  *) echo "setup.sh: unknown option $1 (use --check or nothing)" >&2; exit 2 ;;
esac

say() { echo "e2e-setup: $*"; }
fail() { echo "e2e-setup: FAILED: $1" >&2; exit "${2:-1}"; }

pkg_version() { # prints the "version" of a package.json, or nothing
  [ -f "$1" ] && sed -n 's/^  "version": "\([^"]*\)".*/\1/p' "$1" | head -1
}

apt_missing() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  echo "${missing[@]:-}"
}

have_node24() { [ -x "$NODE24_BIN/node" ] && "$NODE24_BIN/node" -v 2>/dev/null | grep -q '^v24\.'; }
have_code_server() { [ "$(pkg_version "$CS_PKG")" = "$CODE_SERVER_VERSION" ] && [ -x "$CACHE/code-server/node_modules/.bin/code-server" ]; }
have_playwright() { [ "$(pkg_version "$PW_PKG")" = "$PLAYWRIGHT_VERSION" ]; }
have_chromium() { [ -x "$CHROMIUM" ]; }

report() {
  local ok=0
  say "cache: $CACHE"
  if command -v dpkg-query >/dev/null; then
    local m; m="$(apt_missing)"
    if [ -z "$m" ]; then say "apt packages: ${APT_PACKAGES[*]} present"; else say "apt packages missing: $m"; ok=1; fi
  fi
  if have_chromium; then say "chromium: $CHROMIUM ($("$CHROMIUM" --version 2>/dev/null | head -1))"; else say "chromium: missing ($CHROMIUM)"; ok=1; fi
  if have_node24; then say "node 24: $("$NODE24_BIN/node" -v)"; else say "node 24: missing"; ok=1; fi
  if have_code_server; then say "code-server: $CODE_SERVER_VERSION"; else say "code-server $CODE_SERVER_VERSION: missing (found: $(pkg_version "$CS_PKG"))"; ok=1; fi
  if have_playwright; then say "playwright-core: $PLAYWRIGHT_VERSION"; else say "playwright-core $PLAYWRIGHT_VERSION: missing"; ok=1; fi
  return $ok
}

if [ "$CHECK" = 1 ]; then
  if report; then say "everything present"; exit 0; else say "not ready: run scripts/e2e/setup.sh"; exit 1; fi
fi

start=$(date +%s)

apt_retry() { # apt-get with a lock timeout, retried while another apt/dpkg holds a lock it does not wait for
  local i out
  for i in $(seq 1 20); do
    if out="$(apt-get -o DPkg::Lock::Timeout=30 "$@" 2>&1)"; then return 0; fi
    if ! grep -qi 'could not get lock\|unable to acquire\|unable to lock' <<<"$out"; then echo "$out" | tail -5 >&2; return 1; fi
    say "apt is busy (another process holds its lock); waiting (try $i/20)"
    sleep 30
  done
  return 1
}

# 1. apt packages (only where we are root and apt exists; otherwise they must be there already).
if command -v dpkg-query >/dev/null; then
  missing="$(apt_missing)"
  if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      say "apt-get install $missing"
      export DEBIAN_FRONTEND=noninteractive
      # Update the package lists only when something is missing (they may be stale or absent on a fresh machine).
      # Other jobs on a shared machine may hold the dpkg/apt locks: wait for them (up to 10 minutes) rather than fail.
      apt_retry update -qq || fail "apt-get update failed"
      # shellcheck disable=SC2086
      apt_retry install -y -qq $missing || fail "apt-get install -y $missing failed"
    else
      fail "apt packages missing ($missing) and this user cannot install them (needs root and apt-get)" 3
    fi
  else
    say "apt packages present: ${APT_PACKAGES[*]}"
  fi
fi
have_chromium || fail "no Chromium at $CHROMIUM (set CHROMIUM=/path/to/chromium)" 3

mkdir -p "$CACHE" || fail "cannot create $CACHE"

npm_install_into() { # dir, packages... ; a private package.json keeps the install out of any parent project
  local dir="$1"; shift
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{ "name": "cam-lens-e2e-cache", "private": true }' > "$dir/package.json"
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error "$@")
}

# 2. Node 24 (the npm package ships the binary through a platform-specific dependency).
if have_node24; then
  say "node 24 present: $("$NODE24_BIN/node" -v)"
else
  say "installing node@24 into $CACHE/node24"
  npm_install_into "$CACHE/node24" node@24 || fail "npm install node@24 failed"
  have_node24 || fail "node@24 installed but $NODE24_BIN/node -v is not v24"
  say "node 24 installed: $("$NODE24_BIN/node" -v)"
fi

# 3. code-server, with Node 24 first on PATH (its install scripts check the Node version and build native modules).
if have_code_server; then
  say "code-server $CODE_SERVER_VERSION present"
else
  say "installing code-server@$CODE_SERVER_VERSION into $CACHE/code-server (a few minutes the first time)"
  PATH="$NODE24_BIN:$PATH" npm_install_into "$CACHE/code-server" "code-server@$CODE_SERVER_VERSION" ||
    fail "npm install code-server@$CODE_SERVER_VERSION failed (is libkrb5-dev installed?)"
  have_code_server || fail "code-server installed but $CS_PKG does not say $CODE_SERVER_VERSION"
  say "code-server $CODE_SERVER_VERSION installed"
fi

# 4. playwright-core (no browser download: it drives the system Chromium).
if have_playwright; then
  say "playwright-core $PLAYWRIGHT_VERSION present"
else
  say "installing playwright-core@$PLAYWRIGHT_VERSION into $CACHE/tools"
  npm_install_into "$CACHE/tools" "playwright-core@$PLAYWRIGHT_VERSION" || fail "npm install playwright-core failed"
  have_playwright || fail "playwright-core installed but its version is not $PLAYWRIGHT_VERSION"
fi

say "ready in $(( $(date +%s) - start )) s (cache $CACHE)"
exit 0
