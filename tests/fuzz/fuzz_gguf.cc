// Fuzz target: GgufFile::parse_buffer on arbitrary bytes. A parse that succeeds must hand out
// only in-bounds tensor views and values: every byte of every tensor and every metadata value is
// read so ASan reports any out-of-bounds access.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tessera/model/gguf.h"
#include "tessera/model/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using tessera::model::GgufFile;
  auto parsed = GgufFile::parse_buffer(data, size, "fuzz.gguf");
  if (!parsed.ok()) return 0;
  const GgufFile& f = *parsed;
  volatile uint64_t sink = 0;
  for (const auto& info : f.tensors()) {
    const tessera::Tensor t = f.tensor(info);
    const auto* p = static_cast<const uint8_t*>(t.data());
    uint64_t sum = 0;
    for (int64_t i = 0; i < t.nbytes(); ++i) sum += p[i];
    sink = sink + sum;
    sink = sink + (f.find_tensor(info.name) != nullptr);
  }
  for (const auto& key : f.keys()) {
    sink = sink + f.get_string(key).value_or("").size();
    sink = sink + static_cast<uint64_t>(f.get_int(key).value_or(0));
    sink = sink + static_cast<uint64_t>(f.get_float(key).value_or(0.0) != 0.0);
    sink = sink + f.get_bool(key).value_or(false);
    if (auto a = f.get_string_array(key)) {
      for (const auto& s : *a) sink = sink + s.size();
    }
    if (auto a = f.get_int_array(key)) sink = sink + a->size();
    if (auto a = f.get_float_array(key)) sink = sink + a->size();
  }
  auto config = tessera::model::ModelConfig::from_gguf(f);
  sink = sink + config.ok();
  return 0;
}
