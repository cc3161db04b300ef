#!/usr/bin/env bash
# The native-focused tests against an AddressSanitizer build of the addon (npm run test:asan,
# or bash scripts/dev.sh asan, which also prints the pass/fail line). Extra arguments go to jest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "asan: building the addon with AddressSanitizer (native/build-asan)" >&2
npm run --silent build:native:asan

addon="$PWD/native/build-asan/Release/faceid.node"
[ -f "$addon" ] || { echo "asan: $addon was not built" >&2; exit 1; }
# node itself is not instrumented, so the ASan runtime must be loaded first, before any other library.
libasan="$(g++ -print-file-name=libasan.so)"
[ -f "$libasan" ] || { echo "asan: libasan.so not found (g++ -print-file-name)" >&2; exit 1; }

mkdir -p test-results
# jest's own binary, not npx: LD_PRELOAD should reach only the process that loads the addon.
# Leak detection is off: node keeps allocations alive until exit by design. FACEID_ASAN=1 lets a test skip
# work ASan makes pointless (a /proc/self/mem scan would walk its terabytes of shadow mappings).
FACEID_ASAN=1 FACEID_FUZZ_COUNT="${FACEID_FUZZ_COUNT:-300}" FACEID_ADDON="$addon" LD_PRELOAD="$libasan" ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
  node node_modules/jest/bin/jest.js --runInBand --json --outputFile=test-results/jest-asan.json \
  'test/engine[^/]*\.test\.ts$' "$@"
