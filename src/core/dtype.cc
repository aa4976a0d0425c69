// DType tables: names, block geometry, and the name/id mappings used by the loaders.
#include "tessera/core/dtype.h"

#include "kernels/ref/quant.h"
#include "tessera/core/check.h"

namespace tessera {
namespace {

struct Entry {
  DType type;
  DTypeInfo info;
};

constexpr DTypeInfo make_info(DType t, std::string_view name, bool quantized, bool is_float) {
  const auto traits = kernels::elem_traits(t);
  return {name, traits.block_elems, traits.block_bytes, quantized, is_float};
}

constexpr Entry kEntries[] = {
    {DType::kF32, make_info(DType::kF32, "f32", false, true)},
    {DType::kF16, make_info(DType::kF16, "f16", false, true)},
    {DType::kBF16, make_info(DType::kBF16, "bf16", false, true)},
    {DType::kF64, make_info(DType::kF64, "f64", false, true)},
    {DType::kFP8_E4M3, make_info(DType::kFP8_E4M3, "fp8_e4m3", false, true)},
    {DType::kFP8_E5M2, make_info(DType::kFP8_E5M2, "fp8_e5m2", false, true)},
    {DType::kI8, make_info(DType::kI8, "i8", false, false)},
    {DType::kU8, make_info(DType::kU8, "u8", false, false)},
    {DType::kBool, make_info(DType::kBool, "bool", false, false)},
    {DType::kI16, make_info(DType::kI16, "i16", false, false)},
    {DType::kI32, make_info(DType::kI32, "i32", false, false)},
    {DType::kI64, make_info(DType::kI64, "i64", false, false)},
    {DType::kQ4_0, make_info(DType::kQ4_0, "q4_0", true, false)},
    {DType::kQ4_1, make_info(DType::kQ4_1, "q4_1", true, false)},
    {DType::kQ8_0, make_info(DType::kQ8_0, "q8_0", true, false)},
    {DType::kQ8_1, make_info(DType::kQ8_1, "q8_1", true, false)},
    {DType::kQ4_K, make_info(DType::kQ4_K, "q4_k", true, false)},
    {DType::kQ6_K, make_info(DType::kQ6_K, "q6_k", true, false)},
    {DType::kQ8_K, make_info(DType::kQ8_K, "q8_k", true, false)},
};

}  // namespace

const DTypeInfo& dtype_info(DType t) {
  for (const auto& e : kEntries) {
    if (e.type == t) return e.info;
  }
  TESSERA_CHECK(false, "unknown dtype id {}", static_cast<uint32_t>(t));
  __builtin_unreachable();
}

int64_t dtype_row_bytes(DType t, int64_t num_elems) {
  const auto& info = dtype_info(t);
  TESSERA_CHECK(num_elems % info.block_elems == 0, "{} values is not a whole number of {} blocks",
                num_elems, info.name);
  return num_elems / info.block_elems * info.block_bytes;
}

std::optional<DType> dtype_from_ggml_id(uint32_t id) {
  // Only ids that exist in ggml and that we can compute with; the FP8/u8/bool/i64 ids are ours.
  switch (id) {
    case 0: case 1: case 2: case 3: case 8: case 9: case 12: case 14: case 15:
    case 24: case 25: case 26: case 28: case 30:
      return static_cast<DType>(id);
    default:
      return std::nullopt;
  }
}

std::optional<DType> dtype_from_safetensors(std::string_view name) {
  if (name == "F32") return DType::kF32;
  if (name == "F16") return DType::kF16;
  if (name == "BF16") return DType::kBF16;
  if (name == "F64") return DType::kF64;
  if (name == "F8_E4M3") return DType::kFP8_E4M3;
  if (name == "F8_E5M2") return DType::kFP8_E5M2;
  if (name == "I8") return DType::kI8;
  if (name == "U8") return DType::kU8;
  if (name == "BOOL") return DType::kBool;
  if (name == "I16") return DType::kI16;
  if (name == "I32") return DType::kI32;
  if (name == "I64") return DType::kI64;
  return std::nullopt;
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& e : kEntries) {
    if (e.info.name == name) return e.type;
  }
  return std::nullopt;
}

void convert_to_f32(DType src_type, const void* src, float* dst, int64_t n) {
  const bool ok = kernels::ref::dequantize_row(src_type, src, dst, n);
  TESSERA_CHECK(ok, "no f32 conversion from {}", dtype_name(src_type));
}

}  // namespace tessera
