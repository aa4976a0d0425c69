// Host tests of the GGUF block decoding the CUDA block-quantized kernels use
// (kernels/cuda/gemm/gguf_block_logic.h): every value of random blocks (random bytes, so random
// scales including negative zero, subnormals, infinities and NaN) equals
// kernels::ref::dequantize_row bit for bit, for every supported type; plus the geometry and
// copy-width helpers the kernels tile with.
#include "kernels/cuda/gemm/gguf_block_logic.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "kernels/common/types.h"
#include "kernels/ref/quant.h"

namespace tessera {
namespace {

namespace gguf = kernels::cuda::gguf;
using kernels::ElemType;

// Offsets of each block's f16 scale fields, for planting special values.
std::vector<int> scale_offsets(ElemType t) {
  switch (t) {
    case ElemType::kQ4_0:
      return {0};
    case ElemType::kQ8_0:
      return {0};
    case ElemType::kQ4_1:
      return {0, 2};
    case ElemType::kQ4_K:
      return {0, 2};
    case ElemType::kQ6_K:
      return {208};
    default:
      return {};
  }
}

template <ElemType T>
void check_type() {
  SCOPED_TRACE(static_cast<int>(T));
  const kernels::ElemTraits tr = kernels::elem_traits(T);
  ASSERT_EQ(gguf::block_elems(T), tr.block_elems);
  ASSERT_EQ(gguf::block_bytes(T), tr.block_bytes);
  std::mt19937 rng(1234 + static_cast<int>(T));
  const int num_blocks = 64;
  const int64_t n = num_blocks * tr.block_elems;
  std::vector<uint8_t> bytes(num_blocks * tr.block_bytes);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
  // Special scales: -0, +0, the largest finite, the smallest subnormal, -inf, NaN, 1.0.
  const uint16_t specials[] = {0x8000, 0x0000, 0x7bff, 0xfbff, 0x0001,
                               0x83ff, 0xfc00, 0x7e01, 0x3c00};
  int s = 0;
  for (int b = 0; b < num_blocks; b += 3) {
    for (int off : scale_offsets(T)) {
      const uint16_t v = specials[s++ % 9];
      std::memcpy(&bytes[b * tr.block_bytes + off], &v, 2);
    }
  }
  std::vector<float> want(n);
  ASSERT_TRUE(kernels::ref::dequantize_row(T, bytes.data(), want.data(), n));
  for (int64_t k = 0; k < n; ++k) {
    const float got = gguf::row_value<T>(bytes.data(), k);
    uint32_t gb, wb;
    std::memcpy(&gb, &got, 4);
    std::memcpy(&wb, &want[k], 4);
    // NaN payloads may differ only in ways the reference itself leaves unspecified: both NaN.
    if (got != got && want[k] != want[k]) continue;
    ASSERT_EQ(gb, wb) << "k " << k << " got " << got << " want " << want[k];
  }
}

TEST(GgufBlockLogic, MatchesReferenceBitwise) {
  check_type<ElemType::kQ4_0>();
  check_type<ElemType::kQ4_1>();
  check_type<ElemType::kQ8_0>();
  check_type<ElemType::kQ4_K>();
  check_type<ElemType::kQ6_K>();
}

TEST(GgufBlockLogic, F16MatchesReference) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float a = gguf::f16_value(h);
    const float b = kernels::f16_to_f32(static_cast<uint16_t>(h));
    uint32_t ab, bb;
    std::memcpy(&ab, &a, 4);
    std::memcpy(&bb, &b, 4);
    ASSERT_EQ(ab, bb) << h;
  }
}

TEST(GgufBlockLogic, Geometry) {
  for (ElemType t :
       {ElemType::kQ4_0, ElemType::kQ4_1, ElemType::kQ8_0, ElemType::kQ4_K, ElemType::kQ6_K}) {
    EXPECT_TRUE(gguf::supported(t));
    EXPECT_EQ(gguf::kChunkGroups % gguf::groups_per_block(t), 0);
    EXPECT_GE(gguf::chunk_pitch(t), gguf::chunk_bytes(t));
    EXPECT_EQ(gguf::chunk_pitch(t) % 16, 0);
    // The decode kernel's shared memory at its largest M stays within an sm_80 CTA's 163 KiB.
    EXPECT_LE(gguf::gemv_smem_bytes(t, gguf::kGemvMaxM), 163 * 1024);
  }
  EXPECT_FALSE(gguf::supported(ElemType::kQ8_1));
  EXPECT_FALSE(gguf::supported(ElemType::kF16));
  EXPECT_EQ(gguf::copy_width(ElemType::kQ4_0, 0x1000, 2304), 16);     // 576-byte chunks
  EXPECT_EQ(gguf::copy_width(ElemType::kQ6_K, 0x1000, 840 * 16), 8);  // 840-byte chunks
  EXPECT_EQ(gguf::copy_width(ElemType::kQ4_0, 0x1002, 2304), 2);
  EXPECT_EQ(gguf::copy_width(ElemType::kQ8_0, 0x1000, 34 * 7), 2);
}

}  // namespace
}  // namespace tessera
