// Safetensors loader: 8-byte LE header length, JSON header, raw little-endian data; sharded
// checkpoints through model.safetensors.index.json. Invariant: no JSON exception escapes and
// every tensor's byte range is checked against its file before it is recorded.
#include "tessera/model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

namespace tessera::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

std::string json_to_string(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Parses `text` without exceptions; a discarded value means a syntax error.
json parse_json(const char* begin, const char* end) {
  return json::parse(begin, end, nullptr, /*allow_exceptions=*/false);
}

// Validates one tensor entry of a header and fills `t` (data relative to `data_begin`).
Status parse_entry(const std::string& file, const std::string& name, const json& entry,
                   const uint8_t* data_begin, uint64_t data_size, SafetensorsTensor* t) {
  auto bad = [&](std::string_view what) {
    return data_loss("{}: malformed safetensors header: tensor '{}' {}", file, name, what);
  };
  if (!entry.is_object()) return bad("is not a JSON object");
  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string()) return bad("has no string \"dtype\"");
  const auto& dtype_name = dtype_it->get_ref<const std::string&>();
  const auto dtype = dtype_from_safetensors(dtype_name);
  if (!dtype) {
    return data_loss("{}: tensor '{}' has unsupported safetensors dtype \"{}\"", file, name,
                     dtype_name);
  }
  auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array()) return bad("has no \"shape\" array");
  auto off_it = entry.find("data_offsets");
  if (off_it == entry.end() || !off_it->is_array() || off_it->size() != 2 ||
      !(*off_it)[0].is_number_unsigned() || !(*off_it)[1].is_number_unsigned()) {
    return bad("needs \"data_offsets\": [begin, end] with non-negative integers");
  }
  const auto elem_bytes = static_cast<uint64_t>(dtype_info(*dtype).block_bytes);
  uint64_t numel = 1, span = elem_bytes;  // span counts zero dims as one (stride safety)
  t->shape.clear();
  for (const auto& d : *shape_it) {
    if (!d.is_number_unsigned()) return bad("has a shape entry that is not a non-negative integer");
    const uint64_t n = d.get<uint64_t>();
    if (n > kInt64Max) return bad("has a dimension that does not fit in int64");
    numel *= n;  // cannot overflow while span does not
    if (__builtin_mul_overflow(span, n == 0 ? 1 : n, &span) || span > kInt64Max) {
      return bad("has a shape whose byte size overflows");
    }
    t->shape.push_back(static_cast<int64_t>(n));
  }
  const uint64_t begin = (*off_it)[0].get<uint64_t>();
  const uint64_t end = (*off_it)[1].get<uint64_t>();
  if (begin > end || end > data_size) {
    return data_loss(
        "{}: tensor '{}' data_offsets [{}, {}) are not inside the {}-byte data section; the "
        "file may be truncated",
        file, name, begin, end, data_size);
  }
  const uint64_t nbytes = numel * elem_bytes;
  if (end - begin != nbytes) {
    return data_loss("{}: tensor '{}' spans {} bytes but its shape and dtype {} need {}", file,
                     name, end - begin, dtype_name, nbytes);
  }
  t->name = name;
  t->dtype = *dtype;
  t->data = data_begin + begin;
  t->nbytes = nbytes;
  t->file = file;
  return {};
}

Result<json> load_json_file(const std::string& path, const char* what) {
  TESSERA_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  const char* p = reinterpret_cast<const char*>(file->data());
  json j = parse_json(p, p + file->size());
  if (j.is_discarded()) return data_loss("{}: {} is not valid JSON", path, what);
  return j;
}

}  // namespace

Status SafetensorsModel::add_file(const uint8_t* data, size_t size, const std::string& name) {
  if (data == nullptr) size = 0;
  if (size < 8) {
    return data_loss("{}: not a safetensors file: {} bytes, shorter than the 8-byte header length",
                     name, size);
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, data, 8);
  if (header_len > size - 8) {
    return data_loss("{}: safetensors header claims {} bytes but the file has {} after the length",
                     name, header_len, size - 8);
  }
  const char* text = reinterpret_cast<const char*>(data + 8);
  json header = parse_json(text, text + header_len);
  if (header.is_discarded() || !header.is_object()) {
    return data_loss("{}: safetensors header is not a JSON object", name);
  }
  const uint8_t* data_begin = data + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  std::vector<SafetensorsTensor> parsed;
  parsed.reserve(header.size());
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) return data_loss("{}: __metadata__ is not a JSON object", name);
      for (const auto& [mk, mv] : value.items()) metadata_.emplace(mk, json_to_string(mv));
      continue;
    }
    SafetensorsTensor t;
    TESSERA_RETURN_IF_ERROR(parse_entry(name, key, value, data_begin, data_size, &t));
    parsed.push_back(std::move(t));
  }
  for (auto& t : parsed) {
    if (index_.count(t.name) != 0) {
      return data_loss("{}: tensor '{}' also appears in '{}'", name, t.name,
                       tensors_[index_.find(t.name)->second].file);
    }
    index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }
  return {};
}

Result<SafetensorsModel> SafetensorsModel::parse_buffer(const uint8_t* data, size_t size,
                                                        std::string name) {
  SafetensorsModel model;
  try {
    TESSERA_RETURN_IF_ERROR(model.add_file(data, size, name));
  } catch (const std::exception& e) {  // NOTE: defensive; nlohmann is used exception-free
    return data_loss("{}: cannot parse safetensors header: {}", name, e.what());
  }
  return model;
}

Result<SafetensorsModel> SafetensorsModel::open_file(const std::string& path) {
  TESSERA_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  TESSERA_ASSIGN_OR_RETURN(SafetensorsModel model, parse_buffer(file->data(), file->size(), path));
  model.files_.push_back(std::move(file));
  return model;
}

Result<SafetensorsModel> SafetensorsModel::open_index(const std::string& index_path) {
  TESSERA_ASSIGN_OR_RETURN(json index, load_json_file(index_path, "safetensors index"));
  auto wm = index.is_object() ? index.find("weight_map") : index.end();
  if (wm == index.end() || !wm->is_object()) {
    return data_loss("{}: safetensors index has no \"weight_map\" object", index_path);
  }
  const fs::path dir = fs::path(index_path).parent_path();
  std::set<std::string> shards;
  for (const auto& [tensor_name, shard] : wm->items()) {
    if (!shard.is_string()) {
      return data_loss("{}: weight_map entry '{}' is not a file name", index_path, tensor_name);
    }
    shards.insert(shard.get<std::string>());
  }
  SafetensorsModel model;
  for (const auto& shard : shards) {
    const std::string path = (dir / shard).string();
    TESSERA_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
    try {
      TESSERA_RETURN_IF_ERROR(model.add_file(file->data(), file->size(), path));
    } catch (const std::exception& e) {
      return data_loss("{}: cannot parse safetensors header: {}", path, e.what());
    }
    model.files_.push_back(std::move(file));
  }
  for (const auto& [tensor_name, shard] : wm->items()) {
    const SafetensorsTensor* t = model.find(tensor_name);
    const std::string want = (dir / shard.get<std::string>()).string();
    if (t == nullptr || t->file != want) {
      return data_loss("{}: weight_map puts '{}' in '{}' but that shard does not hold it",
                       index_path, tensor_name, want);
    }
  }
  if (auto meta = index.find("metadata"); meta != index.end() && meta->is_object()) {
    for (const auto& [k, v] : meta->items()) model.metadata_.emplace(k, json_to_string(v));
  }
  return model;
}

Result<SafetensorsModel> SafetensorsModel::open(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
      return open_index(path);
    }
    return open_file(path);
  }
  const fs::path dir(path);
  if (fs::exists(dir / "model.safetensors.index.json", ec)) {
    return open_index((dir / "model.safetensors.index.json").string());
  }
  if (fs::exists(dir / "model.safetensors", ec))
    return open_file((dir / "model.safetensors").string());
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file(ec) && e.path().extension() == ".safetensors") {
      files.push_back(e.path().string());
    }
  }
  if (files.empty()) {
    return make_error(StatusCode::kNotFound,
                      "{}: no model.safetensors.index.json or *.safetensors file in this directory",
                      path);
  }
  std::sort(files.begin(), files.end());
  SafetensorsModel model;
  for (const auto& f : files) {
    TESSERA_ASSIGN_OR_RETURN(auto file, MappedFile::open(f));
    try {
      TESSERA_RETURN_IF_ERROR(model.add_file(file->data(), file->size(), f));
    } catch (const std::exception& e) {
      return data_loss("{}: cannot parse safetensors header: {}", f, e.what());
    }
    model.files_.push_back(std::move(file));
  }
  return model;
}

const SafetensorsTensor* SafetensorsModel::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Tensor SafetensorsModel::tensor(const SafetensorsTensor& t) const {
  TESSERA_CHECK(t.shape.size() <= static_cast<size_t>(kMaxDims),
                "tensor '{}' in '{}' has {} dims; Tessera tensors hold at most {}", t.name, t.file,
                t.shape.size(), kMaxDims);
  const int64_t scalar_shape[1] = {1};
  const bool scalar = t.shape.empty();
  return Tensor(const_cast<void*>(t.data), t.dtype, scalar ? scalar_shape : t.shape.data(),
                scalar ? 1 : static_cast<int>(t.shape.size()));
}

std::optional<std::string> SafetensorsModel::metadata(std::string_view key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return std::nullopt;
  return it->second;
}

}  // namespace tessera::model
