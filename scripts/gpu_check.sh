#!/usr/bin/env bash
# One-shot GPU check. Two modes:
#   scripts/gpu_check.sh --prepare   (on the build machine) configures build-gpu-dist with the
#       CUDA backend, builds the ops/model test binaries and the CUDA kernel benchmark, and
#       copies them plus every non-system shared library they need into gpu-dist/ (git-ignored).
#   scripts/gpu_check.sh             (on the GPU machine, from the repo root; no -dev packages
#       needed there) runs the cuda column of tests/ops, the model tests on the CUDA backend,
#       every bench/cuda_*_bench, the Llama-8B-shaped decode step (model_decode_bench: op by op
#       and replaying CUDA graphs), and prints a summary table last. Whole run bounded to ~8 minutes. Results land in
#       gpu-check-results/ and, when $OUT is set (the device tool), are copied there.
# Without a GPU the run mode says "no GPU" and exits 2 after checking the binaries load.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIST="${ROOT}/gpu-dist"
BUILD="${ROOT}/build-gpu-dist"
ARCHS="${TESSERA_CUDA_ARCHS:-80;90a}"
JOBS="${JOBS:-2}"

prepare() {
  set -e
  cmake -S "${ROOT}" -B "${BUILD}" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTESSERA_CUDA=ON \
    "-DTESSERA_CUDA_ARCHS=${ARCHS}" -DTESSERA_BUILD_TESTS=ON -DTESSERA_BUILD_BENCH=ON
  local start=$(date +%s)
  ninja -C "${BUILD}" -j"${JOBS}" tessera_cuda
  echo "tessera_cuda (archs ${ARCHS}) built in $(( $(date +%s) - start )) s"
  local benches=()
  for src in "${ROOT}"/bench/cuda_*.cu; do benches+=("bench/$(basename "${src}" .cu)"); done
  benches+=(bench/model_decode_bench)
  local targets=(tests/tessera_ops_tests tests/tessera_model_tests "${benches[@]}")
  ninja -C "${BUILD}" -j"${JOBS}" $(for t in "${targets[@]}"; do basename "${t}"; done)
  rm -rf "${DIST}"
  mkdir -p "${DIST}/bin" "${DIST}/lib"
  for b in "${targets[@]}"; do
    cp "${BUILD}/${b}" "${DIST}/bin/"
    strip --strip-debug "${DIST}/bin/$(basename "${b}")" || true
  done
  # Shared libraries: ship everything except glibc, the driver and the CUDA toolkit's own
  # (cuBLAS/cuBLASLt come from the GPU machine's CUDA 13 install).
  for bin in "${DIST}"/bin/*; do
    ldd "${bin}" | awk '/=> \//{print $3}' | while read -r lib; do
      case "$(basename "${lib}")" in
        libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libcuda.so*) ;;
        libcublas*|libcudart*) ;;
        *) cp -nL "${lib}" "${DIST}/lib/" ;;
      esac
    done
  done
  {
    echo "commit: $(git -C "${ROOT}" rev-parse HEAD 2>/dev/null) (+ working tree)"
    echo "archs: ${ARCHS}"
    echo "built: $(date -u +%FT%TZ) on $(uname -n)"
    echo "glibc needed: $(objdump -T "${DIST}"/bin/* | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -1)"
  } > "${DIST}/manifest.txt"
  du -sh "${DIST}"/bin/* "${DIST}/lib"
  cat "${DIST}/manifest.txt"
  echo "gpu-dist ready; on the GPU machine run: scripts/gpu_check.sh"
}

run() {
  if [[ ! -x "${DIST}/bin/tessera_ops_tests" ]]; then
    echo "gpu-dist/ is missing: run scripts/gpu_check.sh --prepare on the build machine" >&2
    exit 1
  fi
  export LD_LIBRARY_PATH="${DIST}/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
  cat "${DIST}/manifest.txt"
  for bin in "${DIST}"/bin/*; do
    if ldd "${bin}" | grep -q "not found"; then
      echo "missing libraries for ${bin}:"; ldd "${bin}" | grep "not found"; exit 1
    fi
  done
  local probe
  probe="$("${DIST}/bin/cuda_kernels_bench" --probe 2>&1)"
  local rc=$?
  echo "${probe}"
  if [[ ${rc} -ne 0 ]]; then
    echo "no GPU: nothing to check here (binaries load; run this on the GPU machine)"
    exit 2
  fi
  # Model tests look for fixtures at the build machine's absolute path.
  if [[ ! -e /work/main/tests/fixtures ]]; then
    mkdir -p /work 2>/dev/null && ln -sfn "${ROOT}" /work/main 2>/dev/null || \
      echo "note: /work/main not linkable; model tests needing fixtures will skip or fail"
  fi
  local out="${ROOT}/gpu-check-results"
  mkdir -p "${out}"
  # Time limits add up to about 8 minutes; each step normally takes a fraction of its limit.
  timeout 150 "${DIST}/bin/tessera_ops_tests" --gtest_filter='*__cuda' --gtest_brief=1 \
    > "${out}/ops_cuda.txt" 2>&1
  local ops_rc=$?
  # The opt-in sm_90a wgmma FP8 GEMM (TESSERA_FP8_WGMMA=1) against the same reference cases.
  TESSERA_FP8_WGMMA=1 timeout 30 "${DIST}/bin/tessera_ops_tests" \
    --gtest_filter='*matmul_block_scaled*__cuda' --gtest_brief=1 > "${out}/ops_wgmma.txt" 2>&1
  local wgmma_rc=$?
  timeout 90 "${DIST}/bin/tessera_model_tests" --gtest_filter='*__cuda' --gtest_brief=1 \
    > "${out}/models_cuda.txt" 2>&1
  local models_rc=$?
  local bench_rcs=()
  for bin in "${DIST}"/bin/cuda_*_bench; do
    local name limit=45
    name="$(basename "${bin}")"
    [[ "${name}" == cuda_kernels_bench ]] && limit=90
    timeout "${limit}" "${bin}" > "${out}/${name}.txt" 2>&1
    bench_rcs+=("${name}=$?")
  done
  timeout 120 "${DIST}/bin/model_decode_bench" --backend cuda --layers 32 --context 1024 \
    --decode 32 > "${out}/model_decode_bench.txt" 2>&1
  local decode_rc=$?
  # The peer in the same run: the same step in PyTorch eager (the GPU machine has PyTorch).
  local peer_rc=skipped
  if python3 -c "import torch" > /dev/null 2>&1; then
    timeout 120 python3 "${ROOT}/bench/torch_decode_peer.py" --device cuda --layers 32 \
      --context 1024 --decode 32 > "${out}/torch_decode_peer.txt" 2>&1
    peer_rc=$?
  fi
  if [[ -n "${OUT:-}" && -d "${OUT}" ]]; then cp -r "${out}" "${OUT}/"; fi

  count() { grep -c "$1" "$2" 2>/dev/null || true; }
  echo
  echo "== failures (ops cuda column, model tests on cuda) =="
  grep -hE "^\[  FAILED  \]" "${out}/ops_cuda.txt" "${out}/models_cuda.txt" | head -40
  for bin in "${DIST}"/bin/cuda_*_bench; do
    echo
    echo "== $(basename "${bin}") =="
    tail -40 "${out}/$(basename "${bin}").txt"
  done
  echo
  echo "== model_decode_bench (Llama-3-8B shapes, random bf16 weights, batch 1; graphs and op by op) =="
  cat "${out}/model_decode_bench.txt"
  echo "== peer: torch_decode_peer.py (same shapes, PyTorch eager) =="
  cat "${out}/torch_decode_peer.txt" 2>/dev/null || echo "(no PyTorch)"
  echo
  echo "== summary =="
  printf "%-28s %-6s %s\n" "step" "rc" "detail"
  printf "%-28s %-6s %s\n" "ops tests (cuda column)" "${ops_rc}" \
    "$(grep -E '^\[  PASSED  \]|tests ran' "${out}/ops_cuda.txt" | tail -2 | tr '\n' ' ')"
  printf "%-28s %-6s %s\n" "" "" "failed: $(count '^\[  FAILED  \] Ops' "${out}/ops_cuda.txt")" \
    " skipped: $(count '^\[  SKIPPED \]' "${out}/ops_cuda.txt")"
  printf "%-28s %-6s %s\n" "fp8 wgmma (opt-in) cases" "${wgmma_rc}" \
    "$(grep -E '^\[  PASSED  \]|FAILED  \] [0-9]' "${out}/ops_wgmma.txt" | tail -1)"
  printf "%-28s %-6s %s\n" "model tests (cuda backend)" "${models_rc}" \
    "$(grep -E 'PASSED|FAILED  \] [0-9]' "${out}/models_cuda.txt" | tail -1)"
  for r in "${bench_rcs[@]}"; do
    printf "%-28s %-6s %s\n" "${r%%=*}" "${r##*=}" "see above"
  done
  printf "%-28s %-6s %s\n" "model_decode_bench" "${decode_rc}" \
    "$(grep -o '"fraction_of_floor":[0-9.e-]*' "${out}/model_decode_bench.txt")"
  printf "%-28s %-6s %s\n" "decode graphs vs op by op" "${decode_rc}" \
    "$(grep -oE '"(decode_step_ms_median|eager_step_ms_median|graph_speedup|graph_replays)":[0-9.e-]*' \
      "${out}/model_decode_bench.txt" | tr '\n' ' ')"
  local ours peer
  ours="$(grep -o '"decode_step_ms_median":[0-9.e-]*' "${out}/model_decode_bench.txt" | cut -d: -f2)"
  peer="$(grep -o '"decode_step_ms_median": [0-9.e-]*' "${out}/torch_decode_peer.txt" 2>/dev/null |
    cut -d: -f2)"
  printf "%-28s %-6s %s\n" "torch_decode_peer" "${peer_rc}" \
    "ours ${ours:-?} ms / torch ${peer:-?} ms per step$(
      [[ -n "${ours}" && -n "${peer}" ]] && awk -v a="${ours}" -v b="${peer}" \
        'BEGIN { printf " (speed-up %.2fx)", b / a }')"
  [[ ${ops_rc} -eq 0 && ${models_rc} -eq 0 ]]
}

case "${1:-}" in
  --prepare) prepare ;;
  "") run ;;
  *) echo "usage: scripts/gpu_check.sh [--prepare]" >&2; exit 64 ;;
esac
