// CpuMatmul against ref::matmul for every weight type x every ISA this CPU has (forced per
// instance, like TESSERA_CPU_ISA) x awkward shapes, with strided x rows, NaN-poisoned outputs
// (padding columns must stay NaN) and a sentinel after the last output row.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/matmul.h"
#include "kernels/ref/matmul.h"
#include "kernels/ref/quant.h"
#include "kernels/ref/quantize.h"
#include "src/backend/cpu_matmul.h"
#include "tessera/core/thread_pool.h"

namespace tessera::backend {
namespace {

using kernels::cpu::Isa;

constexpr float kSentinel = 12345.678f;
constexpr double kMaxNmse = 5e-4;

struct TypeCase {
  const char* name;
  DType type;
  std::vector<int64_t> ks;
};

std::vector<TypeCase> type_cases() {
  return {
      {"f32", DType::kF32, {1, 13, 100}},   {"f16", DType::kF16, {1, 24, 100}},
      {"bf16", DType::kBF16, {1, 9, 64}},   {"q4_0", DType::kQ4_0, {32, 96, 576}},
      {"q4_1", DType::kQ4_1, {32, 64, 576}}, {"q8_0", DType::kQ8_0, {32, 160}},
      {"q4_k", DType::kQ4_K, {256, 512}},   {"q6_k", DType::kQ6_K, {256, 768}},
  };
}

std::vector<Isa> isas_to_test() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (kernels::cpu::isa_supported(isa)) out.push_back(isa);
  }
  return out;
}

struct Problem {
  int64_t m, n, k, x_stride, out_stride;
  std::vector<char> w;         // [n, k] of type
  std::vector<float> x;        // [m, x_stride]
  std::vector<float> expect;   // [m, n] ref::matmul on x
  std::vector<float> expect_q;  // [m, n] ref::matmul on x rounded through the activation format
  std::vector<float> scale;    // [m, n] sum_k |x'_ik w_jk|: the size of each dot's terms
};

// x rounded as the CPU kernels see it: quantized to the activation format and back.
std::vector<float> round_activations(DType w_type, const std::vector<float>& x, int64_t m,
                                     int64_t stride, int64_t k) {
  const DType act = kernels::cpu::activation_type(w_type);
  std::vector<float> out(x);
  if (act == DType::kF32) return out;
  std::vector<char> q(kernels::cpu::activation_row_bytes(w_type, k));
  for (int64_t i = 0; i < m; ++i) {
    EXPECT_TRUE(kernels::ref::quantize_row(act, x.data() + i * stride, q.data(), k));
    EXPECT_TRUE(kernels::ref::dequantize_row(act, q.data(), out.data() + i * stride, k));
  }
  return out;
}

Problem make_problem(DType type, int64_t m, int64_t n, int64_t k, std::mt19937& rng) {
  Problem p{m, n, k, k + 3, n + 5, {}, {}, {}, {}, {}};
  const kernels::ElemTraits t = kernels::elem_traits(type);
  const int64_t row_bytes = k / t.block_elems * t.block_bytes;
  p.w.resize(n * row_bytes);
  std::normal_distribution<float> wdist(0.0f, 0.5f);
  std::vector<float> row(k);
  for (int64_t j = 0; j < n; ++j) {
    for (float& v : row) v = wdist(rng) + 0.05f;
    EXPECT_TRUE(kernels::ref::quantize_row(type, row.data(), p.w.data() + j * row_bytes, k));
  }
  std::normal_distribution<float> xdist(0.1f, 1.0f);
  p.x.assign(m * p.x_stride, std::nanf(""));  // the stride gap must never be read
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t c = 0; c < k; ++c) p.x[i * p.x_stride + c] = xdist(rng);
  }
  p.expect.resize(m * n);
  p.expect_q.resize(m * n);
  EXPECT_TRUE(kernels::ref::matmul(type, p.w.data(), row_bytes, p.x.data(), p.x_stride,
                                   p.expect.data(), n, m, n, k));
  const std::vector<float> xq = round_activations(type, p.x, m, p.x_stride, k);
  EXPECT_TRUE(kernels::ref::matmul(type, p.w.data(), row_bytes, xq.data(), p.x_stride,
                                   p.expect_q.data(), n, m, n, k));
  p.scale.assign(m * n, 0.0f);
  std::vector<float> wrow(k);
  for (int64_t j = 0; j < n; ++j) {
    EXPECT_TRUE(kernels::ref::dequantize_row(type, p.w.data() + j * row_bytes, wrow.data(), k));
    for (int64_t i = 0; i < m; ++i) {
      double s = 0.0;
      for (int64_t c = 0; c < k; ++c) s += std::fabs(xq[i * p.x_stride + c] * wrow[c]);
      p.scale[i * n + j] = static_cast<float>(s);
    }
  }
  return p;
}

// Squared error and squared reference accumulated over every shape of one type x ISA.
struct ErrorSum {
  double err = 0.0;
  double ref = 0.0;
};

// NOTE: per output, the kernel must equal ref::matmul on the rounded activations up to f32
// summation order (and the odd activation code rounded the other way): 2e-4 of sum |terms|.
// Against exact x, one dot that cancels to near zero can have a large relative error from
// activation rounding alone, so the 5e-4 NMSE bound is applied over all shapes together.
constexpr double kTermTolerance = 2e-4;

void check_one(const Problem& p, DType type, Isa isa, ThreadPool& pool, const std::string& what,
               ErrorSum* total) {
  const int64_t rows_span = (p.m - 1) * p.out_stride + p.n;
  std::vector<float> out(rows_span + 8, std::nanf(""));
  for (int i = 0; i < 8; ++i) out[rows_span + i] = kSentinel;
  const kernels::ElemTraits t = kernels::elem_traits(type);
  const int64_t row_bytes = p.k / t.block_elems * t.block_bytes;
  Tensor x(const_cast<float*>(p.x.data()), DType::kF32, {p.m, p.k});
  x = x.with_strides({p.x_stride * 4, 4});
  Tensor w(const_cast<char*>(p.w.data()), type, {p.n, p.k});
  Tensor o(out.data(), DType::kF32, {p.m, p.n});
  o = o.with_strides({p.out_stride * 4, 4});
  ASSERT_EQ(w.stride_bytes(0), row_bytes);
  CpuMatmul mm(isa);
  ASSERT_EQ(mm.isa(), isa);
  const Status st = mm.run(pool, x, w, o);
  ASSERT_TRUE(st.ok()) << what << ": " << st.message();
  for (int64_t i = 0; i < p.m; ++i) {
    for (int64_t j = 0; j < p.n; ++j) {
      const double got = out[i * p.out_stride + j];
      const double want = p.expect[i * p.n + j];
      ASSERT_TRUE(std::isfinite(got)) << what << " at (" << i << ", " << j << ")";
      ASSERT_NEAR(got, p.expect_q[i * p.n + j], kTermTolerance * p.scale[i * p.n + j] + 1e-6)
          << what << " at (" << i << ", " << j << ")";
      total->err += (got - want) * (got - want);
      total->ref += want * want;
    }
    if (i + 1 < p.m) {
      for (int64_t j = p.n; j < p.out_stride; ++j) {
        ASSERT_TRUE(std::isnan(out[i * p.out_stride + j])) << what << " wrote padding " << j;
      }
    }
  }
  for (int i = 0; i < 8; ++i) ASSERT_EQ(out[rows_span + i], kSentinel) << what << " sentinel";
}

class CpuMatmulTest : public ::testing::TestWithParam<TypeCase> {};

TEST_P(CpuMatmulTest, MatchesReferenceOnEveryIsa) {
  const TypeCase c = GetParam();
  ASSERT_TRUE(CpuMatmul::supports(c.type));
  ThreadPool pool(2);
  std::mt19937 rng(1000 + static_cast<int>(c.type));
  const std::vector<Isa> isas = isas_to_test();
  std::vector<ErrorSum> totals(isas.size());
  for (int64_t k : c.ks) {
    for (int64_t m : {1, 2, 3, 5, 17}) {
      for (int64_t n : {1, 7, 33, 769}) {
        const Problem p = make_problem(c.type, m, n, k, rng);
        for (size_t s = 0; s < isas.size(); ++s) {
          const Isa isa = isas[s];
          const std::string what = std::string(c.name) + " " + kernels::cpu::isa_name(isa) +
                                   " m=" + std::to_string(m) + " n=" + std::to_string(n) +
                                   " k=" + std::to_string(k);
          check_one(p, c.type, isa, pool, what, &totals[s]);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
  for (size_t s = 0; s < isas.size(); ++s) {
    EXPECT_LE(totals[s].err / totals[s].ref, kMaxNmse) << c.name << " " << kernels::cpu::isa_name(isas[s]);
  }
}

INSTANTIATE_TEST_SUITE_P(Types, CpuMatmulTest, ::testing::ValuesIn(type_cases()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(CpuMatmulIsa, ReportsWhatRuns) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (!kernels::cpu::isa_supported(isa)) {
      std::printf("[ INFO ] %s not supported on this CPU: its kernels are not tested here\n",
                  kernels::cpu::isa_name(isa));
    }
  }
  EXPECT_TRUE(kernels::cpu::isa_supported(Isa::kScalar));
  EXPECT_TRUE(kernels::cpu::isa_supported(kernels::cpu::active_isa()));
}

TEST(CpuMatmulErrors, RejectsBadShapesAndTypes) {
  ThreadPool pool(1);
  std::vector<float> x(64, 1.0f), out(64);
  std::vector<char> w(4096);
  CpuMatmul mm;
  Tensor xt(x.data(), DType::kF32, {1, 48});
  Tensor wt(w.data(), DType::kQ4_0, {2, 64});
  Tensor ot(out.data(), DType::kF32, {1, 2});
  EXPECT_FALSE(mm.run(pool, xt, wt, ot).ok());  // K mismatch
  EXPECT_FALSE(CpuMatmul::supports(DType::kI32));
  Tensor wi(w.data(), DType::kI32, {2, 48});
  EXPECT_FALSE(mm.run(pool, xt, wi, ot).ok());
}

}  // namespace
}  // namespace tessera::backend
