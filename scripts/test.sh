#!/usr/bin/env bash
# One command from a fresh machine to a passing test suite: set-up, build, every CTest label,
# bounded libFuzzer runs of the file parsers, then every CTest label.
#   bash scripts/test.sh
# FUZZ_SECONDS (default 60 per target) bounds fuzzing; FUZZ_SECONDS=0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
# Last, so its summary closes the output. CTest lists skipped tests (the AVX-512 and CUDA
# columns on machines without them) after its own summary, so the counts are repeated last.
log=build/ctest-last.log
ctest --test-dir build --output-on-failure -j "$(nproc)" | tee "$log"
total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -n 1)
failed=$(sed -n 's/.*, \([0-9]*\) tests failed out of.*/\1/p' "$log" | tail -n 1)
skipped=$(grep -c '(Skipped)' "$log" || true)
echo "ctest: $((total - failed - skipped)) passed, $failed failed, $skipped skipped"
