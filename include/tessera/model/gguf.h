// GgufFile: a parsed GGUF (v2/v3) file — metadata key/values and tensor infos over a mapping.
// Invariant: parsing bounds-checks every read, so after a successful parse every stored value
// and every tensor's [offset, offset + nbytes) lies inside the buffer; getters never fail
// on a value that parsed. Values are decoded lazily from the buffer (no copies of big arrays).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tessera/core/dtype.h"
#include "tessera/core/status.h"
#include "tessera/core/tensor.h"
#include "tessera/model/mapped_file.h"

namespace tessera::model {

// GGUF metadata value type ids (on-disk numbering).
enum class GgufValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

struct GgufTensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;  // row-major, outermost first (ggml ne[] reversed)
  uint64_t offset;             // absolute byte offset in the file
  uint64_t nbytes;
};

// One metadata value: where its payload lies in the buffer.
struct GgufValue {
  GgufValueType type = GgufValueType::kU8;
  GgufValueType elem_type = GgufValueType::kU8;  // arrays only
  uint64_t count = 0;                            // strings: bytes; arrays: elements; scalars: 1
  uint64_t offset = 0;  // absolute offset of the payload (scalar, string bytes, first element)
};

class GgufFile {
 public:
  static Result<GgufFile> open(const std::string& path);  // mmap + parse
  static Result<GgufFile> parse(std::shared_ptr<const MappedFile> file);
  // Parse from memory (fuzzing/tests); `name` is used in error messages. Data must outlive
  // the object.
  static Result<GgufFile> parse_buffer(const uint8_t* data, size_t size, std::string name);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::string& path() const { return name_; }
  uint64_t data_offset() const { return data_offset_; }  // start of the tensor data section
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

  bool has_key(std::string_view key) const { return find_value(key) != nullptr; }
  std::vector<std::string> keys() const;  // in file order
  const GgufValue* find_value(std::string_view key) const;

  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;   // any integer type (and bool)
  std::optional<double> get_float(std::string_view key) const;  // f32/f64, or an integer
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::vector<std::string>> get_string_array(std::string_view key) const;
  std::optional<std::vector<int64_t>> get_int_array(std::string_view key) const;
  std::optional<std::vector<double>> get_float_array(std::string_view key) const;
  // Element count of an array value (without decoding it); nullopt if absent or not an array.
  std::optional<uint64_t> get_array_size(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  // View into the mapping (const data cast away: callers must not write through it).
  Tensor tensor(const GgufTensorInfo& info) const;

 private:
  GgufFile() = default;
  friend class GgufParser;

  std::shared_ptr<const MappedFile> file_;  // null for parse_buffer
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace tessera::model
