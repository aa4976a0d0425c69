// Block-scaled FP8 matmul (DeepSeek-V3 format): registry cases for matmul_block_scaled and
// moe_grouped_matmul_block_scaled (awkward N/K around the 128 block, non-default blocks, strided
// x/w/out, a NaN code), plus golden tests against torch (scripts/make_fp8_fixtures.py): e4m3
// decoding of all 256 codes, and the reference op on a 2-shard safetensors checkpoint whose
// weight and `_scale_inv` live in different shards. Also a tight every-ISA CPU check.
// Invariant: random weight codes avoid the two NaN codes except in the case that wants one.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "kernels/common/types.h"
#include "kernels/cpu/cpu_features.h"
#include "src/backend/cpu_fp8.h"
#include "tessera/backend/backend.h"
#include "tessera/core/thread_pool.h"
#include "tessera/model/safetensors.h"
#include "tests/ops/ops_harness.h"

namespace tessera::ops_test {
namespace {

using backend::Backend;
using backend::BlockScaleParams;
using backend::Op;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Overwrites the logical bytes of an e4m3 tensor [rows, cols] (rows may be strided) with random
// codes, never 0x7f / 0xff (NaN).
void fill_codes(CaseBuffers& b, const Tensor& w) {
  for (int64_t r = 0; r < w.dim(0); ++r) {
    auto* row = static_cast<uint8_t*>(w.data()) + r * w.stride_bytes(0);
    for (int64_t c = 0; c < w.dim(1); ++c) {
      uint8_t v = static_cast<uint8_t>(b.rng()() & 0xff);
      if ((v & 0x7f) == 0x7f) v ^= 1;
      row[c] = v;
    }
  }
}

// Random e4m3 weights [rows, cols] with row padding `pad` bytes.
Tensor random_codes(CaseBuffers& b, int64_t rows, int64_t cols, int64_t pad) {
  Tensor w = b.random(DType::kFP8_E4M3, {rows, cols}, {pad});
  fill_codes(b, w);
  return w;
}

struct DenseShape {
  int64_t m, n, k, block_n, block_k;
  bool strided, nan_code;
  bool aligned = false;  // 16-byte aligned weight rows (the CUDA tensor-core path's fast loads)
};

void add_dense_cases(std::vector<OpCase>& cases) {
  const DenseShape shapes[] = {
      {1, 7, 129, 128, 128, false, false},    {7, 129, 300, 128, 128, true, false},
      {1, 300, 1, 128, 128, false, false},    {4, 1, 7, 128, 128, false, false},
      {9, 256, 384, 128, 128, false, false},  {1, 300, 129, 128, 128, true, false},
      {1, 256, 7168, 128, 128, false, false}, {2, 70, 90, 32, 64, false, false},
      {3, 50, 100, 16, 48, true, false},      {5, 33, 200, 128, 128, false, true},
      // M > 16 takes the large-tile CUDA kernel; aligned rows take its vector loads.
      {64, 256, 512, 128, 128, false, false, true}, {33, 136, 384, 128, 128, true, false, true},
      // Two 64-row halves of a 128-row tile and an N tail (the opt-in sm_90a wgmma kernel).
      {200, 200, 384, 128, 128, false, false, true},
  };
  for (const DenseShape& s : shapes) {
    OpCase c;
    c.name = fmt::format("matmul_block_scaled/m{}_n{}_k{}_b{}x{}{}{}{}", s.m, s.n, s.k,
                         s.block_n, s.block_k, s.strided ? "_strided" : "",
                         s.nan_code ? "_nan" : "", s.aligned ? "_aligned" : "");
    c.tol = "matmul_block_scaled";
    c.op = Op::kMatmulBlockScaled;
    c.type_a = DType::kFP8_E4M3;
    c.type_b = DType::kF32;
    c.expect_finite = !s.nan_code;
    c.setup = [=](CaseBuffers& b) -> OpFn {
      const int64_t pad = s.strided ? 5 : 0;
      Tensor x = b.random(DType::kF32, {s.m, s.k}, {pad});
      Tensor w = random_codes(b, s.n, s.k, s.aligned ? 0 : pad + 3);
      if (s.nan_code) static_cast<uint8_t*>(w.data())[3 * w.stride_bytes(0) + s.k - 1] = 0x7f;
      Tensor scale = b.random(DType::kF32, {ceil_div(s.n, s.block_n), ceil_div(s.k, s.block_k)},
                              {s.strided ? 2 : 0}, 0.01f);
      Tensor out = b.output(DType::kF32, {s.m, s.n}, {s.strided ? 4 : 0});
      const BlockScaleParams block{s.block_n, s.block_k};
      return [=](Backend& be) { return be.matmul_block_scaled(x, w, scale, block, out); };
    };
    cases.push_back(std::move(c));
  }
}

struct GroupedShape {
  int64_t tokens, top_k, experts, n, k;
  bool strided, dup_in_token;
};

void add_grouped_cases(std::vector<OpCase>& cases) {
  const GroupedShape shapes[] = {{1, 8, 16, 64, 256, false, false},
                                 {7, 2, 4, 129, 300, true, true},
                                 {33, 4, 8, 48, 130, false, false}};
  for (const GroupedShape& s : shapes) {
    OpCase c;
    c.name =
        fmt::format("moe_grouped_matmul_block_scaled/t{}_top{}_e{}_n{}_k{}{}{}", s.tokens, s.top_k,
                    s.experts, s.n, s.k, s.dup_in_token ? "_dup" : "", s.strided ? "_strided" : "");
    c.tol = "moe_grouped_matmul_block_scaled";
    c.op = Op::kMoeGroupedMatmulBlockScaled;
    c.type_a = DType::kFP8_E4M3;
    c.type_b = DType::kF32;
    c.setup = [=](CaseBuffers& b) -> OpFn {
      Tensor x = b.random(DType::kF32, {s.tokens, s.k}, {s.strided ? 3 : 0});
      // Experts stacked on dim 0: one [E * N, K] allocation viewed as [E, N, K]; same for scales.
      Tensor flat = random_codes(b, s.experts * s.n, s.k, 0);
      Tensor w(flat.data(), DType::kFP8_E4M3, {s.experts, s.n, s.k});
      const int64_t sn = ceil_div(s.n, 128), sk = ceil_div(s.k, 128);
      Tensor flat_scale = b.random(DType::kF32, {s.experts * sn, sk}, {}, 0.01f);
      Tensor scale(flat_scale.data(), DType::kF32, {s.experts, sn, sk});
      Tensor ids = b.random(DType::kI32, {s.tokens, s.top_k}, {s.strided ? 2 : 0});
      for (int64_t t = 0; t < s.tokens; ++t) {  // expert 1 is never used
        auto* row = ids.row(t).data_as<int32_t>();
        for (int64_t j = 0; j < s.top_k; ++j) {
          int64_t e = b.uniform_int(0, s.experts - 1);
          while (e == 1) e = b.uniform_int(0, s.experts - 1);
          row[j] = static_cast<int32_t>(e);
        }
        if (s.dup_in_token) row[s.top_k - 1] = row[0];
      }
      Tensor out = b.output(DType::kF32, {s.tokens, s.top_k, s.n}, {s.strided ? 4 : 0, 0});
      return [=](Backend& be) {
        return be.moe_grouped_matmul_block_scaled(x, w, scale, ids, BlockScaleParams{}, out);
      };
    };
    cases.push_back(std::move(c));
  }
}

// ---- golden tests against torch ----

std::string fixture(const std::string& name) {
  return std::string(TESSERA_FIXTURES_DIR) + "/fp8/" + name;
}

struct Agreement {
  double one_minus_cos = 0.0;
  double max_rel = 0.0;  // max |got - want| / max |want|
};

Agreement agreement(const float* got, const float* want, int64_t n) {
  double dot = 0.0, g2 = 0.0, w2 = 0.0, max_err = 0.0, max_want = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    dot += static_cast<double>(got[i]) * want[i];
    g2 += static_cast<double>(got[i]) * got[i];
    w2 += static_cast<double>(want[i]) * want[i];
    max_err = std::max(max_err, std::fabs(static_cast<double>(got[i]) - want[i]));
    max_want = std::max(max_want, std::fabs(static_cast<double>(want[i])));
  }
  return {1.0 - dot / std::sqrt(g2 * w2), max_err / max_want};
}

TEST(Fp8Golden, DecodeOfAll256CodesEqualsTorch) {
  auto model = model::SafetensorsModel::open(fixture("e4m3_codes.safetensors"));
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  const model::SafetensorsTensor* values = model->find("values");
  ASSERT_NE(values, nullptr);
  ASSERT_EQ(values->nbytes, 256u * 4);
  const auto* want = static_cast<const float*>(values->data);
  // The CPU kernels decode in SIMD registers: code j sits at k = 0 of weight row j, the other
  // 63 codes of the row are +0, x is all ones, the scale is 1, so out[j] is code j's value.
  std::vector<uint8_t> w(256 * 64, 0);
  for (int j = 0; j < 256; ++j) w[j * 64 + (j % 64)] = static_cast<uint8_t>(j);
  std::vector<float> x(64, 1.0f), scale(2, 1.0f), out(256);
  for (int j = 0; j < 256; ++j) {
    const float got = kernels::fp8_e4m3_to_f32(static_cast<uint8_t>(j));
    if (std::isnan(want[j])) {
      EXPECT_TRUE(std::isnan(got)) << "code " << j;
    } else {
      EXPECT_EQ(got, want[j]) << "code " << j;
    }
  }
  Tensor xt(x.data(), DType::kF32, {1, 64});
  Tensor wt(w.data(), DType::kFP8_E4M3, {256, 64});
  Tensor st(scale.data(), DType::kF32, {2, 1});
  Tensor ot(out.data(), DType::kF32, {1, 256});
  ThreadPool pool(1);
  using kernels::cpu::Isa;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (!kernels::cpu::isa_supported(isa)) continue;
    backend::CpuFp8Matmul mm(isa);
    ASSERT_TRUE(mm.run(pool, xt, wt, st, BlockScaleParams{}, ot).ok());
    for (int j = 0; j < 256; ++j) {
      if (std::isnan(want[j])) {
        EXPECT_TRUE(std::isnan(out[j])) << kernels::cpu::isa_name(isa) << " code " << j;
      } else {
        EXPECT_EQ(out[j], want[j]) << kernels::cpu::isa_name(isa) << " code " << j;
      }
    }
  }
}

// Loads weight `name`, `name + "_scale_inv"`, "x" and "out" (torch's) from `path`, runs the
// op on the reference and the CPU backend, and compares with torch.
void check_checkpoint(const std::string& path, const std::string& name,
                      const BlockScaleParams& block, bool expect_split_shards) {
  auto model = model::SafetensorsModel::open(path);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  const model::SafetensorsTensor* w = model->find(name);
  const model::SafetensorsTensor* s = model->find(name + "_scale_inv");
  const model::SafetensorsTensor* x = model->find("x");
  const model::SafetensorsTensor* want = model->find("out");
  ASSERT_TRUE(w && s && x && want) << path;
  EXPECT_EQ(w->dtype, DType::kFP8_E4M3);
  EXPECT_EQ(s->dtype, DType::kF32);
  if (expect_split_shards) {
    EXPECT_NE(w->file, s->file) << "weight and scale should be split";
  }
  const int64_t m = x->shape[0], n = w->shape[0];
  std::vector<float> out(static_cast<size_t>(m * n));
  Tensor ot(out.data(), DType::kF32, {m, n});
  for (auto& be : {backend::make_reference_backend(), backend::make_cpu_backend()}) {
    ASSERT_TRUE(be->supports(Op::kMatmulBlockScaled, w->dtype, s->dtype));
    std::fill(out.begin(), out.end(), NAN);
    const Status st =
        be->matmul_block_scaled(model->tensor(*x), model->tensor(*w), model->tensor(*s), block, ot);
    ASSERT_TRUE(st.ok()) << be->name() << ": " << st.to_string();
    const Agreement a = agreement(out.data(), static_cast<const float*>(want->data), m * n);
    EXPECT_LT(a.one_minus_cos, 1e-6) << be->name();
    EXPECT_LT(a.max_rel, 1e-5) << be->name();
  }
}

TEST(Fp8Golden, ShardedCheckpointMatchesTorch) {
  // The directory holds model.safetensors.index.json (two shards).
  check_checkpoint(std::string(TESSERA_FIXTURES_DIR) + "/fp8/model.safetensors.index.json",
                   "model.layers.0.mlp.down_proj.weight", BlockScaleParams{}, true);
}

TEST(Fp8Golden, NonDefaultBlockMatchesTorch) {
  auto model = model::SafetensorsModel::open(fixture("block32x64.safetensors"));
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(model->metadata("weight_block_size").value_or(""), "32,64");
  check_checkpoint(fixture("block32x64.safetensors"), "proj.weight", BlockScaleParams{32, 64},
                   false);
}

// Every ISA's kernel against the reference, far tighter than the registry's FP8 tolerance
// (decoding is exact; only the f32 summation order differs).
TEST(Fp8Cpu, EveryIsaMatchesReferenceTightly) {
  struct Shape {
    int64_t m, n, k, bn, bk;
  };
  const Shape shapes[] = {{1, 300, 1000, 128, 128}, {6, 129, 300, 128, 128}, {3, 40, 77, 16, 48}};
  ThreadPool pool(2);
  for (const Shape& sh : shapes) {
    CaseBuffers b(sh.m * 1000003 + sh.n * 101 + sh.k);
    Tensor x = b.random(DType::kF32, {sh.m, sh.k});
    Tensor w = random_codes(b, sh.n, sh.k, 0);
    Tensor s = b.random(DType::kF32, {ceil_div(sh.n, sh.bn), ceil_div(sh.k, sh.bk)}, {}, 0.01f);
    std::vector<float> want(sh.m * sh.n), got(sh.m * sh.n);
    Tensor wt(want.data(), DType::kF32, {sh.m, sh.n});
    Tensor gt(got.data(), DType::kF32, {sh.m, sh.n});
    const BlockScaleParams block{sh.bn, sh.bk};
    ASSERT_TRUE(backend::make_reference_backend()->matmul_block_scaled(x, w, s, block, wt).ok());
    using kernels::cpu::Isa;
    for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
      if (!kernels::cpu::isa_supported(isa)) continue;
      backend::CpuFp8Matmul mm(isa);
      ASSERT_TRUE(mm.run(pool, x, w, s, block, gt).ok());
      double err2 = 0.0, ref2 = 0.0;
      for (size_t i = 0; i < want.size(); ++i) {
        err2 += (static_cast<double>(got[i]) - want[i]) * (got[i] - want[i]);
        ref2 += static_cast<double>(want[i]) * want[i];
      }
      EXPECT_LT(err2 / ref2, 1e-11)
          << kernels::cpu::isa_name(isa) << " m" << sh.m << " n" << sh.n << " k" << sh.k;
    }
  }
}

TEST(Fp8Cpu, GroupedRunsOneCallPerActiveExpert) {
  CaseBuffers b(7);
  Tensor x = b.random(DType::kF32, {5, 130});
  Tensor flat = random_codes(b, 4 * 20, 130, 0);
  Tensor w(flat.data(), DType::kFP8_E4M3, {4, 20, 130});
  Tensor flat_scale = b.random(DType::kF32, {4 * 1, 2}, {}, 0.01f);
  Tensor s(flat_scale.data(), DType::kF32, {4, 1, 2});
  std::vector<int32_t> ids = {0, 2, 2, 0, 0, 2, 2, 2, 0, 0};
  Tensor it(ids.data(), DType::kI32, {5, 2});
  std::vector<float> out(5 * 2 * 20);
  Tensor ot(out.data(), DType::kF32, {5, 2, 20});
  backend::CpuFp8Matmul mm;
  ThreadPool pool(2);
  ASSERT_TRUE(mm.run_grouped(pool, x, w, s, it, BlockScaleParams{}, ot).ok());
  EXPECT_EQ(mm.last_expert_calls(), 2);
}

TEST(Fp8Checks, ClearMessagesForBadOperands) {
  std::vector<float> x(2 * 256), out(2 * 200), scale(8);
  std::vector<uint8_t> w(200 * 256);
  Tensor xt(x.data(), DType::kF32, {2, 256});
  Tensor wt(w.data(), DType::kFP8_E4M3, {200, 256});
  Tensor ot(out.data(), DType::kF32, {2, 200});
  auto be = backend::make_cpu_backend();
  // 200 rows x 256 cols in 128 blocks: scales [2, 2]; [2, 3] is wrong.
  Tensor bad_scale(scale.data(), DType::kF32, {2, 3});
  Status st = be->matmul_block_scaled(xt, wt, bad_scale, BlockScaleParams{}, ot);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.to_string().find("w_scale_inv f32[2, 3] must be f32[2, 2]"), std::string::npos)
      << st.to_string();
  Tensor good_scale(scale.data(), DType::kF32, {2, 2});
  EXPECT_TRUE(be->matmul_block_scaled(xt, wt, good_scale, BlockScaleParams{}, ot).ok());
  Tensor f16_w(w.data(), DType::kF16, {200, 256});  // rejected before any read
  st = be->matmul_block_scaled(xt, f16_w, good_scale, BlockScaleParams{}, ot);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  st = be->matmul_block_scaled(xt, wt, good_scale, BlockScaleParams{0, 128}, ot);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.to_string().find("must be positive"), std::string::npos) << st.to_string();
}

}  // namespace

void add_fp8_cases(std::vector<OpCase>& cases) {
  add_dense_cases(cases);
  add_grouped_cases(cases);
}

}  // namespace tessera::ops_test
