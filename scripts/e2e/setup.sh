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
# Usage: scripts/e2e/setup.sh              install what is missing (fast when everything is there)
#        scripts/e2e/setup.sh --check      only report; exit 0 when everything is present, 1 when not
#        scripts/e2e/setup.sh --optional   as the first, but where the prerequisites cannot be installed here
#                                          print "skipped: <reason>" and exit 0 (what `npm test` runs)
# Exit codes: 0 ready (or skipped with --optional); 1 an install failed (or --check found something missing);
#             3 prerequisites cannot be installed here (apt packages missing and no root/apt).
# The runner (scripts/e2e/run.js) treats 3 as "skip" when CAM_LENS_E2E_OPTIONAL=1.
# Every slow step prints a line when it starts and one with its duration when it ends.
#
# The inner installs run in a clean environment. Under `npm test` (or any npm script) npm exports its own
# settings as npm_* variables, among them npm_config_user_agent ("npm/11 node/v20 ..."); an inner npm that
# inherits them reports the OUTER Node, and code-server's postinstall, which reads the Node version from
# that user agent, refuses to install under Node 24 ("requires node v24 ... you are on node v20"). So every
# npm_* variable is dropped here, except the few that carry a user's own choices (registry, proxies, cache,
# user config), and the calling project's node_modules/.bin folders leave PATH.
# CAM_LENS_E2E_APT=0 never runs apt (as if not root): missing packages then mean exit 3.
set -uo pipefail

for v in $(compgen -e); do
  case "$v" in
    npm_config_registry|npm_config_*proxy|npm_config_cafile|npm_config_strict_ssl|npm_config_cache|npm_config_userconfig) ;;
    npm_*) unset "$v" ;;
  esac
done
unset INIT_CWD NODE
PATH="$(printf '%s' "$PATH" | tr ':' '\n' | grep -v '/node_modules/\.bin$' | paste -sd: -)"
export PATH

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
OPTIONAL=0
case "${1:-}" in
  --check) CHECK=1 ;;
  --optional) OPTIONAL=1 ;;
  "") ;;
  -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
  *) echo "setup.sh: unknown option $1 (use --check, --optional or nothing)" >&2; exit 2 ;;
esac

say() { echo "e2e-setup: $*"; }
fail() {
  echo "e2e-setup: FAILED: $1" >&2
  if [ "${2:-1}" = 3 ] && [ "$OPTIONAL" = 1 ]; then
    echo "skipped: the end-to-end and browser tests' prerequisites: $1"
    exit 0
  fi
  exit "${2:-1}"
}

# Step timing: `step "what"` prints "e2e-setup: what ..." now; `done_step "result"` prints the result and the
# seconds since that step began.
STEP_START=0
step() { STEP_START=$(date +%s.%N); say "$* ..."; }
done_step() { say "$* ($(awk -v a="$STEP_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s)"; }

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

can_apt() { [ "${CAM_LENS_E2E_APT:-1}" != 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }

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
    if can_apt; then
      export DEBIAN_FRONTEND=noninteractive
      # Update the package lists only when something is missing (they may be stale or absent on a fresh machine).
      # Other jobs on a shared machine may hold the dpkg/apt locks: wait for them (up to 10 minutes) rather than fail.
      step "apt-get update (the package lists, for: $missing)"
      apt_retry update -qq || fail "apt-get update failed"
      done_step "apt-get update done"
      step "apt-get install $missing"
      # shellcheck disable=SC2086
      apt_retry install -y -qq $missing || fail "apt-get install -y $missing failed"
      done_step "apt packages installed: $missing"
    else
      fail "apt packages missing ($missing) and this user cannot install them (needs root and apt-get)" 3
    fi
  else
    say "apt packages present: ${APT_PACKAGES[*]}"
  fi
fi
have_chromium || fail "no Chromium at $CHROMIUM (set CHROMIUM=/path/to/chromium)" 3

mkdir -p "$CACHE" || fail "cannot create $CACHE"

NPM_LOG="$CACHE/npm-install.log"
# dir, packages... ; a private package.json keeps the install out of any parent project. npm's output goes to
# $NPM_LOG; on failure its error lines (the real cause, e.g. a postinstall's own message) are printed.
npm_install_into() {
  local dir="$1"; shift
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{ "name": "cam-lens-e2e-cache", "private": true }' > "$dir/package.json"
  if (cd "$dir" && npm install --no-audit --no-fund --loglevel=error "$@") >"$NPM_LOG" 2>&1; then return 0; fi
  NPM_CAUSE="$(grep -v -e 'A complete log of this run' -e '^npm error \(code\|path\|command\) ' "$NPM_LOG" |
    sed -e 's/^npm error //' -e '/^[[:space:]]*$/d' | tail -n 4 | paste -sd' ' -)"
  return 1
}
NPM_CAUSE=""

# 2. Node 24 (the npm package ships the binary through a platform-specific dependency).
if have_node24; then
  say "node 24 present: $("$NODE24_BIN/node" -v)"
else
  step "installing node@24 into $CACHE/node24"
  npm_install_into "$CACHE/node24" node@24 || fail "npm install node@24 failed: $NPM_CAUSE (log: $NPM_LOG)"
  have_node24 || fail "node@24 installed but $NODE24_BIN/node -v is not v24"
  done_step "node 24 installed: $("$NODE24_BIN/node" -v)"
fi

# 3. code-server, with Node 24 first on PATH (its install scripts check the Node version and build native modules).
if have_code_server; then
  say "code-server $CODE_SERVER_VERSION present"
else
  step "installing code-server@$CODE_SERVER_VERSION into $CACHE/code-server (a few minutes the first time)"
  # Its native modules build with node-gyp against Node 24's own headers, which the node@24 package ships
  # (node-<os>-<arch>/include/node): otherwise node-gyp downloads them from nodejs.org, which a machine without
  # internet cannot reach, or uses a nodedir set for the system's Node (another version) in ~/.npmrc.
  node24_headers="$(ls -d "$CACHE"/node24/node_modules/node/node_modules/node-*/include/node 2>/dev/null | head -1)"
  install_code_server() { PATH="$NODE24_BIN:$PATH" npm_install_into "$CACHE/code-server" "code-server@$CODE_SERVER_VERSION"; }
  if [ -n "$node24_headers" ]; then
    npm_config_nodedir="$(dirname "$(dirname "$node24_headers")")" install_code_server
  else
    install_code_server
  fi || fail "npm install code-server@$CODE_SERVER_VERSION failed: $NPM_CAUSE (log: $NPM_LOG)"
  have_code_server || fail "code-server installed but $CS_PKG does not say $CODE_SERVER_VERSION"
  done_step "code-server $CODE_SERVER_VERSION installed"
fi

# 4. playwright-core (no browser download: it drives the system Chromium).
if have_playwright; then
  say "playwright-core $PLAYWRIGHT_VERSION present"
else
  step "installing playwright-core@$PLAYWRIGHT_VERSION into $CACHE/tools"
  npm_install_into "$CACHE/tools" "playwright-core@$PLAYWRIGHT_VERSION" || fail "npm install playwright-core failed: $NPM_CAUSE (log: $NPM_LOG)"
  have_playwright || fail "playwright-core installed but its version is not $PLAYWRIGHT_VERSION"
  done_step "playwright-core $PLAYWRIGHT_VERSION installed"
fi

say "ready in $(( $(date +%s) - start )) s (cache $CACHE)"
exit 0
