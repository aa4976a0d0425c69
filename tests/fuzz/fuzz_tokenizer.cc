// Fuzzes the tokenizer on hostile input: arbitrary bytes (invalid UTF-8, huge whitespace runs,
// special-token fragments) through encode, decode and the incremental detokenizer, and
// arbitrary bytes as a tokenizer.json. Invariants: no crash, decode(encode(valid text)) round
// trips, and every detokenizer piece is valid UTF-8.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/text/utf8.h"
#include "tessera/text/detokenizer.h"
#include "tessera/text/tokenizer.h"

namespace {

const tessera::text::Tokenizer& fixture_tokenizer() {
  static const tessera::text::Tokenizer tokenizer = [] {
    auto result = tessera::text::tokenizer_from_json_file(std::string(TESSERA_FIXTURES_DIR) +
                                                          "/tokenizers/qwen2_style");
    if (!result.ok()) {
      std::fprintf(stderr, "fixture tokenizer: %s\n", result.status().message().c_str());
      std::abort();
    }
    return std::move(result).value();
  }();
  return tokenizer;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (!input.empty() && input[0] == '{') {
    // Hostile tokenizer.json: must fail cleanly or build a usable tokenizer.
    auto spec = tessera::text::tokenizer_spec_from_json(input, std::nullopt);
    if (!spec.ok()) return 0;
    auto parsed = tessera::text::Tokenizer::create(std::move(spec).value());
    if (parsed.ok()) (void)parsed->encode("hello world 123", true);
    return 0;
  }
  const auto& tokenizer = fixture_tokenizer();
  const std::vector<int32_t> ids = tokenizer.encode(input, /*add_special_tokens=*/true);
  const std::string text = tokenizer.decode(ids, /*skip_special_tokens=*/false);
  if (tessera::text::utf8::is_valid(input) && text != input) {
    // Lossless for valid UTF-8 (the byte-level vocabulary covers every byte).
    std::fprintf(stderr, "round trip changed the text\n");
    std::abort();
  }
  tessera::text::IncrementalDetokenizer detok(tokenizer, /*skip_special_tokens=*/false);
  for (int32_t id : ids) {
    if (!tessera::text::utf8::is_valid(detok.push(id))) std::abort();
  }
  if (!tessera::text::utf8::is_valid(detok.finish())) std::abort();
  // Arbitrary ids (in and out of range) must decode without crashing.
  std::vector<int32_t> raw;
  for (size_t i = 0; i + 4 <= size && raw.size() < 64; i += 4) {
    int32_t v;
    std::memcpy(&v, data + i, 4);
    raw.push_back(v);
  }
  (void)tokenizer.decode(raw, true);
  return 0;
}
