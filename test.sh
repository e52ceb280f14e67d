#!/usr/bin/env bash
# test.sh: builds and runs every test — unit, integration and end-to-end — first in the normal
# build, then again with AddressSanitizer + UndefinedBehaviorSanitizer.
#
#   ./test.sh           both builds
#   ./test.sh --quick   the normal build only
set -euo pipefail
cd "$(dirname "$0")"
jobs="$(nproc)"

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

if [[ "${1:-}" != "--quick" ]]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTROUPE_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs"
fi
