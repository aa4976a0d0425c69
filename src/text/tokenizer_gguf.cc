// GGUF `tokenizer.ggml.*` metadata -> TokenizerSpec (byte-level BPE, model "gpt2").
// Invariant: token types map as llama.cpp writes them — 3 (control) becomes a special added
// token, 4 (user-defined) a non-special added token, everything else the BPE vocabulary.
#include "tessera/model/gguf.h"
#include "tessera/text/tokenizer.h"

namespace tessera::text {
namespace {

constexpr int64_t kTokenTypeControl = 3;
constexpr int64_t kTokenTypeUserDefined = 4;

Status read_id(const model::GgufFile& gguf, const char* key, int32_t vocab_size,
               std::optional<int32_t>* out) {
  auto id = gguf.get_int(key);
  if (!id) return {};
  if (*id < 0 || *id >= vocab_size) {
    // NOTE: some converters write -1 or an out-of-range id for "none"; treat it as absent.
    return {};
  }
  *out = static_cast<int32_t>(*id);
  return {};
}

}  // namespace

Result<TokenizerSpec> tokenizer_spec_from_gguf(const model::GgufFile& gguf) {
  const auto model_name = gguf.get_string("tokenizer.ggml.model");
  if (!model_name) return invalid_argument("{}: no tokenizer.ggml.model", gguf.path());
  if (*model_name != "gpt2") {
    return unimplemented("{}: tokenizer model '{}' is not supported (byte-level BPE 'gpt2' only)",
                         gguf.path(), *model_name);
  }
  TokenizerSpec spec;
  const std::string pre_name = gguf.get_string("tokenizer.ggml.pre").value_or("gpt2");
  auto pre = pre_tokenizer_preset(pre_name);
  if (!pre.ok()) return Status(pre.status().code(), gguf.path() + ": " + pre.status().message());
  spec.pre = std::move(pre).value();
  // NOTE: Llama-3's HF tokenizer sets ignore_merges; llama.cpp keys it off the same pre name.
  spec.ignore_merges = spec.pre.name == "llama3";

  auto tokens = gguf.get_string_array("tokenizer.ggml.tokens");
  if (!tokens || tokens->empty())
    return invalid_argument("{}: no tokenizer.ggml.tokens", gguf.path());
  auto merges = gguf.get_string_array("tokenizer.ggml.merges");
  if (!merges) return invalid_argument("{}: no tokenizer.ggml.merges", gguf.path());
  auto types = gguf.get_int_array("tokenizer.ggml.token_type");
  if (types && types->size() != tokens->size()) {
    return invalid_argument("{}: token_type has {} entries for {} tokens", gguf.path(),
                            types->size(), tokens->size());
  }
  const int32_t vocab_size = static_cast<int32_t>(tokens->size());
  spec.tokens = std::move(*tokens);
  for (int32_t id = 0; types && id < vocab_size; ++id) {
    const int64_t type = (*types)[id];
    if (type != kTokenTypeControl && type != kTokenTypeUserDefined) continue;
    spec.added_tokens.push_back({spec.tokens[id], id, type == kTokenTypeControl});
    spec.tokens[id].clear();  // added tokens live outside the BPE vocabulary
  }
  spec.merges.reserve(merges->size());
  for (const std::string& m : *merges) {
    const size_t space = m.find(' ');
    if (space == std::string::npos) {
      return invalid_argument("{}: merge '{}' is not 'left right'", gguf.path(), m);
    }
    spec.merges.emplace_back(m.substr(0, space), m.substr(space + 1));
  }
  TESSERA_RETURN_IF_ERROR(read_id(gguf, "tokenizer.ggml.bos_token_id", vocab_size, &spec.bos_id));
  TESSERA_RETURN_IF_ERROR(read_id(gguf, "tokenizer.ggml.eos_token_id", vocab_size, &spec.eos_id));
  TESSERA_RETURN_IF_ERROR(
      read_id(gguf, "tokenizer.ggml.unknown_token_id", vocab_size, &spec.unk_id));
  TESSERA_RETURN_IF_ERROR(
      read_id(gguf, "tokenizer.ggml.padding_token_id", vocab_size, &spec.pad_id));
  spec.add_bos = gguf.get_bool("tokenizer.ggml.add_bos_token").value_or(false) && spec.bos_id;
  spec.add_eos = gguf.get_bool("tokenizer.ggml.add_eos_token").value_or(false) && spec.eos_id;
  return spec;
}

Result<Tokenizer> tokenizer_from_gguf(const model::GgufFile& gguf) {
  TESSERA_ASSIGN_OR_RETURN(TokenizerSpec spec, tokenizer_spec_from_gguf(gguf));
  return Tokenizer::create(std::move(spec));
}

}  // namespace tessera::text
