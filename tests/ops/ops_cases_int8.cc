// INT8 matmul (docs/ops.md "INT8 matmul"): registry cases for matmul_int8 in both modes
// (M {1, 7, 64} x K {32, 100, 4096} x N {1, 33, 256}, strided rows, a zero row and outlier rows,
// weight codes over the full i8 range), every CPU ISA held bitwise (W8A8) / 1e-10 NMSE
// (weight-only) to the reference, the quantisation formula on exact ties and tiny rows, the
// CUDA kernels' host-visible math (int8_math.h) against the reference, and W8A8 against the f32
// matmul of the dequantised operands within the quantisation error bound; and a golden fixture
// from torch (scripts/make_int8_fixtures.py) for the quantisation and both modes.
// Invariant: x is random non-zero except the one deliberate zero row.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/int8_matmul.h"
#include "kernels/cuda/gemm/int8_math.h"
#include "kernels/ref/int8_matmul.h"
#include "src/backend/cpu_int8.h"
#include "tessera/backend/backend.h"
#include "tessera/core/thread_pool.h"
#include "tessera/model/safetensors.h"
#include "tests/ops/ops_harness.h"

namespace tessera::ops_test {
namespace {

using backend::Backend;
using backend::Int8Mode;
using backend::Op;
using kernels::cpu::Isa;

// Overwrites the logical bytes of an i8 tensor [rows, cols] (rows may be strided) with random
// codes over the whole range, -128 included.
void fill_codes(CaseBuffers& b, const Tensor& w) {
  for (int64_t r = 0; r < w.dim(0); ++r) {
    auto* row = static_cast<int8_t*>(w.data()) + r * w.stride_bytes(0);
    for (int64_t c = 0; c < w.dim(1); ++c) row[c] = static_cast<int8_t>(b.rng()() & 0xff);
  }
}

Tensor random_codes(CaseBuffers& b, int64_t rows, int64_t cols, int64_t pad) {
  Tensor w = b.random(DType::kI8, {rows, cols}, {pad});
  fill_codes(b, w);
  return w;
}

// x [m, k]: random, then row 1 (m > 1) all zero and row 2 (or row 0 when m <= 2) with outliers
// 40x the others at a few columns, so its scale is set by them.
Tensor activations(CaseBuffers& b, int64_t m, int64_t k, int64_t pad) {
  Tensor x = b.random(DType::kF32, {m, k}, {pad});
  if (m > 1) std::memset(x.row(1).data(), 0, static_cast<size_t>(k) * 4);
  auto* outlier = x.row(m > 2 ? 2 : 0).data_as<float>();
  for (int64_t c = 0; c < k; c += 37) outlier[c] *= 40.0f;
  return x;
}

const char* mode_name(Int8Mode mode) { return mode == Int8Mode::kW8A8 ? "w8a8" : "weight_only"; }

void add_registry_cases(std::vector<OpCase>& cases) {
  int index = 0;
  for (Int8Mode mode : {Int8Mode::kW8A8, Int8Mode::kWeightOnly}) {
    for (int64_t m : {1, 7, 64}) {
      for (int64_t k : {32, 100, 4096}) {
        for (int64_t n : {1, 33, 256}) {
          const bool strided = (index++ % 2) == 1;
          OpCase c;
          c.name = fmt::format("matmul_int8/{}_m{}_k{}_n{}{}", mode_name(mode), m, k, n,
                               strided ? "_strided" : "");
          c.tol = mode == Int8Mode::kW8A8 ? "matmul_int8_w8a8" : "matmul_int8_weight_only";
          c.op = Op::kMatmulInt8;
          c.type_a = DType::kI8;
          c.type_b = DType::kF32;
          c.setup = [=](CaseBuffers& b) -> OpFn {
            const int64_t pad = strided ? 5 : 0;
            Tensor x = activations(b, m, k, pad);
            Tensor w = random_codes(b, n, k, strided ? 7 : 0);
            Tensor scale = b.random(DType::kF32, {n}, {}, 0.01f);
            Tensor out = b.output(DType::kF32, {m, n}, {strided ? 3 : 0});
            return [=](Backend& be) { return be.matmul_int8(x, w, scale, mode, out); };
          };
          cases.push_back(std::move(c));
        }
      }
    }
  }
}

// ---- direct tests ----

struct Problem {
  CaseBuffers b;
  Tensor x, w, scale;
  Problem(uint64_t seed, int64_t m, int64_t k, int64_t n) : b(seed) {
    x = activations(b, m, k, 3);
    w = random_codes(b, n, k, 5);
    scale = b.random(DType::kF32, {n}, {}, 0.01f);
  }
};

double nmse(const std::vector<float>& got, const std::vector<float>& want) {
  double err2 = 0.0, ref2 = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    err2 += (static_cast<double>(got[i]) - want[i]) * (got[i] - want[i]);
    ref2 += static_cast<double>(want[i]) * want[i];
  }
  return err2 / ref2;
}

TEST(Int8Cpu, EveryIsaMatchesReference) {
  struct Shape {
    int64_t m, k, n;
  };
  // k = 4100: whole 64/32-byte steps plus a tail; m = 9 and 6: row groups of 4 plus 1 and 2.
  const Shape shapes[] = {{1, 4100, 70}, {9, 300, 40}, {6, 77, 129}, {3, 4096, 17}};
  ThreadPool pool(2);
  for (const Shape& sh : shapes) {
    Problem p(sh.m * 1000003 + sh.n * 101 + sh.k, sh.m, sh.k, sh.n);
    for (Int8Mode mode : {Int8Mode::kW8A8, Int8Mode::kWeightOnly}) {
      std::vector<float> want(sh.m * sh.n), got(sh.m * sh.n);
      Tensor wt(want.data(), DType::kF32, {sh.m, sh.n});
      Tensor gt(got.data(), DType::kF32, {sh.m, sh.n});
      ASSERT_TRUE(backend::make_reference_backend()->matmul_int8(p.x, p.w, p.scale, mode, wt).ok());
      for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
        if (!kernels::cpu::isa_supported(isa)) continue;
        const std::string where = fmt::format("{} {} m{} k{} n{}", kernels::cpu::isa_name(isa),
                                              mode_name(mode), sh.m, sh.k, sh.n);
        backend::CpuInt8Matmul mm(isa);
        ASSERT_TRUE(mm.run(pool, p.x, p.w, p.scale, mode, gt).ok()) << where;
        if (mode == Int8Mode::kW8A8) {
          for (size_t i = 0; i < want.size(); ++i) {
            ASSERT_EQ(std::memcmp(&got[i], &want[i], 4), 0)
                << where << " element " << i << ": " << got[i] << " vs " << want[i];
          }
        } else {
          EXPECT_LT(nmse(got, want), 1e-10) << where;
        }
      }
    }
  }
}

TEST(Int8Quant, TiesTinyRowsAndEveryIsaAgree) {
  // Row 0: amax 127 -> s = 1 exactly, so x / s hits every half-way case: half to even.
  // Row 1: all zero. Row 2: a subnormal amax (s > 0). Row 3: amax / 127 underflows to 0.
  const int64_t k = 40;
  std::vector<float> x(4 * k, 0.0f);
  const float ties[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f, -126.5f, 127.0f, -127.0f};
  for (int64_t c = 0; c < k; ++c) x[c] = c < 10 ? ties[c] : 0.37f * static_cast<float>(c - 20);
  x[0] = 127.0f;
  for (int64_t c = 0; c < k; ++c) x[2 * k + c] = 1e-39f * static_cast<float>(c % 5 - 2);
  x[3 * k + 7] = 1e-45f;
  std::vector<int8_t> want(4 * k);
  float want_s[4];
  for (int r = 0; r < 4; ++r)
    want_s[r] = kernels::ref::quantize_row_int8(&x[r * k], k, &want[r * k]);
  EXPECT_EQ(want_s[0], 1.0f);
  EXPECT_EQ(want[1], 2);    // 1.5 -> 2
  EXPECT_EQ(want[2], 2);    // 2.5 -> 2
  EXPECT_EQ(want[3], 0);    // -0.5 -> -0
  EXPECT_EQ(want[6], 126);  // 126.5 -> 126
  EXPECT_EQ(want_s[1], 0.0f);
  EXPECT_GT(want_s[2], 0.0f);
  EXPECT_EQ(want_s[3], 0.0f);
  for (int64_t c = 0; c < k; ++c) EXPECT_EQ(want[3 * k + c], 0);
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (!kernels::cpu::isa_supported(isa)) continue;
    const int64_t stride = kernels::cpu::int8_q_stride(k);
    std::vector<int8_t> got(4 * stride);
    float got_s[4];
    kernels::cpu::quantize_rows_int8(isa, x.data(), k, k, got.data(), stride, got_s, 0, 4);
    for (int r = 0; r < 4; ++r) {
      EXPECT_EQ(got_s[r], want_s[r]) << kernels::cpu::isa_name(isa) << " row " << r;
      for (int64_t c = 0; c < k; ++c) {
        EXPECT_EQ(got[r * stride + c], want[r * k + c])
            << kernels::cpu::isa_name(isa) << " row " << r << " col " << c;
      }
    }
  }
}

// The CUDA kernels' quantisation and output scaling, compiled for the host, against the
// reference on random rows.
TEST(Int8CudaMath, QuantisationAndScalingMatchReference) {
  namespace q8 = kernels::cuda::int8;
  CaseBuffers b(11);
  const int64_t m = 8, k = 300;
  Tensor x = activations(b, m, k, 0);
  for (int64_t r = 0; r < m; ++r) {
    const float* xr = x.row(r).data_as<const float>();
    std::vector<int8_t> want(k);
    const float s = kernels::ref::quantize_row_int8(xr, k, want.data());
    float amax = 0.0f;
    for (int64_t c = 0; c < k; ++c) amax = std::fmax(amax, std::fabs(xr[c]));
    ASSERT_EQ(q8::scale_of_amax(amax), s);
    for (int64_t c = 0; c < k; ++c)
      ASSERT_EQ(q8::quantize_value(xr[c], s), want[c]) << r << "," << c;
  }
  const float ties[] = {0.5f, 1.5f, 2.5f, -2.5f, 126.5f, 127.49f, -127.6f};
  const int8_t rounded[] = {0, 2, 2, -2, 126, 127, -127};
  for (int i = 0; i < 7; ++i) EXPECT_EQ(q8::quantize_value(ties[i], 1.0f), rounded[i]) << ties[i];
  EXPECT_EQ(q8::quantize_value(3.0f, 0.0f), 0);
  const float d = 123457.0f, s = 0.0123f, ws = 0.0071f;
  EXPECT_EQ(q8::scale_output(123457, s, ws), d * s * ws);
}

// The fragment helpers describe PTX's m16n8k32 s8 layout: across the warp's 32 lanes, A's 4
// registers of 4 bytes, B's 2 and C's 4 int32 each cover their tile exactly once, A and B
// registers hold 4 consecutive k, and a lane's C registers sit in its A rows and B columns.
TEST(Int8CudaMath, MmaFragmentsCoverTheirTilesOnce) {
  namespace q8 = kernels::cuda::int8;
  int a_cover[16][32] = {}, b_cover[8][32] = {}, c_cover[16][8] = {};
  for (int lane = 0; lane < 32; ++lane) {
    for (int r = 0; r < 4; ++r) {
      EXPECT_EQ(q8::frag_a_k(lane, r) % 4, 0);
      for (int i = 0; i < 4; ++i) ++a_cover[q8::frag_a_row(lane, r)][q8::frag_a_k(lane, r) + i];
      const int row = q8::frag_c_row(lane, r), col = q8::frag_c_col(lane, r);
      ++c_cover[row][col];
      EXPECT_TRUE(row == q8::frag_a_row(lane, 0) || row == q8::frag_a_row(lane, 1));
    }
    for (int r = 0; r < 2; ++r) {
      for (int i = 0; i < 4; ++i) ++b_cover[q8::frag_b_col(lane)][q8::frag_b_k(lane, r) + i];
    }
  }
  for (auto& row : a_cover)
    for (int v : row) EXPECT_EQ(v, 1);
  for (auto& row : b_cover)
    for (int v : row) EXPECT_EQ(v, 1);
  for (auto& row : c_cover)
    for (int v : row) EXPECT_EQ(v, 1);
}

// Shared-memory addressing of the W8A8 kernel: stage chunks cover the tile once, rows are
// 16-byte aligned, and the 32 lanes of a fragment load hit 32 distinct banks.
TEST(Int8CudaMath, StageChunksAndBanks) {
  namespace q8 = kernels::cuda::int8;
  std::vector<int> cover(q8::kBM * q8::kBK, 0);
  for (int c = 0; c < q8::kChunksPerTile; ++c) {
    const int row = q8::chunk_row(c), kb = q8::chunk_kbyte(c);
    ASSERT_LT(row, q8::kBM);
    EXPECT_EQ(q8::smem_offset(row, kb) % 16, 0);
    for (int i = 0; i < 16; ++i) ++cover[row * q8::kBK + kb + i];
  }
  for (int v : cover) EXPECT_EQ(v, 1);
  for (int r = 0; r < 4; ++r) {
    bool bank_used[32] = {};
    for (int lane = 0; lane < 32; ++lane) {
      const int bank = q8::smem_offset(q8::frag_a_row(lane, r), q8::frag_a_k(lane, r)) / 4 % 32;
      EXPECT_FALSE(bank_used[bank]) << "register " << r << " lane " << lane;
      bank_used[bank] = true;
    }
  }
  EXPECT_EQ(q8::q_ldq(1), 64);
  EXPECT_EQ(q8::q_ldq(4096), 4096);
  EXPECT_EQ(q8::q_ldq(4097), 4160);
}

// Split-K policy of the W8A8 GEMM: no split once the tiles fill the GPU; otherwise every K
// stage belongs to exactly one split and each split has at least 2 stages.
TEST(Int8CudaMath, SplitKPartitionsStagesOnce) {
  namespace q8 = kernels::cuda::int8;
  EXPECT_EQ(q8::w8a8_splits(4096, 4096, 4096, 132), 1);
  EXPECT_EQ(q8::w8a8_splits(1, 4096, 64, 132), 1);  // one K stage
  EXPECT_GT(q8::w8a8_splits(1, 4096, 4096, 132), 1);
  EXPECT_GT(q8::w8a8_splits(64, 14336, 4096, 132), 1);
  for (int64_t m : {1, 7, 64, 300}) {
    for (int64_t n : {1, 33, 4096, 14336}) {
      for (int64_t k : {32, 100, 4096, 14336}) {
        const int s = q8::w8a8_splits(m, n, k, 132);
        const int64_t k_tiles = (k + q8::kBK - 1) / q8::kBK;
        ASSERT_GE(s, 1);
        ASSERT_LE(s, 32);
        if (s > 1) {
          ASSERT_GE(k_tiles / s, 2) << m << " " << n << " " << k;
        }
        EXPECT_EQ(q8::split_begin(k_tiles, 0, s), 0);
        EXPECT_EQ(q8::split_begin(k_tiles, s, s), k_tiles);
        for (int z = 0; z < s; ++z) {
          EXPECT_LT(q8::split_begin(k_tiles, z, s), q8::split_begin(k_tiles, z + 1, s));
        }
      }
    }
  }
}

// W8A8 against the f32 matmul of x and the dequantised weights: per element, the error is at
// most sum_k |x - q s| |w| w_scale <= (s / 2) sum_k |w| w_scale (plus f32 rounding).
TEST(Int8Accuracy, W8A8WithinQuantisationErrorOfF32) {
  const int64_t m = 7, k = 4096, n = 64;
  Problem p(99, m, k, n);
  std::vector<float> got(m * n);
  Tensor gt(got.data(), DType::kF32, {m, n});
  ASSERT_TRUE(
      backend::make_cpu_backend()->matmul_int8(p.x, p.w, p.scale, Int8Mode::kW8A8, gt).ok());
  double err2 = 0.0, ref2 = 0.0;
  for (int64_t i = 0; i < m; ++i) {
    const float* x = p.x.row(i).data_as<const float>();
    float amax = 0.0f;
    for (int64_t c = 0; c < k; ++c) amax = std::fmax(amax, std::fabs(x[c]));
    const double s = amax / 127.0;
    for (int64_t j = 0; j < n; ++j) {
      const auto* w = static_cast<const int8_t*>(p.w.data()) + j * p.w.stride_bytes(0);
      const double ws = p.scale.data_as<const float>()[j];
      double exact = 0.0, bound = 0.0;
      for (int64_t c = 0; c < k; ++c) {
        exact += static_cast<double>(x[c]) * w[c] * ws;
        bound += 0.5 * s * std::abs(w[c]) * std::fabs(ws);
      }
      const double e = got[i * n + j] - exact;
      EXPECT_LE(std::fabs(e), bound * (1 + 1e-6) + 1e-6 * std::fabs(exact)) << i << "," << j;
      err2 += e * e;
      ref2 += exact * exact;
    }
  }
  // Random data: errors add like a random walk, far below the worst case.
  EXPECT_LT(err2 / ref2, 1e-3);
  EXPECT_GT(err2, 0.0);  // it is a quantised result
}

// torch's per-token quantisation and both modes (scripts/make_int8_fixtures.py): the
// reference and the CPU backend quantise and compute W8A8 bit for bit as torch does.
TEST(Int8Golden, MatchesTorch) {
  auto model = model::SafetensorsModel::open(std::string(TESSERA_FIXTURES_DIR) +
                                             "/int8/int8_matmul.safetensors");
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  const char* names[] = {"x", "w", "w_scale", "q", "x_scale", "out_w8a8", "out_weight_only"};
  const model::SafetensorsTensor* t[7];
  for (int i = 0; i < 7; ++i) {
    t[i] = model->find(names[i]);
    ASSERT_NE(t[i], nullptr) << names[i];
  }
  const Tensor x = model->tensor(*t[0]), w = model->tensor(*t[1]), ws = model->tensor(*t[2]);
  ASSERT_EQ(w.dtype(), DType::kI8);
  const int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
  const auto* want_q = static_cast<const int8_t*>(t[3]->data);
  const auto* want_s = static_cast<const float*>(t[4]->data);
  std::vector<int8_t> q(k);
  for (int64_t i = 0; i < m; ++i) {
    const float s = kernels::ref::quantize_row_int8(x.row(i).data_as<const float>(), k, q.data());
    EXPECT_EQ(s, want_s[i]) << "row " << i;
    EXPECT_EQ(std::memcmp(q.data(), want_q + i * k, static_cast<size_t>(k)), 0) << "row " << i;
  }
  std::vector<float> out(m * n);
  Tensor ot(out.data(), DType::kF32, {m, n});
  for (auto& be : {backend::make_reference_backend(), backend::make_cpu_backend()}) {
    ASSERT_TRUE(be->matmul_int8(x, w, ws, Int8Mode::kW8A8, ot).ok()) << be->name();
    EXPECT_EQ(std::memcmp(out.data(), t[5]->data, out.size() * 4), 0) << be->name();
    ASSERT_TRUE(be->matmul_int8(x, w, ws, Int8Mode::kWeightOnly, ot).ok()) << be->name();
    const auto* want = static_cast<const float*>(t[6]->data);
    EXPECT_LT(nmse(out, std::vector<float>(want, want + m * n)), 1e-12) << be->name();
  }
}

TEST(Int8Checks, ClearMessagesForBadOperands) {
  std::vector<float> x(2 * 256), out(2 * 64), scale(64);
  std::vector<int8_t> w(64 * 256);
  Tensor xt(x.data(), DType::kF32, {2, 256});
  Tensor wt(w.data(), DType::kI8, {64, 256});
  Tensor st(scale.data(), DType::kF32, {64});
  Tensor ot(out.data(), DType::kF32, {2, 64});
  for (auto& be : {backend::make_reference_backend(), backend::make_cpu_backend()}) {
    EXPECT_TRUE(be->matmul_int8(xt, wt, st, Int8Mode::kW8A8, ot).ok()) << be->name();
    Tensor bad_scale(scale.data(), DType::kF32, {63});
    Status s = be->matmul_int8(xt, wt, bad_scale, Int8Mode::kW8A8, ot);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.to_string().find("w_scale f32[63] must be a contiguous f32[64]"), std::string::npos)
        << s.to_string();
    Tensor f8_w(w.data(), DType::kFP8_E4M3, {64, 256});
    s = be->matmul_int8(xt, f8_w, st, Int8Mode::kWeightOnly, ot);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.to_string().find("must be i8"), std::string::npos) << s.to_string();
    // Shapes only (nothing is read): K past the int32 bound is refused in W8A8 only.
    Tensor big_x(x.data(), DType::kF32, {1, 200000});
    Tensor big_w(w.data(), DType::kI8, {64, 200000});
    Tensor big_o(out.data(), DType::kF32, {1, 64});
    s = be->matmul_int8(big_x, big_w, st, Int8Mode::kW8A8, big_o);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.to_string().find("int32 overflow"), std::string::npos) << s.to_string();
  }
}

}  // namespace

void add_int8_cases(std::vector<OpCase>& cases) { add_registry_cases(cases); }

}  // namespace tessera::ops_test
