// Layout and dtype checks the op contracts share (op_checks.cc, op_checks_memory.cc, ...).
// Each returns invalid_argument naming the op and the operand, so a caller can fix the call.
#pragma once

#include <string_view>

#include "tessera/core/status.h"
#include "tessera/core/tensor.h"

namespace tessera::backend {

// Present, min_ndim..max_ndim dims, innermost contiguous, outer strides whole positive multiples
// of the element (or block) size.
Status check_layout(std::string_view op, std::string_view name, const Tensor& t, int min_ndim,
                    int max_ndim);
Status check_dtype(std::string_view op, std::string_view name, const Tensor& t, DType want);
bool same_shape(const Tensor& a, const Tensor& b);
Status check_same_shape(std::string_view op, std::string_view a_name, const Tensor& a,
                        std::string_view b_name, const Tensor& b);
// Whether the byte ranges two checked tensors span intersect (op_checks_memory.cc).
bool overlaps(const Tensor& a, const Tensor& b);

}  // namespace tessera::backend
