// CUDA Backend::sample: op_checks, then the logits, the per-row parameters (packed as 8 int32
// words each) and out_ids staged like every CUDA op, then kernels/cuda/sampling.
// Invariant: with device logits and device out_ids the op only enqueues work; a host out_ids is
// written back before it returns (Staging::finish). Never captured: params are host values.
#include <cstring>
#include <vector>

#include "kernels/cuda/sampling/sampling.h"
#include "src/backend/cuda/cuda_ops.h"
#include "src/backend/cuda/staging.h"
#include "src/backend/sample_spec.h"
#include "tessera/backend/op_checks.h"

namespace tessera::backend::cuda {
namespace {

namespace ks = kernels::sampling;

}  // namespace

Status cuda_sample(const CudaContext& ctx, const Tensor& logits,
                   std::span<const SampleParams> params, Tensor out_ids) {
  TESSERA_RETURN_IF_ERROR(refuse_while_capturing(
      ctx, "sample",
      "its per-row parameters come from the host on every call (sample after replay)"));
  TESSERA_RETURN_IF_ERROR(check_sample(logits, params, out_ids));
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  if (rows == 0) return Status::ok_status();
  constexpr size_t kWords = sizeof(ks::SampleRowSpec) / sizeof(int32_t);
  std::vector<int32_t> packed(params.size() * kWords);
  for (size_t r = 0; r < params.size(); ++r) {
    const ks::SampleRowSpec spec = sample_row_spec(params[r]);
    std::memcpy(packed.data() + r * kWords, &spec, sizeof spec);
  }
  Staging st(ctx.stream, ctx.arena, "sample");
  const int hl = st.add(logits, false), hp = st.add_ints(packed), ho = st.add(out_ids, true);
  TESSERA_RETURN_IF_ERROR(st.stage());
  const Tensor dl = st.dev(hl);
  Tensor dout = st.dev(ho);
  // NOTE: add_ints buffers are 4-byte aligned at least; the kernel reads specs as 8-byte words.
  const auto* specs = reinterpret_cast<const ks::SampleRowSpec*>(st.dev_ints(hp));
  if (reinterpret_cast<uintptr_t>(specs) % alignof(ks::SampleRowSpec) != 0) {
    return make_error(StatusCode::kInternal, "sample: staged parameters are misaligned");
  }
  TESSERA_CUDA_RETURN(
      kernels::cuda::sample_rows(dl.data_as<const float>(), rows, dl.stride_bytes(0) / 4, vocab,
                                 specs, dout.data_as<int32_t>(), ctx.stream),
      "sample");
  return st.finish();
}

}  // namespace tessera::backend::cuda
