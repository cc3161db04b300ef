#!/usr/bin/env bash
# The one entry point:  bash scripts/dev.sh start | test [jest args] | asan [jest args] | lint | setup
# Every command first runs `setup`, which installs and builds only what is missing or out of date.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "setup: $*" >&2; }

# haproxy: the load balancer of scripts/fleet.sh and of the fleet fault test (test/fleet.e2e.test.ts).
APT_PACKAGES=(libopencv-dev cmake g++ libjpeg-dev pkg-config python3-opencv chromium haproxy)
# Only `lint` needs them: the native sources' format and clang-tidy, which parses the sources as the build does (hence
# the build's headers: OpenCV, libjpeg, a compiler and cmake for the compile commands).
LINT_PACKAGES=(clang-format clang-tidy libopencv-dev cmake g++ libjpeg-dev pkg-config)
ADDON=native/build/Release/faceid.node
TEST_ADDON=native/build-test/Release/faceid.node

# Installs the packages given (default: APT_PACKAGES) that are missing.
setup_apt() {
  local missing=() pkg
  local wanted=("$@")
  [ ${#wanted[@]} -eq 0 ] && wanted=("${APT_PACKAGES[@]}")
  for pkg in "${wanted[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { say "missing ${missing[*]}; install them as root (apt-get install)"; exit 1; }
    sudo=(sudo)
  fi
  say "installing ${missing[*]} with apt-get (OpenCV is ~250 packages, about a minute)"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

setup_npm() {
  # npm writes node_modules/.package-lock.json on every install: older than the lock file means stale.
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "npm ci"
    npm ci --no-audit --no-fund
  fi
}

setup_assets() {
  # Fast (hash check only) when the cache is already populated.
  node scripts/fetch-assets.js all
}

# True when the addon file $1 is missing or older than a native source.
addon_stale() {
  [ ! -f "$1" ] || [ -n "$(find native/src native/CMakeLists.txt -newer "$1" -print -quit)" ]
}

setup_addon() {
  if [ ! -f native/CMakeLists.txt ]; then
    say "native/CMakeLists.txt not found; skipping the native addon"
    return
  fi
  if addon_stale "$ADDON"; then
    say "building the native addon (first run takes ~1 min)"
    npm run --silent build:native
  fi
}

# The tests' build (native/build-test): the product addon plus the switch that turns wiping off, which the zeroing
# proofs' control runs need to show their scan would see a leak. Only `test` builds it.
setup_test_addon() {
  if addon_stale "$TEST_ADDON"; then
    say "building the test addon (native/build-test, about a minute)"
    npm run --silent build:native:test
  fi
}

setup_prisma() {
  # The Prisma clients of both schemas (src/storage/generated/, not committed). The CLI would download its schema
  # engine at start; pointed at an existing non-executable file it does not, and `generate` needs no engine.
  local provider out log
  for provider in sqlite postgres; do
    out=src/storage/generated/$provider/client.ts
    if [ ! -f "$out" ] || [ "prisma/$provider/schema.prisma" -nt "$out" ] || [ node_modules/.package-lock.json -nt "$out" ]; then
      say "generating the Prisma client ($provider)"
      if ! log=$(PRISMA_SCHEMA_ENGINE_BINARY="$PWD/package.json" CHECKPOINT_DISABLE=1 PRISMA_HIDE_UPDATE_MESSAGE=1 \
        node_modules/.bin/prisma generate --schema "prisma/$provider/schema.prisma" 2>&1); then
        echo "$log" >&2
        return 1
      fi
    fi
  done
}

setup_ts() {
  local stamp=dist/.build-stamp
  if [ ! -f "$stamp" ] || [ -n "$(find src tsconfig.json tsconfig.build.json -newer "$stamp" -print -quit)" ]; then
    say "compiling TypeScript (dist/)"
    # A clean dist, so a deleted source file never survives as a stale module.
    rm -rf dist
    npm run --silent build
    touch "$stamp"
  fi
}

setup() {
  setup_apt
  setup_npm
  setup_assets
  setup_addon
  setup_prisma
  setup_ts
}

# Prints "N passed, N failed[, N skipped]" from a jest --json file. Suites that crashed before running
# (syntax or import errors) count as failures, or a broken run could still print "0 failed".
summary() {
  if [ ! -f "$1" ]; then
    echo "test: jest wrote no results ($1)" >&2
    echo "0 passed, 1 failed"
    return
  fi
  node -e 'const r = require(process.argv[1]);
    const failed = r.numFailedTests + r.numRuntimeErrorTestSuites;
    console.log(`${r.numPassedTests} passed, ${failed} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""));' \
    "$PWD/$1"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  setup)
    setup
    ;;
  setup-test)
    setup
    setup_test_addon
    ;;
  start)
    setup
    exec node dist/main.js "$@"
    ;;
  test)
    # setup in its own process: errexit stays on inside it, and a failure still ends with the summary line.
    if ! bash "${BASH_SOURCE[0]}" setup-test; then
      echo "test: setup failed" >&2
      echo "0 passed, 1 failed"
      exit 1
    fi
    mkdir -p test-results
    rm -f test-results/jest.json
    rc=0
    npx jest --runInBand --json --outputFile=test-results/jest.json "$@" || rc=$?
    summary test-results/jest.json
    exit "$rc"
    ;;
  lint)
    # ESLint and Prettier for the TypeScript and JavaScript, clang-format and clang-tidy (native/.clang-tidy) for
    # native/. Reports every check, then fails if any did. Fix formatting with:
    # npx prettier --write . && clang-format -i native/src/*.{cc,h}
    setup_apt "${LINT_PACKAGES[@]}"
    setup_npm
    rc=0
    say "eslint"
    npx eslint --max-warnings 0 . || rc=1
    say "prettier --check"
    npx prettier --check --log-level warn . || rc=1
    say "clang-format"
    clang-format --dry-run --Werror native/src/*.cc native/src/*.h || rc=1
    say "clang-tidy"
    # The compile commands of the addon's build, from a configure-only run (no compiling) in a directory of its own.
    tidy_dir="$(mktemp -d)"
    if log=$(npx cmake-js configure -d native --out "$tidy_dir" --CDCMAKE_EXPORT_COMPILE_COMMANDS=ON 2>&1); then
      # One file per clang-tidy, as many at once as there are cores; xargs fails if any did. Its findings are printed,
      # not its count of the ones it left out (in OpenCV's and Node's headers).
      printf '%s\n' native/src/*.cc | xargs -P "$(nproc)" -n 1 clang-tidy --quiet -p "$tidy_dir" >"$tidy_dir/out" 2>&1 ||
        rc=1
      grep -v ' warnings\? generated\.$' "$tidy_dir/out" || true
    else
      echo "$log" >&2
      say "clang-tidy: cmake-js configure failed"
      rc=1
    fi
    rm -rf "$tidy_dir"
    [ "$rc" -eq 0 ] && say "lint: clean" || say "lint: problems above"
    exit "$rc"
    ;;
  asan)
    setup_apt
    setup_npm
    setup_assets
    mkdir -p test-results
    rm -f test-results/jest-asan.json
    rc=0
    bash scripts/test-asan.sh "$@" || rc=$?
    summary test-results/jest-asan.json
    exit "$rc"
    ;;
  *)
    echo "usage: bash scripts/dev.sh start|test|asan|lint|setup [args]" >&2
    exit 2
    ;;
esac
