// Core: dtype conversions (against exhaustive/known values), tensor views, thread pool.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <vector>

#include "tessera/core/dtype.h"
#include "tessera/core/status.h"
#include "tessera/core/tensor.h"
#include "tessera/core/thread_pool.h"

namespace tessera {
namespace {

using kernels::bf16_to_f32;
using kernels::f16_to_f32;
using kernels::f32_to_bf16;
using kernels::f32_to_f16;
using kernels::f32_to_fp8_e4m3;
using kernels::f32_to_fp8_e5m2;
using kernels::fp8_e4m3_to_f32;
using kernels::fp8_e5m2_to_f32;

TEST(DType, F16RoundTripsEveryFiniteValue) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_f16(f), h) << h;
  }
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // rounds to inf
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bff);
  // ties to even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
}

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);       // tie -> even
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);   // tie -> even (up)
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(DType, Fp8E4m3MatchesTheOcpTable) {
  EXPECT_EQ(fp8_e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(fp8_e4m3_to_f32(0x08), std::ldexp(1.0f, -6));
  EXPECT_EQ(fp8_e4m3_to_f32(0x38), 1.0f);
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0x7f)));
  for (int v = 0; v < 256; ++v) {
    const float f = fp8_e4m3_to_f32(static_cast<uint8_t>(v));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_fp8_e4m3(f), v) << v;
  }
  EXPECT_EQ(f32_to_fp8_e4m3(1000.0f), 0x7e);   // saturates
  EXPECT_EQ(f32_to_fp8_e4m3(-1000.0f), 0xfe);
  EXPECT_EQ(f32_to_fp8_e4m3(1.0625f), 0x38);   // tie between 1 and 1.125 -> even (1)
  EXPECT_EQ(f32_to_fp8_e4m3(1.1875f), 0x3a);   // tie between 1.125 and 1.25 -> even (1.25)
}

TEST(DType, Fp8E5m2RoundTrips) {
  for (int v = 0; v < 256; ++v) {
    const float f = fp8_e5m2_to_f32(static_cast<uint8_t>(v));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_fp8_e5m2(f), v) << v;
  }
  EXPECT_EQ(fp8_e5m2_to_f32(0x7b), 57344.0f);
  EXPECT_TRUE(std::isinf(fp8_e5m2_to_f32(f32_to_fp8_e5m2(1e6f))));
}

TEST(DType, InfoAndNames) {
  EXPECT_EQ(dtype_info(DType::kQ4_1).block_elems, 32);
  EXPECT_EQ(dtype_info(DType::kQ4_1).block_bytes, 20);
  EXPECT_EQ(dtype_row_bytes(DType::kQ6_K, 512), 420);
  EXPECT_EQ(dtype_from_name("q8_0"), DType::kQ8_0);
  EXPECT_EQ(dtype_from_safetensors("F8_E4M3"), DType::kFP8_E4M3);
  EXPECT_FALSE(dtype_from_ggml_id(99).has_value());
}

TEST(Tensor, ViewsAndStrides) {
  OwnedTensor t(DType::kF32, {3, 4, 5});
  EXPECT_EQ(t.view().numel(), 60);
  EXPECT_EQ(t.view().stride_bytes(0), 80);
  Tensor r = t.view().row(1);
  EXPECT_EQ(r.ndim(), 2);
  EXPECT_EQ(static_cast<char*>(r.data()) - static_cast<char*>(t.view().data()), 80);
  EXPECT_TRUE(t.view().is_contiguous());
  EXPECT_EQ(t.view().reshape({12, 5}).dim(0), 12);
  EXPECT_EQ(t.view().describe(), "f32[3, 4, 5]");
  Tensor q(nullptr, DType::kQ4_1, {2, 64});
  EXPECT_EQ(q.stride_bytes(0), 40);
  EXPECT_EQ(q.nbytes(), 80);
}

TEST(Status, ResultCarriesValueOrError) {
  Result<int> good = 3;
  EXPECT_TRUE(good.ok());
  EXPECT_EQ(*good, 3);
  Result<int> bad = invalid_argument("bad {}", 7);
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "bad 7");
}

TEST(ThreadPool, ParallelForCoversRangeExactlyOnce) {
  ThreadPool pool(3);
  for (int64_t n : {1, 2, 7, 100, 1000}) {
    std::vector<std::atomic<int>> hits(n);
    for (int rep = 0; rep < 50; ++rep) {
      pool.parallel_for(n, 4, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
      });
    }
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 50) << n << " " << i;
  }
}

}  // namespace
}  // namespace tessera
