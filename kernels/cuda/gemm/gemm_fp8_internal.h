// Internal split of the block-scaled FP8 GEMM between its translation units: the launcher and
// CUDA-core fallback (gemm_fp8_block.cu), the mma.sync e4m3 kernels (gemm_fp8_mma.cu) and the
// opt-in sm_90a wgmma kernel (gemm_fp8_wgmma.cu).
// Invariant: not part of the kernel API; only gemm_fp8_*.cu include it.
#pragma once

#include "kernels/cuda/gemm/gemm.h"

namespace tessera::kernels::cuda {

// True when the binary loaded on the current device carries sm_89+ code for the mma kernels.
bool gemm_fp8_mma_available();

// Tile rows (BM) the mma path uses for M rows: 16 (decode) or 128.
int gemm_fp8_mma_tile_m(int64_t M);

// The mma.sync path. splits > 1 writes partial sums to `workspace` f32 [splits, M, N] and
// reduces them into g.out.
cudaError_t gemm_fp8_mma(const Fp8BlockGemm& g, int splits, float* workspace, cudaStream_t stream);

// The sm_90a wgmma path: available when the device is sm_90 and the loaded binary has sm_90a
// code (and the driver exports cuTensorMapEncodeTiled); requested by TESSERA_FP8_WGMMA=1; fits
// M >= 64, K % 128 == 0, 16-byte aligned xq / w rows (wgmma::shape_fits).
bool gemm_fp8_wgmma_available();
bool gemm_fp8_wgmma_requested();
bool gemm_fp8_wgmma_fits(const Fp8BlockGemm& g);
cudaError_t gemm_fp8_wgmma(const Fp8BlockGemm& g, cudaStream_t stream);

}  // namespace tessera::kernels::cuda
