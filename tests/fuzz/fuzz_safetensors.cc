// Fuzz target: SafetensorsModel::parse_buffer on arbitrary bytes. A parse that succeeds must hand
// out only in-bounds tensors: every byte of every tensor is read (and its view built) so ASan
// reports any out-of-bounds access.
#include <cstddef>
#include <cstdint>

#include "tessera/model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using tessera::model::SafetensorsModel;
  auto parsed = SafetensorsModel::parse_buffer(data, size, "fuzz.safetensors");
  if (!parsed.ok()) return 0;
  const SafetensorsModel& m = *parsed;
  volatile uint64_t sink = 0;
  for (const auto& t : m.tensors()) {
    const auto* p = static_cast<const uint8_t*>(t.data);
    uint64_t sum = 0;
    for (uint64_t i = 0; i < t.nbytes; ++i) sum += p[i];
    sink = sink + sum;
    if (t.shape.size() <= static_cast<size_t>(tessera::kMaxDims)) {
      sink = sink + static_cast<uint64_t>(m.tensor(t).nbytes());
    }
    sink = sink + (m.find(t.name) == &t);
  }
  for (const auto& [key, value] : m.all_metadata()) sink = sink + value.size();
  return 0;
}
