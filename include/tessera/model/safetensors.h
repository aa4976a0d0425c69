// SafetensorsModel: tensors of one .safetensors file or of a sharded checkpoint (index json with a
// weight_map), each a view into its shard's read-only mapping.
// Invariant: after a successful open/parse every tensor's [data, data + nbytes) lies inside its
// mapping, nbytes == product(shape) * element size, and names are unique across shards.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/core/dtype.h"
#include "tessera/core/status.h"
#include "tessera/core/tensor.h"
#include "tessera/model/mapped_file.h"

namespace tessera::model {

struct SafetensorsTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;  // as stored (row-major); may be empty (a scalar) or > 4 dims
  const void* data;
  uint64_t nbytes;
  std::string file;  // the shard it lives in (path, or the parse_buffer name)
};

class SafetensorsModel {
 public:
  // path: a .safetensors file, a model.safetensors.index.json, or a directory holding either.
  static Result<SafetensorsModel> open(const std::string& path);
  // One file's bytes (fuzzing/tests); `name` is used in error messages. Data must outlive the
  // object.
  static Result<SafetensorsModel> parse_buffer(const uint8_t* data, size_t size, std::string name);

  const SafetensorsTensor* find(std::string_view name) const;
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  // View of `t` (const data cast away: callers must not write through it). A scalar becomes
  // shape [1]. Checks that `t` has at most 4 dims.
  Tensor tensor(const SafetensorsTensor& t) const;
  std::optional<std::string> metadata(std::string_view key) const;  // __metadata__
  const std::map<std::string, std::string, std::less<>>& all_metadata() const { return metadata_; }

 private:
  SafetensorsModel() = default;
  Status add_file(const uint8_t* data, size_t size, const std::string& name);
  static Result<SafetensorsModel> open_index(const std::string& index_path);
  static Result<SafetensorsModel> open_file(const std::string& path);

  std::vector<std::shared_ptr<const MappedFile>> files_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string, std::less<>> metadata_;
};

}  // namespace tessera::model
