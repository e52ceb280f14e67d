#!/usr/bin/env bash
# test.sh: builds and runs every test — unit, integration and end-to-end — first in the normal
# build, then again with AddressSanitizer + UndefinedBehaviorSanitizer (all but the tests
# labelled `slow`, which take minutes of wall time), then builds the libFuzzer
# targets (clang) and runs each for 20 s on its seed corpus (tests/fuzz/README.md).
#
#   ./test.sh           all three
#   ./test.sh --quick   the normal build only
set -euo pipefail
cd "$(dirname "$0")"
jobs="$(nproc)"

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTROUPE_WERROR="${TROUPE_WERROR:-OFF}" >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

if [[ "${1:-}" != "--quick" ]]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTROUPE_SANITIZE=ON \
    -DTROUPE_WERROR="${TROUPE_WERROR:-OFF}" >/dev/null
  cmake --build build-asan -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs" --label-exclude slow

  # 9 targets x 20 s: enough to keep them building, replay every crash input of the corpus and
  # catch shallow bugs, within the CI's time (long runs: tests/fuzz/README.md).
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTROUPE_FUZZ=ON -DTROUPE_BUILD_TESTS=OFF -DTROUPE_BUILD_PYTHON=OFF \
    -DTROUPE_WERROR="${TROUPE_WERROR:-OFF}" >/dev/null
  cmake --build build-fuzz -j"$jobs" --target troupe_fuzzers
  tests/fuzz/run.sh --build build-fuzz --seconds 20
fi
