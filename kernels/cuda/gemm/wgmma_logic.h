// Host/device layout logic of the sm_90a wgmma FP8 block-scaled GEMM (gemm_fp8_wgmma.cu): tile
// and pipeline constants, the wgmma shared-memory matrix descriptor, the 128-byte swizzle that
// TMA writes and wgmma reads, the m64nNk32 f32 accumulator fragment, stage/parity bookkeeping of
// the mbarrier ring and the scale indexing of the promotion. Tested on the host by
// tests/unit/cuda_wgmma_logic_test.cc. Invariant: no CUDA headers, no project headers beyond
// fp8_block_logic.h; bit layouts follow the PTX ISA ("Matrix Descriptor Format", wgmma D
// fragments for .m64nNk32).
#pragma once

#include <cstdint>

#include "kernels/cuda/gemm/fp8_block_logic.h"

namespace tessera::kernels::cuda::wgmma {

// CTA tile: kBM x kBN outputs, one 128-wide K group (== one scale group) per pipeline stage.
constexpr int kBM = 128;
constexpr int kBN = 128;
constexpr int kBK = fp8::kGroup;  // bytes of e4m3 per tile row == the 128B swizzle width
constexpr int kWgRows = 64;       // rows of one consumer warpgroup (wgmma M = 64)
constexpr int kConsumers = kBM / kWgRows;
constexpr int kThreads = 128 * (1 + kConsumers);  // warpgroup 0 produces (TMA), the rest compute
constexpr int kStages = 5;
constexpr int kTileBytes = kBM * kBK;  // A tile; the B tile (kBN rows) has the same size
constexpr int kStageBytes = kTileBytes + kBN * kBK;
constexpr int kAtomBytes = 1024;                // 8 rows x 128 B: one swizzle atom
constexpr int kBarrierBytes = 2 * kStages * 8;  // full[] and empty[] mbarriers
constexpr int kSmemBytes = kAtomBytes + kStages * kStageBytes + kBarrierBytes;  // + align slack
constexpr int kKSteps = kBK / 32;  // wgmma k32 steps per group
constexpr int kAccRegs = kBN / 2;  // f32 registers per thread per m64n128 tile
static_assert(kBK == 128, "a 128-byte tile row is one 128B swizzle row");
static_assert(kSmemBytes <= 227 * 1024, "sm_90 grants at most 227 KiB of shared memory");

// Swizzle-mode field (bits 62-63) of the wgmma matrix descriptor.
enum SwizzleMode : uint32_t {
  kSwizzleNone = 0,
  kSwizzle128B = 1,
  kSwizzle64B = 2,
  kSwizzle32B = 3
};

// matrix-descriptor-encode(x) = (x & 0x3FFFF) >> 4: 14 bits of a 16-byte-granular value.
TESSERA_HD uint64_t desc_encode(uint32_t x) { return (x & 0x3FFFFu) >> 4; }

// 64-bit descriptor: start address [0, 14), leading-dimension byte offset [16, 30), stride-
// dimension byte offset [32, 46), base offset [49, 52) (0: atoms are 1024-byte aligned),
// swizzle mode [62, 64).
TESSERA_HD uint64_t make_smem_desc(uint32_t smem_addr, uint32_t lbo_bytes, uint32_t sbo_bytes,
                                   SwizzleMode swizzle) {
  return desc_encode(smem_addr) | (desc_encode(lbo_bytes) << 16) | (desc_encode(sbo_bytes) << 32) |
         (static_cast<uint64_t>(swizzle) << 62);
}

// Descriptor of a K-major tile of 128-byte rows in 128B-swizzled atoms (8 rows each, SBO 1024 B
// between atoms; LBO is unused when the k32 step (32 B) lies inside one swizzle row, set to 16 B).
// `smem_addr` = atom-aligned tile base + 32 * k_step: the step offset lands in address bits 4-6
// before the hardware XORs them with the row bits 7-9, exactly as TMA applied the pattern.
TESSERA_HD uint64_t kmajor_sw128_desc(uint32_t smem_addr) {
  return make_smem_desc(smem_addr, 16, kAtomBytes, kSwizzle128B);
}

// The 128B swizzle on a byte offset from a 1024-byte-aligned base: the 16-byte chunk index
// (bits 4-6) is XORed with the row within the atom (bits 7-9).
TESSERA_HD uint32_t swizzle128(uint32_t off) { return off ^ (((off >> 7) & 7u) << 4); }

// Where TMA (CU_TENSOR_MAP_SWIZZLE_128B, box inner dim 128 B) puts element (row, k byte) of a
// tile with 128-byte rows.
TESSERA_HD uint32_t tile_offset(int row, int kbyte) {
  return swizzle128(static_cast<uint32_t>(row * kBK + kbyte));
}

// The byte wgmma reads for (row, k byte j of the k32 step) of an operand whose descriptor starts
// at `start_off` (offset from an atom-aligned base): canonical K-major layout, rows 128 B apart
// inside an atom, atoms `sbo` apart, then the swizzle on the resulting address.
TESSERA_HD uint32_t desc_read_offset(uint32_t start_off, uint32_t sbo, int row, int j) {
  const uint32_t r = static_cast<uint32_t>(row);
  return swizzle128(start_off + (r / 8) * sbo + (r % 8) * kBK + static_cast<uint32_t>(j));
}

// m64nNk32 f32 accumulator: register i (0 .. N/2) of lane `lane` in warp `warp` (0..3) of the
// warpgroup holds D[row, col] with
//   row = 16 warp + lane / 4 + 8 ((i / 2) % 2),  col = 8 (i / 4) + 2 (lane % 4) + i % 2.
TESSERA_HD int acc_row(int warp, int lane, int i) {
  return 16 * warp + lane / 4 + 8 * ((i >> 1) & 1);
}
TESSERA_HD int acc_col(int lane, int i) { return 8 * (i >> 2) + 2 * (lane & 3) + (i & 1); }

// mbarrier ring: iteration (K group) i uses stage i % kStages; consumers wait on full[stage]
// for parity (i / kStages) & 1, the producer waits on empty[stage] for the opposite parity (a
// fresh barrier counts its "previous" phase, parity 1, as complete, so round 0 passes at once).
TESSERA_HD int stage_of(int64_t i) { return static_cast<int>(i % kStages); }
TESSERA_HD uint32_t full_parity(int64_t i) { return static_cast<uint32_t>((i / kStages) & 1); }
TESSERA_HD uint32_t empty_parity(int64_t i) { return full_parity(i) ^ 1u; }

// Promotion factors: x_scale[m, kb] and w_scale[n / 128, kb] (row strides ld_xs, ld_ws).
TESSERA_HD int64_t x_scale_index(int64_t m, int64_t kb, int64_t ld_xs) { return m * ld_xs + kb; }
TESSERA_HD int64_t w_scale_index(int64_t n, int64_t kb, int64_t ld_ws) {
  return (n / fp8::kGroup) * ld_ws + kb;
}

// CTA b (0 .. tiles_m * tiles_n) -> (tile_m, tile_n): bands of kBand M tiles sweep N together,
// so the weight tiles a wave streams are shared by kBand CTAs while they sit in L2.
constexpr int kBand = 8;
TESSERA_HD void tile_of(int64_t b, int64_t tiles_m, int64_t tiles_n, int64_t* tm, int64_t* tn) {
  const int64_t per_band = kBand * tiles_n;
  const int64_t band = b / per_band, r = b % per_band;
  const int64_t rows = tiles_m - band * kBand < kBand ? tiles_m - band * kBand : kBand;
  *tm = band * kBand + r % rows;
  *tn = r / rows;
}

// Shapes the wgmma path takes: M >= 64, whole K groups, 16-byte aligned operand rows (TMA needs
// 16-byte global addresses and strides). Otherwise the mma.sync path runs.
TESSERA_HD bool shape_fits(int64_t M, int64_t N, int64_t K, int64_t ldxq, int64_t ldw,
                           uint64_t xq_addr, uint64_t w_addr) {
  return M >= kWgRows && N > 0 && K > 0 && K % kBK == 0 && ldxq % 16 == 0 && ldw % 16 == 0 &&
         ldxq >= K && ldw >= K && (xq_addr & 15) == 0 && (w_addr & 15) == 0 &&
         M < (int64_t{1} << 31) && N < (int64_t{1} << 31) && K < (int64_t{1} << 31);
}

}  // namespace tessera::kernels::cuda::wgmma
