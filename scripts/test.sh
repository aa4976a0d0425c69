#!/usr/bin/env bash
# One command from a fresh machine to a passing test suite: set-up, build, every CTest label,
# bounded libFuzzer runs of the file parsers, then every CTest label.
#   bash scripts/test.sh
# FUZZ_SECONDS (default 60 per target) bounds fuzzing; FUZZ_SECONDS=0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
# Last, so its summary line closes the output.
ctest --test-dir build --output-on-failure -j "$(nproc)"
