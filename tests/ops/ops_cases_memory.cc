// Registry cases of the memory ops: copy over every dtype (plain floats compared as values;
// i8, fp8 and block types moved as raw bytes and compared through an i32 view of the same
// memory), strided rows on either side, 1-4 dims; moe_combine over awkward T / top_k / N with
// strided x, weights and out. Invariant: copy is bitwise; unwritten padding keeps its sentinel.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "tessera/backend/op_checks.h"
#include "tests/ops/ops_harness.h"

namespace tessera::ops_test {
namespace {

using backend::Backend;
using backend::Op;

struct CopyShape {
  std::vector<int64_t> shape;
  bool src_strided, dst_strided;
};

void add_copy_plain_cases(std::vector<OpCase>& cases) {
  const CopyShape shapes[] = {{{1}, false, false},       {{1, 1}, false, false},
                              {{7, 769}, true, false},   {{7, 769}, false, true},
                              {{3, 5, 7}, true, true},   {{2, 3, 4, 33}, true, true},
                              {{64, 1536}, false, false}};
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (const CopyShape& s : shapes) {
      std::string dims;
      for (int64_t d : s.shape) dims += fmt::format("{}{}", dims.empty() ? "" : "x", d);
      OpCase c;
      c.name =
          fmt::format("copy/{}_{}{}{}", dtype_name(type), dims, s.src_strided ? "_src_strided" : "",
                      s.dst_strided ? "_dst_strided" : "");
      c.tol = "copy";
      c.op = Op::kCopy;
      c.type_a = type;
      c.setup = [=](CaseBuffers& b) -> OpFn {
        const int nd = static_cast<int>(s.shape.size());
        std::vector<int64_t> src_pads(nd > 1 ? nd - 1 : 0, 0), dst_pads = src_pads;
        for (int d = 0; d + 1 < nd; ++d) {
          if (s.src_strided) src_pads[d] = 3 + d;
          if (s.dst_strided) dst_pads[d] = 5 - d;
        }
        Tensor src = b.random(type, s.shape, src_pads, 3.0f);
        Tensor dst = b.output(type, s.shape, dst_pads);
        return [=](Backend& be) { return be.copy(src, dst); };
      };
      cases.push_back(std::move(c));
    }
  }
}

int64_t lcm(int64_t a, int64_t b) { return a / std::gcd(a, b) * b; }

// Non-float dtypes: [rows, cols] views over f32 (source) / i32 (destination) buffers of the
// same bytes, so the harness compares every destination byte bitwise.
void add_copy_raw_cases(std::vector<OpCase>& cases) {
  struct Raw {
    DType type;
    int64_t rows, cols;
    bool strided;
  };
  const Raw raws[] = {{DType::kI8, 7, 68, true},       {DType::kFP8_E4M3, 5, 132, false},
                      {DType::kFP8_E4M3, 3, 36, true}, {DType::kQ4_0, 5, 256, true},
                      {DType::kQ4_1, 1, 64, false},    {DType::kQ8_0, 9, 128, true},
                      {DType::kQ4_K, 3, 512, true},    {DType::kQ6_K, 4, 512, true},
                      {DType::kI32, 6, 17, true}};
  for (const Raw& r : raws) {
    const DTypeInfo& info = dtype_info(r.type);
    const int64_t row_bytes = r.cols / info.block_elems * info.block_bytes;
    OpCase c;
    c.name = fmt::format("copy/{}_{}x{}{}", dtype_name(r.type), r.rows, r.cols,
                         r.strided ? "_strided" : "");
    c.tol = "copy";
    c.op = Op::kCopy;
    c.type_a = r.type;
    c.setup = [=](CaseBuffers& b) -> OpFn {
      // Row padding that keeps strides whole blocks and whole 4-byte words.
      const int64_t pad_bytes = r.strided ? lcm(info.block_bytes, 4) : 0;
      Tensor src_words = b.random(DType::kF32, {r.rows, row_bytes / 4}, {pad_bytes / 4});
      Tensor dst_words = b.output(DType::kI32, {r.rows, row_bytes / 4}, {2 * pad_bytes / 4});
      Tensor src = Tensor(src_words.data(), r.type, {r.rows, r.cols})
                       .with_strides({src_words.stride_bytes(0), info.block_bytes});
      Tensor dst = Tensor(dst_words.data(), r.type, {r.rows, r.cols})
                       .with_strides({dst_words.stride_bytes(0), info.block_bytes});
      return [=](Backend& be) { return be.copy(src, dst); };
    };
    cases.push_back(std::move(c));
  }
}

void add_moe_combine_cases(std::vector<OpCase>& cases) {
  struct Shape {
    int64_t tokens, top_k, n;
    bool strided;
  };
  const Shape shapes[] = {{1, 1, 1, false},   {7, 2, 769, true},   {33, 8, 64, false},
                          {5, 6, 1536, true}, {1, 8, 7168, false}, {17, 3, 33, true}};
  for (const Shape& s : shapes) {
    OpCase c;
    c.name = fmt::format("moe_combine/t{}_top{}_n{}{}", s.tokens, s.top_k, s.n,
                         s.strided ? "_strided" : "");
    c.tol = "moe_combine";
    c.op = Op::kMoeCombine;
    c.setup = [=](CaseBuffers& b) -> OpFn {
      Tensor x = b.random(DType::kF32, {s.tokens, s.top_k, s.n},
                          {s.strided ? 5 : 0, s.strided ? 3 : 0}, 2.0f);
      Tensor w = b.random(DType::kF32, {s.tokens, s.top_k}, {s.strided ? 2 : 0});
      Tensor out = b.output(DType::kF32, {s.tokens, s.n}, {s.strided ? 7 : 0});
      return [=](Backend& be) { return be.moe_combine(x, w, out); };
    };
    cases.push_back(std::move(c));
  }
}

}  // namespace

void add_memory_cases(std::vector<OpCase>& cases) {
  add_copy_plain_cases(cases);
  add_copy_raw_cases(cases);
  add_moe_combine_cases(cases);
}

}  // namespace tessera::ops_test

// The contracts (op_checks_memory.cc): what copy and moe_combine refuse, with the op named.

namespace tessera::ops_test {
namespace {

TEST(MemoryOpChecks, CopyRejectsMismatchesAndOverlap) {
  std::vector<float> a(64), b(64);
  Tensor x(a.data(), DType::kF32, {4, 16});
  EXPECT_TRUE(backend::check_copy(x, Tensor(b.data(), DType::kF32, {4, 16})).ok());
  Status dtype = backend::check_copy(x, Tensor(b.data(), DType::kF16, {4, 16}));
  EXPECT_EQ(dtype.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(dtype.message().find("copy:"), std::string::npos) << dtype.message();
  EXPECT_FALSE(backend::check_copy(x, Tensor(b.data(), DType::kF32, {2, 32})).ok());
  EXPECT_FALSE(backend::check_copy(x, Tensor(a.data() + 8, DType::kF32, {4, 16})).ok());
  // Rows must be contiguous in their last dim.
  EXPECT_FALSE(
      backend::check_copy(x.with_strides({64, 8}), Tensor(b.data(), DType::kF32, {4, 16})).ok());
}

TEST(MemoryOpChecks, MoeCombineShapes) {
  std::vector<float> x(2 * 3 * 8), w(6), out(16);
  Tensor tx(x.data(), DType::kF32, {2, 3, 8}), tw(w.data(), DType::kF32, {2, 3});
  EXPECT_TRUE(backend::check_moe_combine(tx, tw, Tensor(out.data(), DType::kF32, {2, 8})).ok());
  EXPECT_FALSE(backend::check_moe_combine(tx, Tensor(w.data(), DType::kF32, {3, 2}),
                                          Tensor(out.data(), DType::kF32, {2, 8}))
                   .ok());
  EXPECT_FALSE(backend::check_moe_combine(tx, tw, Tensor(out.data(), DType::kF32, {2, 7})).ok());
  EXPECT_FALSE(backend::check_moe_combine(tx, tw, Tensor(x.data(), DType::kF32, {2, 8})).ok());
  EXPECT_FALSE(backend::check_moe_combine(Tensor(x.data(), DType::kF32, {6, 8}), tw,
                                          Tensor(out.data(), DType::kF32, {2, 8}))
                   .ok());
}

}  // namespace
}  // namespace tessera::ops_test
