#!/usr/bin/env bash
# run.sh: runs every libFuzzer target (or the ones named) for a bounded time each, one after the
# other, on a copy of its seed corpus; stops at the first crash, leak, timeout or failed check.
#
#   tests/fuzz/run.sh [--build DIR] [--seconds N] [--timeout N] [--keep DIR] [target ...]
#
#   --build DIR    the TROUPE_FUZZ build (default: build-fuzz); the targets are DIR/fuzz/fuzz_*
#   --seconds N    fuzzing time per target (default: 25)
#   --timeout N    wall seconds one input may take before it counts as a hang (default: 10;
#                  raise it when the run shares a busy machine, where a starved input is slow)
#   --keep DIR     keep the grown corpora in DIR/<target>/ (default: a scratch dir, removed)
#   target         json_lua, sse_parser, ... (default: all that were built)
#
# A crashing input is written to DIR/fuzz/artifacts/<target>-crash-<sha1> (README.md says what
# to do with it). The seeds in tests/fuzz/corpus/ are only read.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$root/build-fuzz"
seconds=25
timeout=10
keep=""
targets=()
while (($#)); do
  case "$1" in
    --build) build="$(cd "$2" && pwd)"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    --keep) mkdir -p "$2"; keep="$(cd "$2" && pwd)"; shift 2 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if ((${#targets[@]} == 0)); then
  for f in "$build"/fuzz/fuzz_*; do
    [[ -x "$f" ]] && targets+=("${f##*/fuzz_}")
  done
fi
if ((${#targets[@]} == 0)); then
  echo "run.sh: no fuzz targets in $build/fuzz (build them: tests/fuzz/README.md)" >&2
  exit 2
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$build/fuzz/artifacts"
for t in "${targets[@]}"; do
  work="${keep:-$scratch}/$t"
  mkdir -p "$work"
  echo "fuzz: $t for ${seconds}s"
  # -timeout: one input may take at most 10 s by default (fuzz_workflow cancels a run after 2 s);
  # -rss_limit_mb: the targets' limits are far below it, so reaching it is a finding.
  if ! "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$build/fuzz/artifacts/$t-" \
      "$work" "$root/tests/fuzz/corpus/$t" >"$scratch/$t.log" 2>&1; then
    tail -n 60 "$scratch/$t.log" >&2
    echo "fuzz: $t FAILED (the input is in $build/fuzz/artifacts/)" >&2
    exit 1
  fi
  grep -E '^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss_mb' "$scratch/$t.log" |
    sed 's/^/  /'
done
