#!/usr/bin/env bash
# ctest entry of the e2e suite: runs tests/e2e with the project's .venv python against the
# built `tessera` binary. Exits 77 (ctest SKIP_RETURN_CODE) when the venv, its packages or the
# default model are missing, so machines without them report the suite skipped, not failed.
# Usage: run_e2e.sh <project-root> <tessera-binary>
set -u
root="$1"
export TESSERA_BIN="$2"
py="$root/.venv/bin/python"
model="${TESSERA_MODEL:-$root/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
if [ ! -x "$py" ]; then
  echo "SKIP: $py missing (run scripts/setup.sh)"; exit 77
fi
if ! "$py" -c "import openai, httpx, pytest" 2>/dev/null; then
  echo "SKIP: .venv lacks openai/httpx/pytest (pip install -r scripts/requirements.txt)"; exit 77
fi
if [ ! -f "$model" ]; then
  echo "SKIP: default model $model missing"; exit 77
fi
cd "$root" && exec "$py" -m pytest tests/e2e -x -q -p no:cacheprovider
