// The kernels' per-row sampling spec from the Backend's SampleParams (the two carry the same
// fields; kernels cannot see backend types). Shared by the host and CUDA sample ops.
#pragma once

#include "kernels/cuda/sampling/sampling_math.h"
#include "tessera/backend/backend.h"

namespace tessera::backend {

inline kernels::sampling::SampleRowSpec sample_row_spec(const SampleParams& p) {
  kernels::sampling::SampleRowSpec s;
  s.temperature = p.temperature;
  s.top_k = p.top_k;
  s.top_p = p.top_p;
  s.min_p = p.min_p;
  s.seed = p.seed;
  s.step = p.step;
  return s;
}

}  // namespace tessera::backend
