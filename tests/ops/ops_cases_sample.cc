// Registry cases of Backend::sample: B in {1, 3, 17} x V in {1, 7, 769, 49152}, strided logits,
// rows mixing greedy / plain / top-k / top-p / min-p / all three with their own seeds and
// steps, plus tied and special (NaN, -inf, +inf) rows.
// Invariant: ids are compared bitwise; host backends must equal the reference exactly. The cuda
// column may differ only on a row whose reference u lies within 1e-5 of a CDF boundary of the
// reference's kept list, and then only by one kept position (the row is rewritten to the
// reference's id before the harness compares).
#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "kernels/ref/sampling.h"
#include "tests/ops/ops_harness.h"

namespace tessera::ops_test {
namespace {

using backend::Backend;
using backend::Op;
using backend::SampleParams;

constexpr double kBoundaryTolerance = 1e-5;

kernels::sampling::SampleRowSpec spec_of(const SampleParams& p) {
  kernels::sampling::SampleRowSpec s;
  s.temperature = p.temperature;
  s.top_k = p.top_k;
  s.top_p = p.top_p;
  s.min_p = p.min_p;
  s.seed = p.seed;
  s.step = p.step;
  return s;
}

// Row r's parameters: a cycle of the filter mixes, seeded values.
SampleParams row_params(CaseBuffers& b, int64_t r, int64_t vocab) {
  SampleParams p;
  p.temperature = 0.5f + 0.1f * static_cast<float>(b.uniform_int(0, 10));
  p.seed = static_cast<uint64_t>(b.uniform_int(0, 1ll << 62));
  p.step = static_cast<uint64_t>(b.uniform_int(0, 4096));
  switch (r % 6) {
    case 0:
      p.temperature = 0.0f;
      break;  // greedy
    case 1:
      break;  // plain softmax
    case 2:
      p.top_k = static_cast<int32_t>(b.uniform_int(1, std::max<int64_t>(1, vocab / 2)));
      break;
    case 3:
      p.top_p = 0.05f * static_cast<float>(b.uniform_int(2, 19));
      break;
    case 4:
      p.min_p = 0.02f * static_cast<float>(b.uniform_int(1, 10));
      break;
    case 5:
      p.top_k = static_cast<int32_t>(b.uniform_int(1, 64));
      p.top_p = 0.9f;
      p.min_p = 0.05f;
      break;
  }
  return p;
}

// Runs sample on `be`. A device backend writes into scratch first; a row that differs from the
// reference where the reference's u is within kBoundaryTolerance of a CDF boundary, by one kept
// position, gets the reference's id (the harness then compares everything bitwise).
Status run_sample(Backend& be, const Tensor& logits, const std::vector<SampleParams>& params,
                  Tensor ids) {
  if (!be.is_device()) return be.sample(logits, params, ids);
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  std::vector<int32_t> got(static_cast<size_t>(rows));
  TESSERA_RETURN_IF_ERROR(be.sample(logits, params, Tensor(got.data(), DType::kI32, {rows})));
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = reinterpret_cast<const float*>(static_cast<const char*>(logits.data()) +
                                                      r * logits.stride_bytes(0));
    const auto spec = spec_of(params[r]);
    const int32_t want = kernels::ref::sample_row(row, vocab, spec);
    int32_t out = got[r];
    if (out != want) {
      const auto kept = kernels::ref::sample_kept(row, vocab, spec);
      const double u = kernels::sampling::philox_uniform(spec.seed, spec.step);
      int64_t pos_want = -1, pos_got = -1;
      for (size_t j = 0; j < kept.size(); ++j) {
        if (kept[j].id == want) pos_want = static_cast<int64_t>(j);
        if (kept[j].id == out) pos_got = static_cast<int64_t>(j);
      }
      if (pos_got >= 0 && pos_want >= 0 && std::abs(pos_got - pos_want) == 1 &&
          kernels::ref::cdf_boundary_distance(kept, u) < kBoundaryTolerance) {
        out = want;
      }
    }
    ids.data_as<int32_t>()[r] = out;
  }
  return {};
}

OpCase make_case(std::string name, int64_t rows, int64_t vocab, bool strided,
                 std::function<void(CaseBuffers&, const Tensor&)> edit = {}) {
  OpCase c;
  c.name = std::move(name);
  c.tol = "sample";
  c.op = Op::kSample;
  c.setup = [=](CaseBuffers& b) -> OpFn {
    Tensor logits = b.random(DType::kF32, {rows, vocab}, {strided ? 3 : 0}, 6.0f);
    if (edit) edit(b, logits);
    std::vector<SampleParams> params;
    for (int64_t r = 0; r < rows; ++r) params.push_back(row_params(b, r, vocab));
    Tensor ids = b.output(DType::kI32, {rows});
    return [=](Backend& be) { return run_sample(be, logits, params, ids); };
  };
  return c;
}

}  // namespace

void add_sample_cases(std::vector<OpCase>& cases) {
  for (int64_t rows : {1, 3, 17}) {
    for (int64_t vocab : {1, 7, 769, 49152}) {
      const bool strided = rows == 3;
      cases.push_back(
          make_case(fmt::format("sample/b{}_v{}{}", rows, vocab, strided ? "_strided" : ""), rows,
                    vocab, strided));
    }
  }
  // Few distinct values: ties inside the top-k, at the top-p boundary and in the draw.
  cases.push_back(
      make_case("sample/ties_b12_v769", 12, 769, false, [](CaseBuffers& b, const Tensor& logits) {
        for (int64_t i = 0; i < logits.numel(); ++i) {
          b.set_f32(logits, i, static_cast<float>((i * 7) % 5) - 2.0f);
        }
      }));
  // NaN (never drawn, never wins), a row of -inf but one, a +inf row (greedy), -0 vs +0.
  cases.push_back(make_case("sample/special_b12_v769", 12, 769, false,
                            [](CaseBuffers& b, const Tensor& logits) {
                              const float inf = std::numeric_limits<float>::infinity();
                              const int64_t v = logits.dim(1);
                              for (int64_t i = 0; i < v; i += 3) b.set_f32(logits, 0 * v + i, NAN);
                              for (int64_t i = 0; i < v; i += 5) b.set_f32(logits, 1 * v + i, NAN);
                              for (int64_t i = 0; i < v; ++i)
                                b.set_f32(logits, 2 * v + i, i == 400 ? 1.0f : -inf);
                              b.set_f32(logits, 3 * v + 100, inf);
                              for (int64_t i = 0; i < v; ++i)
                                b.set_f32(logits, 4 * v + i, (i % 2) ? -0.0f : 0.0f);
                              for (int64_t i = 0; i < v; ++i) b.set_f32(logits, 5 * v + i, NAN);
                              for (int64_t i = 0; i < v; ++i)
                                b.set_f32(logits, 7 * v + i, i < 10 ? 1.0f : -inf);
                            }));
}

}  // namespace tessera::ops_test
