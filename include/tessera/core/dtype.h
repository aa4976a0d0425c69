// DType: the element types a Tensor may hold, with their block geometry and names.
// Invariant: DType is kernels::ElemType (ggml-numbered), so GGUF ids convert by a checked cast
// and kernels receive the same enum without seeing core/.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "kernels/common/types.h"

namespace tessera {

using DType = kernels::ElemType;

struct DTypeInfo {
  std::string_view name;   // "f32", "q4_1", ...
  int64_t block_elems;     // values per block (1 for plain types)
  int64_t block_bytes;     // bytes per block
  bool is_quantized;       // block-quantized (GGUF) type
  bool is_float;           // f32/f16/bf16/f64/fp8
};

const DTypeInfo& dtype_info(DType t);
inline std::string_view dtype_name(DType t) { return dtype_info(t).name; }

// Bytes for `num_elems` values; num_elems must be a multiple of the block size.
int64_t dtype_row_bytes(DType t, int64_t num_elems);

// GGML type id -> DType; nullopt for ids Tessera cannot load.
std::optional<DType> dtype_from_ggml_id(uint32_t id);
// Safetensors dtype string ("F32", "BF16", "F8_E4M3", ...) -> DType.
std::optional<DType> dtype_from_safetensors(std::string_view name);
std::optional<DType> dtype_from_name(std::string_view name);

// Convert `n` values of type `src_type` (any plain or block type) to f32.
// For block types n must be a multiple of the block size.
void convert_to_f32(DType src_type, const void* src, float* dst, int64_t n);

}  // namespace tessera
