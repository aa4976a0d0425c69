#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in build-fuzz/ and runs each for a
# bounded time over its committed seed corpus. A crash fails the script and leaves the input.
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
[ "$seconds" -gt 0 ] || { echo "[fuzz] skipped"; exit 0; }
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DTESSERA_FUZZ=ON \
  -DTESSERA_CUDA=OFF -DTESSERA_BUILD_BENCH=OFF >/dev/null
targets=$(cd tests/fuzz && ls fuzz_*.cc | sed 's/\.cc$//')
# shellcheck disable=SC2086
cmake --build build-fuzz -j "$(nproc)" --target $targets
for t in $targets; do
  work=$(mktemp -d)
  cp -r "tests/fuzz/corpus/$t/." "$work/" 2>/dev/null || true
  echo "[fuzz] $t for ${seconds}s"
  log="$work.log"
  if ! (cd build-fuzz && "./tests/fuzz/$t" -max_total_time="$seconds" -rss_limit_mb=2048 \
          -max_len=65536 -print_final_stats=1 "$work" >"$log" 2>&1); then
    # The sanitizer report (stack, summary) and where libFuzzer left the input.
    grep -E -A60 '^==[0-9]+==(ERROR|WARNING)|runtime error|deadly signal' "$log" | head -n 100
    tail -n 12 "$log"
    echo "[fuzz] $t FAILED (the input is in build-fuzz/; add it to tests/fuzz/corpus/$t/)"
    exit 1
  fi
  tail -n 12 "$log"
  rm -rf "$work" "$log"
done
echo "[fuzz] all targets ran clean"
