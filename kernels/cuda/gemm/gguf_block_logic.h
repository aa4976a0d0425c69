// Decoding of GGUF block types (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K) for the CUDA block-quantized
// kernels (gemm_gguf.cu), as __host__ __device__ helpers with no CUDA include, so
// tests/unit/gguf_block_logic_test.cc checks them against kernels::ref::dequantize_row.
// Invariant: every row is a sequence of 32-value groups (one per 32-element block, eight per
// 256-element K-quant block) and group_value() reproduces the reference's f32 bit for bit
// (same operation order, no fused multiply-add).
#pragma once

#include <cstdint>

#include "kernels/common/types.h"
#include "kernels/cuda/common/bits.h"

#if defined(__CUDACC__)
#define TESSERA_GGUF_HD __host__ __device__ __forceinline__
#else
#define TESSERA_GGUF_HD inline
#endif

namespace tessera::kernels::cuda::gguf {

inline constexpr int kGroup = 32;  // values per group

// Whether the kernels of gemm_gguf.cu take this type.
TESSERA_GGUF_HD constexpr bool supported(ElemType t) {
  return t == ElemType::kQ4_0 || t == ElemType::kQ4_1 || t == ElemType::kQ8_0 ||
         t == ElemType::kQ4_K || t == ElemType::kQ6_K;
}
// Values per block, bytes per block and 32-value groups per block of a supported type.
TESSERA_GGUF_HD constexpr int block_elems(ElemType t) {
  return t == ElemType::kQ4_K || t == ElemType::kQ6_K ? kQK_K : kGroup;
}
TESSERA_GGUF_HD constexpr int block_bytes(ElemType t) {
  return t == ElemType::kQ4_0   ? 18
         : t == ElemType::kQ4_1 ? 20
         : t == ElemType::kQ8_0 ? 34
         : t == ElemType::kQ4_K ? 144
                                : 210;
}
TESSERA_GGUF_HD constexpr int groups_per_block(ElemType t) { return block_elems(t) / kGroup; }

// NOTE: products and sums are rounded one at a time (no contraction into an fma), as the
// scalar reference computes them.
TESSERA_GGUF_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
TESSERA_GGUF_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

// f16 bits -> f32, exact (subnormals, infinities and NaN payloads as kernels::f16_to_f32).
TESSERA_GGUF_HD float f16_value(uint32_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;  // mant * 2^-24, exact
    return bits_f32(f32_bits(v) | sign);
  }
  if (exp == 31) return bits_f32(sign | 0x7f800000u | (mant << 13));
  return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

TESSERA_GGUF_HD uint32_t load_u16(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8);
}

// Q4_K's six-bit scale (want_min = false) or min of sub-block j (0..7) from its 12 bytes.
TESSERA_GGUF_HD int q4k_scale_min(const uint8_t* s, int j, bool want_min) {
  if (j < 4) return want_min ? (s[j + 4] & 63) : (s[j] & 63);
  return want_min ? ((s[j + 4] >> 4) | ((s[j] >> 6) << 4))
                  : ((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
}

// Value j (0..31) of group g (0 .. groups_per_block - 1) of the block at `blk`.
//   Q4_0 [d f16, qs 16]: (nibble - 8) * d; nibble j < 16 low of qs[j], else high of qs[j - 16].
//   Q4_1 [d, m f16, qs 16]: nibble * d + m.   Q8_0 [d f16, qs i8 32]: qs[j] * d.
//   Q4_K [d, dmin f16, scales 12, qs 128]: group g = nibbles (g odd: high) of qs[32 (g / 2) + j],
//        d * sc_g * q - dmin * m_g.
//   Q6_K [ql 128, qh 64, scales i8 16, d f16]: half h = g / 4, quarter i = g % 4:
//        q = (ql[64h + 32 (i & 1) + j] >> 4 (i >= 2)) & 15 | ((qh[32h + j] >> 2i) & 3) << 4, minus
//        32; d * scales[8h + 2i + j / 16] * q.
template <ElemType T>
TESSERA_GGUF_HD float group_value(const uint8_t* blk, int g, int j) {
  static_assert(supported(T), "not a block type of gemm_gguf");
  if constexpr (T == ElemType::kQ4_0) {
    const float d = f16_value(load_u16(blk));
    const int q = j < 16 ? (blk[2 + j] & 0x0f) : (blk[2 + j - 16] >> 4);
    return mul_rn(static_cast<float>(q - 8), d);
  } else if constexpr (T == ElemType::kQ4_1) {
    const float d = f16_value(load_u16(blk));
    const float m = f16_value(load_u16(blk + 2));
    const int q = j < 16 ? (blk[4 + j] & 0x0f) : (blk[4 + j - 16] >> 4);
    return add_rn(mul_rn(static_cast<float>(q), d), m);
  } else if constexpr (T == ElemType::kQ8_0) {
    const float d = f16_value(load_u16(blk));
    return mul_rn(static_cast<float>(static_cast<int8_t>(blk[2 + j])), d);
  } else if constexpr (T == ElemType::kQ4_K) {
    const float d = f16_value(load_u16(blk));
    const float dmin = f16_value(load_u16(blk + 2));
    const uint8_t* scales = blk + 4;
    const uint8_t byte = blk[16 + 32 * (g >> 1) + j];
    const int q = (g & 1) ? (byte >> 4) : (byte & 0x0f);
    const float sc = static_cast<float>(q4k_scale_min(scales, g, false));
    const float mn = static_cast<float>(q4k_scale_min(scales, g, true));
    return add_rn(mul_rn(mul_rn(d, sc), static_cast<float>(q)), -mul_rn(dmin, mn));
  } else {
    const int h = g >> 2, i = g & 3;
    const float d = f16_value(load_u16(blk + 208));
    const uint8_t lo = blk[64 * h + 32 * (i & 1) + j];
    const uint8_t hi = blk[128 + 32 * h + j];
    const int q = (((i >= 2 ? lo >> 4 : lo) & 0x0f) | (((hi >> (2 * i)) & 3) << 4)) - 32;
    const float sc = static_cast<float>(static_cast<int8_t>(blk[192 + 8 * h + 2 * i + j / 16]));
    return mul_rn(mul_rn(d, sc), static_cast<float>(q));
  }
}

// Bytes of the block holding group `group` of a row, and that group's index inside its block.
template <ElemType T>
TESSERA_GGUF_HD int64_t group_block_offset(int64_t group) {
  return (group / groups_per_block(T)) * block_bytes(T);
}
template <ElemType T>
TESSERA_GGUF_HD int group_in_block(int64_t group) {
  return static_cast<int>(group % groups_per_block(T));
}

// Value k of a row of blocks at `row`.
template <ElemType T>
TESSERA_GGUF_HD float row_value(const uint8_t* row, int64_t k) {
  const int64_t g = k / kGroup;
  return group_value<T>(row + group_block_offset<T>(g), group_in_block<T>(g),
                        static_cast<int>(k % kGroup));
}

// ---- GEMV (decode) tiling: 8 warps x kRowsPerWarp weight rows per CTA, K in chunks of
// kChunkGroups groups (one per lane); x chunk [M][kChunkGroups][kXPitch] f32 in shared memory
// (a group's 32 floats + 4 padding: lanes reading float4 q of their groups hit distinct bank
// quads), each warp's weight chunk bytes staged in shared by wide coalesced copies. ----

inline constexpr int kGemvMaxM = 8;
inline constexpr int kGemvWarps = 8;
inline constexpr int kRowsPerWarp = 4;
inline constexpr int kGemvRows = kGemvWarps * kRowsPerWarp;  // weight rows per CTA
inline constexpr int kChunkGroups = 32;
inline constexpr int kXPitch = kGroup + 4;  // floats per group in the x chunk

TESSERA_GGUF_HD constexpr int chunk_bytes(ElemType t) {
  return kChunkGroups / groups_per_block(t) * block_bytes(t);
}
// Weight staging bytes per (warp, row), rounded to 16.
TESSERA_GGUF_HD constexpr int chunk_pitch(ElemType t) { return (chunk_bytes(t) + 15) / 16 * 16; }
TESSERA_GGUF_HD int64_t gemv_smem_bytes(ElemType t, int64_t m) {
  return m * kChunkGroups * kXPitch * 4 + static_cast<int64_t>(kGemvRows) * chunk_pitch(t);
}

// Widest copy unit (16, 8, 4, 2 or 1 bytes) that divides the weight base address, the row
// stride and the full chunk size, so every copy of a chunk is aligned.
TESSERA_GGUF_HD int copy_width(ElemType t, uintptr_t w, int64_t ldw) {
  const uint64_t bits =
      static_cast<uint64_t>(w) | static_cast<uint64_t>(ldw) | static_cast<uint64_t>(chunk_bytes(t));
  for (int width = 16; width > 1; width /= 2) {
    if (bits % width == 0) return width;
  }
  return 1;
}

// ---- tiled kernel (M > kGemvMaxM): 64 x 64 output tiles, one 32-value group of K per step,
// 256 threads of 4 x 4 outputs. Thread t decodes values 8 (t % 4) .. + 7 of weight row t / 4
// and loads x values 8 (t % 4) .. + 7 of x row t / 4 of the tile. ----

inline constexpr int kTile = 64;
inline constexpr int kTileThreads = 256;
inline constexpr int kTilePitch = kTile + 4;  // floats per k row of the [32][64] shared tiles

}  // namespace tessera::kernels::cuda::gguf
