// HostBackend::sample over the reference kernel (kernels/ref/sampling.h), row by row. The
// reference and CPU backends share it; the draw depends only on each row and its (seed, step).
// Invariant: out_ids is written only after every row's parameters passed check_sample.
#include "kernels/ref/sampling.h"
#include "src/backend/host_backend.h"
#include "tessera/backend/op_checks.h"

namespace tessera::backend {

namespace {

kernels::sampling::SampleRowSpec to_row_spec(const SampleParams& p) {
  kernels::sampling::SampleRowSpec s;
  s.temperature = p.temperature;
  s.top_k = p.top_k;
  s.top_p = p.top_p;
  s.min_p = p.min_p;
  s.seed = p.seed;
  s.step = p.step;
  return s;
}

}  // namespace

Status HostBackend::sample(const Tensor& logits, std::span<const SampleParams> params,
                           Tensor out_ids) {
  TESSERA_RETURN_IF_ERROR(check_sample(logits, params, out_ids));
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  const char* base = static_cast<const char*>(logits.data());
  int32_t* out = out_ids.data_as<int32_t>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = reinterpret_cast<const float*>(base + r * logits.stride_bytes(0));
    out[r] = kernels::ref::sample_row(row, vocab, to_row_spec(params[r]));
  }
  return {};
}

}  // namespace tessera::backend
