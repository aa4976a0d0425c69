// HF tokenizer.json (+ tokenizer_config.json) -> TokenizerSpec, for byte-level BPE models.
// Invariant: every config we cannot reproduce exactly (another model type, a normalizer, an
// unsupported split behaviour) is a clear error, never a silently different tokenization.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "src/text/pre_tokenizer.h"
#include "tessera/core/logging.h"
#include "tessera/text/tokenizer.h"

namespace tessera::text {
namespace {

using nlohmann::json;

// Escapes a literal for use inside a PCRE2 pattern.
std::string quote_literal(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}-/").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

// A member by reference (no copy of big vocabularies); a shared null when absent.
const json& member(const json& j, const char* key) {
  static const json kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

bool get_bool(const json& j, const char* key, bool fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

bool is_null_or_empty_string(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty());
}

// Appends the steps of one HF pre_tokenizer node; records whether a ByteLevel step was seen.
Status parse_pre_tokenizer(const json& node, std::vector<PreTokenizerStep>* steps,
                           bool* byte_level) {
  if (!node.is_object() || !node.contains("type") || !node["type"].is_string()) {
    return invalid_argument("tokenizer.json: pre_tokenizer entry without a type");
  }
  const std::string type = node["type"];
  if (type == "Sequence") {
    auto it = node.find("pretokenizers");
    if (it == node.end() || !it->is_array()) {
      return invalid_argument("tokenizer.json: Sequence pre_tokenizer without 'pretokenizers'");
    }
    for (const json& child : *it)
      TESSERA_RETURN_IF_ERROR(parse_pre_tokenizer(child, steps, byte_level));
    return {};
  }
  if (type == "ByteLevel") {
    if (get_bool(node, "add_prefix_space", false)) {
      return unimplemented("tokenizer.json: ByteLevel add_prefix_space=true is not supported");
    }
    if (get_bool(node, "use_regex", true)) steps->push_back({std::string(kGpt2Pattern)});
    *byte_level = true;
    return {};
  }
  if (type == "Digits") {
    const bool individual = get_bool(node, "individual_digits", false);
    steps->push_back({individual ? R"(\p{N})" : R"(\p{N}+)", SplitBehavior::kIsolated});
    return {};
  }
  if (type == "Split") {
    if (get_bool(node, "invert", false)) {
      return unimplemented("tokenizer.json: Split with invert=true is not supported");
    }
    PreTokenizerStep step;
    const json& pattern = node.value("pattern", json());
    if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
      step.pattern = pattern["Regex"].get<std::string>();
    } else if (pattern.contains("String") && pattern["String"].is_string()) {
      step.pattern = quote_literal(pattern["String"].get<std::string>());
    } else {
      return invalid_argument("tokenizer.json: Split pre_tokenizer without a pattern");
    }
    const std::string behavior = node.value("behavior", std::string("Isolated"));
    if (behavior == "Isolated") {
      step.behavior = SplitBehavior::kIsolated;
    } else if (behavior == "Removed") {
      step.behavior = SplitBehavior::kRemoved;
    } else {
      return unimplemented("tokenizer.json: Split behavior '{}' is not supported", behavior);
    }
    steps->push_back(std::move(step));
    return {};
  }
  return unimplemented("tokenizer.json: pre_tokenizer type '{}' is not supported", type);
}

// Names a parsed pre-tokenizer after the preset it equals, or "custom".
std::string name_pre_tokenizer(const std::vector<PreTokenizerStep>& steps) {
  for (const char* name : {"gpt2", "llama3", "smollm", "deepseek-v3", "qwen2"}) {
    auto preset = pre_tokenizer_preset(name);
    if (!preset.ok() || preset->steps.size() != steps.size()) continue;
    bool same = true;
    for (size_t i = 0; i < steps.size() && same; ++i) {
      same = steps[i].pattern == preset->steps[i].pattern &&
             steps[i].behavior == preset->steps[i].behavior;
    }
    if (same) return name;
  }
  return "custom";
}

Status check_normalizer(const json& j) {
  auto it = j.find("normalizer");
  if (it == j.end() || it->is_null()) return {};
  const std::string type = it->value("type", std::string());
  if (type == "Sequence" && it->value("normalizers", json::array()).empty()) return {};
  if (type == "NFC") {
    // NOTE: NFC is the identity on text that is already NFC, which is nearly all input.
    TESSERA_LOG_WARN("tokenizer.json: NFC normalizer is not applied; non-NFC input may differ");
    return {};
  }
  return unimplemented("tokenizer.json: normalizer '{}' is not supported", type);
}

// Reads bos/eos from a post_processor's TemplateProcessing "single" template.
Status parse_post_processor(const json& node, const json& root, TokenizerSpec* spec) {
  if (node.is_null()) return {};
  const std::string type = node.value("type", std::string());
  if (type == "Sequence") {
    for (const json& child : node.value("processors", json::array())) {
      TESSERA_RETURN_IF_ERROR(parse_post_processor(child, root, spec));
    }
    return {};
  }
  if (type == "ByteLevel") return {};
  if (type != "TemplateProcessing") {
    return unimplemented("tokenizer.json: post_processor '{}' is not supported", type);
  }
  const json& single = node.value("single", json::array());
  const json& special = node.value("special_tokens", json::object());
  bool seen_sequence = false;
  for (const json& item : single) {
    if (item.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    const std::string name = item.value("SpecialToken", json::object()).value("id", "");
    const json& ids = special.value(name, json::object()).value("ids", json::array());
    if (ids.size() != 1 || !ids[0].is_number_integer()) {
      return unimplemented("tokenizer.json: template token '{}' must map to exactly one id", name);
    }
    const int32_t id = ids[0].get<int32_t>();
    if (seen_sequence) {
      if (spec->add_eos) return unimplemented("tokenizer.json: template adds two suffix tokens");
      spec->eos_id = id;
      spec->add_eos = true;
    } else {
      if (spec->add_bos) return unimplemented("tokenizer.json: template adds two prefix tokens");
      spec->bos_id = id;
      spec->add_bos = true;
    }
  }
  return {};
}

// tokenizer_config.json: "bos_token": "<s>" or {"content": "<s>", ...}.
std::optional<std::string> config_token(const json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return std::nullopt;
}

Status apply_config(const json& config, TokenizerSpec* spec) {
  auto find_id = [&](const std::string& text) -> std::optional<int32_t> {
    for (const AddedToken& a : spec->added_tokens) {
      if (a.content == text) return a.id;
    }
    for (size_t i = 0; i < spec->tokens.size(); ++i) {
      if (spec->tokens[i] == text) return static_cast<int32_t>(i);
    }
    return std::nullopt;
  };
  struct Field {
    const char* key;
    std::optional<int32_t>* id;
  };
  for (Field f : {Field{"bos_token", &spec->bos_id}, Field{"eos_token", &spec->eos_id},
                  Field{"unk_token", &spec->unk_id}, Field{"pad_token", &spec->pad_id}}) {
    if (auto text = config_token(config, f.key)) {
      auto id = find_id(*text);
      if (!id)
        return invalid_argument("tokenizer_config.json: {} '{}' is not a token", f.key, *text);
      *f.id = id;
    }
  }
  spec->add_bos = get_bool(config, "add_bos_token", spec->add_bos);
  spec->add_eos = get_bool(config, "add_eos_token", spec->add_eos);
  return {};
}

Result<TokenizerSpec> parse_tokenizer_json(const json& j, const json* config) {
  TokenizerSpec spec;
  const json& model = member(j, "model");
  if (!model.is_object()) return invalid_argument("tokenizer.json: no model");
  if (model.value("type", std::string("BPE")) != "BPE") {
    return unimplemented("tokenizer.json: model type '{}' is not supported (BPE only)",
                         model.value("type", std::string()));
  }
  if (get_bool(model, "byte_fallback", false) || !is_null_or_empty_string(model, "unk_token") ||
      !is_null_or_empty_string(model, "continuing_subword_prefix") ||
      !is_null_or_empty_string(model, "end_of_word_suffix")) {
    return unimplemented(
        "tokenizer.json: BPE with byte_fallback, unk_token or subword affixes "
        "is not supported (byte-level BPE only)");
  }
  spec.ignore_merges = get_bool(model, "ignore_merges", false);
  const json& vocab = member(model, "vocab");
  if (!vocab.is_object() || vocab.empty()) return invalid_argument("tokenizer.json: no vocab");
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > (1 << 24)) {
      return invalid_argument("tokenizer.json: vocab entry '{}' has a bad id", token);
    }
    const size_t i = id.get<size_t>();
    if (i >= spec.tokens.size()) spec.tokens.resize(i + 1);
    spec.tokens[i] = token;
  }
  const json& merges = member(model, "merges");
  if (!merges.is_array()) return invalid_argument("tokenizer.json: no merges");
  for (const json& m : merges) {
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        return invalid_argument("tokenizer.json: merge '{}' is not 'left right'", s);
      }
      spec.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      spec.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      return invalid_argument("tokenizer.json: a merge is neither 'a b' nor [\"a\", \"b\"]");
    }
  }
  const json& added = member(j, "added_tokens");
  if (!added.is_null() && !added.is_array())
    return invalid_argument("tokenizer.json: bad added_tokens");
  static const json kNoTokens = json::array();
  for (const json& a : added.is_array() ? added : kNoTokens) {
    if (!a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
        !a["content"].is_string()) {
      return invalid_argument("tokenizer.json: added token without id/content");
    }
    if (get_bool(a, "single_word", false)) {
      TESSERA_LOG_WARN("tokenizer.json: single_word on added token {} is ignored",
                       a["content"].get<std::string>());
    }
    spec.added_tokens.push_back({a["content"].get<std::string>(), a["id"].get<int32_t>(),
                                 get_bool(a, "special", false), get_bool(a, "lstrip", false),
                                 get_bool(a, "rstrip", false), get_bool(a, "normalized", false)});
  }
  TESSERA_RETURN_IF_ERROR(check_normalizer(j));
  bool byte_level = false;
  const json& pre = member(j, "pre_tokenizer");
  if (!pre.is_null())
    TESSERA_RETURN_IF_ERROR(parse_pre_tokenizer(pre, &spec.pre.steps, &byte_level));
  const json& decoder = member(j, "decoder");
  if (!byte_level || !decoder.is_object() || decoder.value("type", std::string()) != "ByteLevel") {
    return unimplemented(
        "tokenizer.json: not a byte-level BPE (needs ByteLevel pre_tokenizer and "
        "decoder)");
  }
  spec.pre.name = name_pre_tokenizer(spec.pre.steps);
  TESSERA_RETURN_IF_ERROR(parse_post_processor(member(j, "post_processor"), j, &spec));
  if (config != nullptr) TESSERA_RETURN_IF_ERROR(apply_config(*config, &spec));
  return spec;
}

Result<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(StatusCode::kNotFound, "cannot open '{}'", path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Result<TokenizerSpec> tokenizer_spec_from_json(std::string_view tokenizer_json,
                                               std::optional<std::string_view> config_json) {
  const json j = json::parse(tokenizer_json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return invalid_argument("tokenizer.json is not a JSON object");
  }
  json config;
  if (config_json) {
    config = json::parse(*config_json, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded() || !config.is_object()) {
      return invalid_argument("tokenizer_config.json is not a JSON object");
    }
  }
  try {
    return parse_tokenizer_json(j, config_json ? &config : nullptr);
  } catch (const json::exception& e) {  // a value of an unexpected JSON type
    return invalid_argument("tokenizer.json: unexpected value: {}", e.what());
  }
}

Result<Tokenizer> tokenizer_from_json_file(const std::string& path) {
  std::filesystem::path p(path);
  std::error_code ec;
  if (std::filesystem::is_directory(p, ec)) p /= "tokenizer.json";
  TESSERA_ASSIGN_OR_RETURN(std::string text, read_file(p));
  std::optional<std::string> config;
  const auto config_path = p.parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(config_path, ec)) {
    TESSERA_ASSIGN_OR_RETURN(config, read_file(config_path));
  }
  auto spec = tokenizer_spec_from_json(
      text, config ? std::optional<std::string_view>(*config) : std::nullopt);
  if (!spec.ok()) {
    return Status(spec.status().code(), fmt::format("{}: {}", p.string(), spec.status().message()));
  }
  return Tokenizer::create(std::move(spec).value());
}

}  // namespace tessera::text
