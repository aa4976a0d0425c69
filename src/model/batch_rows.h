// Row gathers the architectures' batched forward passes share: the rows that need logits are
// copied out of the hidden states before the final norm and head.
// Invariant: a run of consecutive indices is one op, so a decode step (indices 0..n-1) costs one
// launch, not n.
#pragma once

#include <cstdint>
#include <span>

#include "tessera/backend/backend.h"
#include "tessera/core/status.h"
#include "tessera/core/tensor.h"

namespace tessera::model {

//   src      f32 [T, D]     backend memory
//   indices  [n]            host values in [0, T) (any order, repeats allowed)
//   dst      f32 [>= n, D]  row i = src row indices[i]
inline Status gather_rows(backend::Backend& be, const Tensor& src, std::span<const int32_t> indices,
                          Tensor dst) {
  const int64_t n = static_cast<int64_t>(indices.size());
  for (int64_t i = 0; i < n;) {
    int64_t run = 1;
    while (i + run < n && indices[i + run] == indices[i] + run) ++run;
    TESSERA_RETURN_IF_ERROR(
        be.convert(src.slice_rows(indices[i], indices[i] + run), dst.slice_rows(i, i + run)));
    i += run;
  }
  return Status::ok_status();
}

}  // namespace tessera::model
