// GGUF v2/v3 parser: header, metadata key/values (all types, nested arrays), tensor infos,
// aligned data section. Invariant: every read is bounds-checked against the bytes left and every
// count is capped by what those bytes could hold, so hostile input costs no huge allocation.
#include "tessera/model/gguf.h"

#include <bit>
#include <cstring>
#include <limits>

namespace tessera::model {
namespace {

static_assert(std::endian::native == std::endian::little, "GGUF reader assumes little-endian");

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint32_t kMaxDimsOnDisk = 4;
constexpr int kMaxArrayDepth = 8;
constexpr uint64_t kMaxKeyBytes = 65535;
constexpr uint64_t kDefaultAlignment = 32;

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Bytes of one scalar of `t`; 0 for string/array (variable size) and unknown ids.
uint64_t scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8:
    case GgufValueType::kI8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kU16:
    case GgufValueType::kI16:
      return 2;
    case GgufValueType::kU32:
    case GgufValueType::kI32:
    case GgufValueType::kF32:
      return 4;
    case GgufValueType::kU64:
    case GgufValueType::kI64:
    case GgufValueType::kF64:
      return 8;
    case GgufValueType::kString:
    case GgufValueType::kArray:
      return 0;
  }
  return 0;
}

bool is_known_type(uint32_t id) { return id <= static_cast<uint32_t>(GgufValueType::kF64); }

bool is_integer(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8:
    case GgufValueType::kI8:
    case GgufValueType::kU16:
    case GgufValueType::kI16:
    case GgufValueType::kU32:
    case GgufValueType::kI32:
    case GgufValueType::kU64:
    case GgufValueType::kI64:
    case GgufValueType::kBool:
      return true;
    case GgufValueType::kF32:
    case GgufValueType::kF64:
    case GgufValueType::kString:
    case GgufValueType::kArray:
      return false;
  }
  return false;
}

// Decodes one integer (or bool) of type `t` at `p`; nullopt if a u64 does not fit in int64.
std::optional<int64_t> decode_int(GgufValueType t, const uint8_t* p) {
  switch (t) {
    case GgufValueType::kU8:
    case GgufValueType::kBool:
      return load<uint8_t>(p);
    case GgufValueType::kI8:
      return load<int8_t>(p);
    case GgufValueType::kU16:
      return load<uint16_t>(p);
    case GgufValueType::kI16:
      return load<int16_t>(p);
    case GgufValueType::kU32:
      return load<uint32_t>(p);
    case GgufValueType::kI32:
      return load<int32_t>(p);
    case GgufValueType::kU64: {
      const uint64_t v = load<uint64_t>(p);
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
      return static_cast<int64_t>(v);
    }
    case GgufValueType::kI64:
      return load<int64_t>(p);
    case GgufValueType::kF32:
    case GgufValueType::kF64:
    case GgufValueType::kString:
    case GgufValueType::kArray:
      return std::nullopt;
  }
  return std::nullopt;
}

std::optional<double> decode_float(GgufValueType t, const uint8_t* p) {
  if (t == GgufValueType::kF32) return load<float>(p);
  if (t == GgufValueType::kF64) return load<double>(p);
  if (t == GgufValueType::kU64) return static_cast<double>(load<uint64_t>(p));
  if (auto i = decode_int(t, p)) return static_cast<double>(*i);
  return std::nullopt;
}

}  // namespace

// Walks the buffer once, filling a GgufFile. Every failure is a data_loss Status that names the
// file, the item being read and the byte offset.
class GgufParser {
 public:
  explicit GgufParser(GgufFile* out) : out_(out), data_(out->data_), size_(out->size_) {}

  Status run() {
    TESSERA_RETURN_IF_ERROR(read_header());
    TESSERA_RETURN_IF_ERROR(read_metadata());
    TESSERA_RETURN_IF_ERROR(read_alignment());
    TESSERA_RETURN_IF_ERROR(read_tensor_infos());
    return place_tensors();
  }

 private:
  template <typename... Args>
  Status fail(fmt::format_string<Args...> format, Args&&... args) const {
    return data_loss("{}: malformed GGUF: {} (at byte {} of {})", out_->name_,
                     fmt::format(format, std::forward<Args>(args)...), pos_, size_);
  }
  uint64_t remaining() const { return size_ - pos_; }

  Status need(uint64_t n, std::string_view what) const {
    if (n > remaining()) {
      return fail("truncated while reading {}: need {} bytes, {} left", what, n, remaining());
    }
    return {};
  }
  template <typename T>
  Status read(T* v, std::string_view what) {
    TESSERA_RETURN_IF_ERROR(need(sizeof(T), what));
    *v = load<T>(data_ + pos_);
    pos_ += sizeof(T);
    return {};
  }
  // A GGUF string: u64 length + bytes. Returns the payload's offset and length.
  Status read_string_span(uint64_t* offset, uint64_t* len, std::string_view what) {
    TESSERA_RETURN_IF_ERROR(read(len, what));
    if (*len > remaining()) {
      return fail("{} claims {} bytes but only {} are left", what, *len, remaining());
    }
    *offset = pos_;
    pos_ += *len;
    return {};
  }
  Status read_string(std::string* s, std::string_view what) {
    uint64_t offset = 0, len = 0;
    TESSERA_RETURN_IF_ERROR(read_string_span(&offset, &len, what));
    s->assign(reinterpret_cast<const char*>(data_ + offset), len);
    return {};
  }

  Status read_header() {
    uint32_t magic = 0;
    TESSERA_RETURN_IF_ERROR(read(&magic, "the magic number"));
    if (magic != kMagic) return fail("bad magic 0x{:08x}; this is not a GGUF file", magic);
    TESSERA_RETURN_IF_ERROR(read(&out_->version_, "the version"));
    const uint32_t v = out_->version_;
    if (v == 1) return fail("GGUF version 1 is not supported; re-convert the model (v3)");
    if (v != 2 && v != 3) {
      if (__builtin_bswap32(v) == 2 || __builtin_bswap32(v) == 3) {
        return fail("big-endian GGUF files are not supported");
      }
      return fail("unsupported GGUF version {} (expected 2 or 3)", v);
    }
    TESSERA_RETURN_IF_ERROR(read(&num_tensors_, "the tensor count"));
    TESSERA_RETURN_IF_ERROR(read(&num_kv_, "the metadata count"));
    return {};
  }

  // Skips over one value of type `type` at pos_, recording where it lies in `v`.
  Status read_value(GgufValueType type, int depth, std::string_view key, GgufValue* v) {
    v->type = type;
    v->count = 1;
    v->offset = pos_;
    if (type == GgufValueType::kString) {
      return read_string_span(&v->offset, &v->count, "a string value");
    }
    if (type != GgufValueType::kArray) {
      const uint64_t n = scalar_size(type);
      TESSERA_RETURN_IF_ERROR(need(n, "a scalar value"));
      pos_ += n;
      return {};
    }
    if (depth >= kMaxArrayDepth) {
      return fail("arrays nested deeper than {} levels in '{}'", kMaxArrayDepth, key);
    }
    uint32_t elem_id = 0;
    TESSERA_RETURN_IF_ERROR(read(&elem_id, "an array element type"));
    if (!is_known_type(elem_id))
      return fail("unknown array element type id {} in '{}'", elem_id, key);
    const auto elem = static_cast<GgufValueType>(elem_id);
    TESSERA_RETURN_IF_ERROR(read(&v->count, "an array length"));
    v->elem_type = elem;
    v->offset = pos_;
    const uint64_t elem_bytes = scalar_size(elem);
    if (elem_bytes != 0) {
      if (v->count > remaining() / elem_bytes) {
        return fail("array '{}' claims {} elements of {} bytes but only {} bytes are left", key,
                    v->count, elem_bytes, remaining());
      }
      pos_ += v->count * elem_bytes;
      return {};
    }
    // Strings take >= 8 bytes each, nested arrays >= 12: cap the count before looping.
    const uint64_t min_bytes = elem == GgufValueType::kString ? 8 : 12;
    if (v->count > remaining() / min_bytes) {
      return fail("array '{}' claims {} elements but only {} bytes are left", key, v->count,
                  remaining());
    }
    for (uint64_t i = 0; i < v->count; ++i) {
      GgufValue inner;
      TESSERA_RETURN_IF_ERROR(read_value(elem, depth + 1, key, &inner));
    }
    return {};
  }

  Status read_metadata() {
    // Each entry needs at least a key length (8), a type (4) and a one-byte value.
    if (num_kv_ > remaining() / 13) {
      return fail("metadata count {} is more than the {} bytes left could hold", num_kv_,
                  remaining());
    }
    out_->kv_.reserve(num_kv_);
    for (uint64_t i = 0; i < num_kv_; ++i) {
      std::string key;
      TESSERA_RETURN_IF_ERROR(read_string(&key, "a metadata key"));
      if (key.size() > kMaxKeyBytes) return fail("metadata key of {} bytes", key.size());
      uint32_t type_id = 0;
      TESSERA_RETURN_IF_ERROR(read(&type_id, "a metadata value type"));
      if (!is_known_type(type_id))
        return fail("unknown value type id {} for key '{}'", type_id, key);
      GgufValue value;
      TESSERA_RETURN_IF_ERROR(read_value(static_cast<GgufValueType>(type_id), 0, key, &value));
      if (!out_->kv_index_.emplace(key, out_->kv_.size()).second) {
        return fail("duplicate metadata key '{}'", key);
      }
      out_->kv_.emplace_back(std::move(key), value);
    }
    return {};
  }

  Status read_alignment() {
    const GgufValue* v = out_->find_value("general.alignment");
    out_->alignment_ = kDefaultAlignment;
    if (v == nullptr) return {};
    const auto a = out_->get_int("general.alignment");
    if (!a || *a <= 0 || !std::has_single_bit(static_cast<uint64_t>(*a))) {
      return fail("general.alignment must be a positive power of two");
    }
    out_->alignment_ = static_cast<uint64_t>(*a);
    return {};
  }

  Status read_tensor_infos() {
    // Each info needs at least name length (8), n_dims (4), one dim (8), type (4), offset (8).
    if (num_tensors_ > remaining() / 32) {
      return fail("tensor count {} is more than the {} bytes left could hold", num_tensors_,
                  remaining());
    }
    out_->tensors_.reserve(num_tensors_);
    for (uint64_t i = 0; i < num_tensors_; ++i) {
      GgufTensorInfo info;
      TESSERA_RETURN_IF_ERROR(read_string(&info.name, "a tensor name"));
      TESSERA_RETURN_IF_ERROR(read_tensor_geometry(&info));
      if (!out_->tensor_index_.emplace(info.name, out_->tensors_.size()).second) {
        return fail("duplicate tensor name '{}'", info.name);
      }
      out_->tensors_.push_back(std::move(info));
    }
    return {};
  }

  Status read_tensor_geometry(GgufTensorInfo* info) {
    uint32_t n_dims = 0;
    TESSERA_RETURN_IF_ERROR(read(&n_dims, "a tensor's dimension count"));
    if (n_dims == 0 || n_dims > kMaxDimsOnDisk) {
      return fail("tensor '{}' has {} dims (expected 1 to {})", info->name, n_dims, kMaxDimsOnDisk);
    }
    uint64_t ne[kMaxDimsOnDisk] = {};
    for (uint32_t d = 0; d < n_dims; ++d) {
      TESSERA_RETURN_IF_ERROR(read(&ne[d], "a tensor dimension"));
      if (ne[d] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return fail("tensor '{}' dim {} is {}", info->name, d, ne[d]);
      }
    }
    uint32_t type_id = 0;
    TESSERA_RETURN_IF_ERROR(read(&type_id, "a tensor type"));
    const auto dtype = dtype_from_ggml_id(type_id);
    if (!dtype) return fail("tensor '{}' has unsupported ggml type id {}", info->name, type_id);
    info->dtype = *dtype;
    TESSERA_RETURN_IF_ERROR(read(&info->offset, "a tensor offset"));
    if (info->offset % out_->alignment_ != 0) {
      return fail("tensor '{}' offset {} is not a multiple of the alignment {}", info->name,
                  info->offset, out_->alignment_);
    }
    const auto& dt = dtype_info(info->dtype);
    if (ne[0] % static_cast<uint64_t>(dt.block_elems) != 0) {
      return fail("tensor '{}' row of {} values is not a whole number of {}-value {} blocks",
                  info->name, ne[0], dt.block_elems, dt.name);
    }
    // numel, and the span with zero dims counted as one (Tensor strides must not overflow).
    uint64_t numel = 1, span = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      numel *= ne[d];  // cannot overflow once span has not
      if (__builtin_mul_overflow(span, ne[d] == 0 ? 1 : ne[d], &span) ||
          span > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return fail("tensor '{}' element count overflows", info->name);
      }
    }
    const uint64_t blocks = span / static_cast<uint64_t>(dt.block_elems);
    uint64_t span_bytes = 0;
    if (__builtin_mul_overflow(blocks, static_cast<uint64_t>(dt.block_bytes), &span_bytes) ||
        span_bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return fail("tensor '{}' byte size overflows", info->name);
    }
    info->nbytes = numel / static_cast<uint64_t>(dt.block_elems) * dt.block_bytes;
    info->shape.resize(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) info->shape[n_dims - 1 - d] = static_cast<int64_t>(ne[d]);
    return {};
  }

  // Data section starts at the next alignment boundary; offsets become absolute.
  Status place_tensors() {
    const uint64_t a = out_->alignment_;
    uint64_t start = 0;
    if (__builtin_add_overflow(static_cast<uint64_t>(pos_), a - 1, &start)) {
      return fail("data section offset overflows");
    }
    start &= ~(a - 1);
    out_->data_offset_ = start;
    for (auto& t : out_->tensors_) {
      uint64_t begin = 0, end = 0;
      if (__builtin_add_overflow(start, t.offset, &begin) ||
          __builtin_add_overflow(begin, t.nbytes, &end) || end > size_) {
        return data_loss(
            "{}: malformed GGUF: tensor '{}' data (offset {} + {} bytes, data section at {}) "
            "runs past the end of the file ({} bytes); the file may be truncated",
            out_->name_, t.name, t.offset, t.nbytes, start, size_);
      }
      t.offset = begin;
    }
    return {};
  }

  GgufFile* out_;
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  uint64_t num_tensors_ = 0;
  uint64_t num_kv_ = 0;
};

Result<GgufFile> GgufFile::open(const std::string& path) {
  TESSERA_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  return parse(std::move(file));
}

Result<GgufFile> GgufFile::parse(std::shared_ptr<const MappedFile> file) {
  TESSERA_CHECK(file != nullptr);
  const uint8_t* data = file->data();
  const size_t size = file->size();
  std::string name = file->path();
  TESSERA_ASSIGN_OR_RETURN(GgufFile gguf, parse_buffer(data, size, std::move(name)));
  gguf.file_ = std::move(file);
  return gguf;
}

Result<GgufFile> GgufFile::parse_buffer(const uint8_t* data, size_t size, std::string name) {
  GgufFile gguf;
  gguf.data_ = data;
  gguf.size_ = data == nullptr ? 0 : size;
  gguf.name_ = std::move(name);
  GgufParser parser(&gguf);
  TESSERA_RETURN_IF_ERROR(parser.run());
  return gguf;
}

std::vector<std::string> GgufFile::keys() const {
  std::vector<std::string> out;
  out.reserve(kv_.size());
  for (const auto& [key, value] : kv_) out.push_back(key);
  return out;
}

const GgufValue* GgufFile::find_value(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

std::optional<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find_value(key);
  if (v == nullptr || v->type != GgufValueType::kString) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(data_ + v->offset), v->count);
}

std::optional<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find_value(key);
  if (v == nullptr || !is_integer(v->type)) return std::nullopt;
  return decode_int(v->type, data_ + v->offset);
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find_value(key);
  if (v == nullptr) return std::nullopt;
  return decode_float(v->type, data_ + v->offset);
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find_value(key);
  if (v == nullptr || v->type != GgufValueType::kBool) return std::nullopt;
  return data_[v->offset] != 0;
}

std::optional<uint64_t> GgufFile::get_array_size(std::string_view key) const {
  const GgufValue* v = find_value(key);
  if (v == nullptr || v->type != GgufValueType::kArray) return std::nullopt;
  return v->count;
}

std::optional<std::vector<std::string>> GgufFile::get_string_array(std::string_view key) const {
  const GgufValue* v = find_value(key);
  if (v == nullptr || v->type != GgufValueType::kArray || v->elem_type != GgufValueType::kString) {
    return std::nullopt;
  }
  std::vector<std::string> out;
  out.reserve(v->count);
  uint64_t pos = v->offset;
  for (uint64_t i = 0; i < v->count; ++i) {  // bounds were checked by the parser
    const uint64_t len = load<uint64_t>(data_ + pos);
    out.emplace_back(reinterpret_cast<const char*>(data_ + pos + 8), len);
    pos += 8 + len;
  }
  return out;
}

std::optional<std::vector<int64_t>> GgufFile::get_int_array(std::string_view key) const {
  const GgufValue* v = find_value(key);
  if (v == nullptr || v->type != GgufValueType::kArray || !is_integer(v->elem_type)) {
    return std::nullopt;
  }
  const uint64_t step = scalar_size(v->elem_type);
  std::vector<int64_t> out;
  out.reserve(v->count);
  for (uint64_t i = 0; i < v->count; ++i) {
    auto x = decode_int(v->elem_type, data_ + v->offset + i * step);
    if (!x) return std::nullopt;
    out.push_back(*x);
  }
  return out;
}

std::optional<std::vector<double>> GgufFile::get_float_array(std::string_view key) const {
  const GgufValue* v = find_value(key);
  if (v == nullptr || v->type != GgufValueType::kArray) return std::nullopt;
  const uint64_t step = scalar_size(v->elem_type);
  if (step == 0) return std::nullopt;
  std::vector<double> out;
  out.reserve(v->count);
  for (uint64_t i = 0; i < v->count; ++i) {
    auto x = decode_float(v->elem_type, data_ + v->offset + i * step);
    if (!x) return std::nullopt;
    out.push_back(*x);
  }
  return out;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Tensor GgufFile::tensor(const GgufTensorInfo& info) const {
  TESSERA_CHECK(info.offset <= size_ && info.nbytes <= size_ - info.offset,
                "tensor '{}' [{}, +{}) is not inside '{}' ({} bytes)", info.name, info.offset,
                info.nbytes, name_, size_);
  TESSERA_CHECK(!info.shape.empty() && info.shape.size() <= static_cast<size_t>(kMaxDims),
                "tensor '{}' has {} dims", info.name, info.shape.size());
  return Tensor(const_cast<uint8_t*>(data_ + info.offset), info.dtype, info.shape.data(),
                static_cast<int>(info.shape.size()));
}

}  // namespace tessera::model
