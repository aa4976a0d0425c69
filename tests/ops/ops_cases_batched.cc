// Registry cases of matmul_batched (docs/ops.md "matmul_batched"): f32 / f16 / bf16 weights,
// B in {1, 3, 16}, awkward M / N / K, contiguous, padded and MLA-style interleaved layouts
// (x a per-head slice of a token row [M, B, K + extra], out the heads of a token row [M, B, N]).
// Invariant: every output element is written (the out allocation is exactly its view), so the
// reference output is finite; tolerance as matmul.
#include <fmt/format.h>

#include <string>
#include <vector>

#include "tests/ops/ops_harness.h"

namespace tessera::ops_test {
namespace {

using backend::Backend;
using backend::Op;

enum class Layout { kContiguous, kPadded, kInterleaved };

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::kContiguous:
      return "contiguous";
    case Layout::kPadded:
      return "padded";
    case Layout::kInterleaved:
      return "interleaved";
  }
  return "?";
}

struct Shape {
  int64_t b, m, n, k;
};

// [B, M, cols] view of an [M, B, cols + extra] allocation (row stride padded by `pad`): batch b
// of token m starts at m * row + b * (cols + extra), as one head of MLA's [t, H * qk] rows.
Tensor heads_view(const Tensor& alloc, int64_t b, int64_t m, int64_t cols) {
  return Tensor(alloc.data(), DType::kF32, {b, m, cols})
      .with_strides({alloc.stride_bytes(1), alloc.stride_bytes(0), 4});
}

void add_cases_for(std::vector<OpCase>& cases, DType type, const Shape& s, Layout layout) {
  OpCase c;
  c.name = fmt::format("matmul_batched/{}_b{}_m{}_n{}_k{}_{}", dtype_name(type), s.b, s.m, s.n, s.k,
                       layout_name(layout));
  c.tol = "matmul";
  c.op = Op::kMatmulBatched;
  c.type_a = type;
  c.setup = [=](CaseBuffers& b) -> OpFn {
    Tensor x, w, out;
    switch (layout) {
      case Layout::kContiguous:
        x = b.random(DType::kF32, {s.b, s.m, s.k});
        w = b.random(type, {s.b, s.n, s.k});
        out = b.output(DType::kF32, {s.b, s.m, s.n});
        break;
      case Layout::kPadded:
        x = b.random(DType::kF32, {s.b, s.m, s.k}, {5, 3});
        w = b.random(type, {s.b, s.n, s.k}, {7, 2});
        out = b.output(DType::kF32, {s.b, s.m, s.n}, {4, 1});
        break;
      case Layout::kInterleaved:
        // q_nope inside [t, H * (nope + rope)]: 5 unread columns after each head's K.
        x = heads_view(b.random(DType::kF32, {s.m, s.b, s.k + 5}, {3}), s.b, s.m, s.k);
        w = b.random(type, {s.b, s.n, s.k});
        out = heads_view(b.output(DType::kF32, {s.m, s.b, s.n}, {2}), s.b, s.m, s.n);
        break;
    }
    return [=](Backend& be) { return be.matmul_batched(x, w, out); };
  };
  cases.push_back(std::move(c));
}

}  // namespace

void add_batched_cases(std::vector<OpCase>& cases) {
  const Shape shapes[] = {{1, 1, 1, 7},    {1, 7, 33, 130},   {3, 1, 130, 33},
                          {3, 7, 33, 130}, {16, 1, 7, 33},    {16, 33, 7, 64},
                          {3, 64, 1, 33},  {16, 1, 512, 128}, {16, 5, 128, 512}};
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (const Shape& s : shapes) {
      for (Layout layout : {Layout::kContiguous, Layout::kPadded, Layout::kInterleaved}) {
        add_cases_for(cases, type, s, layout);
      }
    }
  }
}

}  // namespace tessera::ops_test
