// HostBackend::sample over the reference kernel (kernels/ref/sampling.h), row by row. The
// reference and CPU backends share it; the draw depends only on each row and its (seed, step).
// Invariant: out_ids is written only after every row's parameters passed check_sample.
#include "kernels/ref/sampling.h"
#include "src/backend/host_backend.h"
#include "src/backend/sample_spec.h"
#include "tessera/backend/op_checks.h"

namespace tessera::backend {

Status HostBackend::sample(const Tensor& logits, std::span<const SampleParams> params,
                           Tensor out_ids) {
  TESSERA_RETURN_IF_ERROR(check_sample(logits, params, out_ids));
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  const char* base = static_cast<const char*>(logits.data());
  int32_t* out = out_ids.data_as<int32_t>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = reinterpret_cast<const float*>(base + r * logits.stride_bytes(0));
    out[r] = kernels::ref::sample_row(row, vocab, sample_row_spec(params[r]));
  }
  return {};
}

}  // namespace tessera::backend
